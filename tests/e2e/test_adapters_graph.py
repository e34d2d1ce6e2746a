"""LoKr, LoHa, DoRA and TI2V-5B trained image-to-video through the whole graph (tiny models,
CPU): each trains, checkpoints, samples its eval, computes validation losses and exports the
best file, which keeps the lineage header and ComfyUI's key names."""

import json

import pytest
from diffusers import WanImageToVideoPipeline
from safetensors.torch import load_file

from wan_lora_dagster.formats.cache_files import read_lora_header
from wan_lora_dagster.testing.comfy_lora_keys import unloaded_keys
from wan_lora_dagster.testing.demo_variants import SHORT, TI2V_SIZES, record, run_project

pytestmark = pytest.mark.slow

ADAPTERS = {"lokr": {"network": "lokr"}, "loha": {"network": "loha"}, "dora": {"dora": True}}
SUFFIX = {"lokr": "lokr_w1", "loha": "hada_w1_a", "dora": "dora_scale"}


def small_training(**settings) -> dict:
    """The short demo training of demo_variants, with a rank-4 adapter."""
    return {**SHORT["training"], "network_dim": 4, **settings}


def check_new_checkpoint(built_demo, project, suffix: str) -> dict:
    """The checkpoint this run trained (the demo's own stay beside it): its file in ComfyUI's
    keys with the lineage header, its eval and validation loss; and best_lora over them all."""
    records = project / "out/records/lora_checkpoints"
    [key] = {path.stem for path in records.glob("*.json")} - {
        path.stem for path in (built_demo / "out/records/lora_checkpoints").glob("*.json")
    }
    path = project / record(project, "lora_checkpoints", key)["file"]
    header = read_lora_header(path)
    assert (project / "out/training_set" / f"{header['wan_lora.training_set']}.json").is_file()
    tensors = load_file(path)
    assert unloaded_keys(tensors, num_blocks=2) == []
    assert any(name.endswith(suffix) for name in tensors)
    videos = record(project, "eval_videos", key)
    assert videos["validation_loss"] is not None and len(videos["videos"]) == 2
    best = record(project, "best_lora")
    assert best["validation_loss"] is not None and (project / best["file"]).is_file()
    return videos


@pytest.mark.parametrize("kind", list(ADAPTERS))
def test_each_adapter_runs_films_to_best(built_demo, tmp_path, kind):
    changes = {"training": small_training(**ADAPTERS[kind])}
    project = run_project(built_demo, tmp_path, "t2v-1.3B", changes=changes)
    check_new_checkpoint(built_demo, project, SUFFIX[kind])


def test_ti2v_image_to_video_evals_from_the_held_out_first_frame(built_demo, tmp_path):
    conditions = []
    prepare = WanImageToVideoPipeline.prepare_latents

    def spy(self, image, *args, **kwargs):
        conditions.append(image)
        return prepare(self, image, *args, **kwargs)

    changes = {**TI2V_SIZES, "training": small_training(i2v=True)}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(WanImageToVideoPipeline, "prepare_latents", spy)
        project = run_project(built_demo, tmp_path, "ti2v-5B", changes=changes)
    videos = check_new_checkpoint(built_demo, project, "lora_down.weight")
    manifest = json.loads(next((project / "out/training_set").glob("*.json")).read_text())
    [held_out] = {entry["item_id"] for entry in manifest["entries"] if entry["held_out"]}
    starts = {video["start_image"] for video in videos["videos"]}
    assert starts == {f"out/eval/start/{held_out}.png"}
    assert len(conditions) == len(videos["videos"])
