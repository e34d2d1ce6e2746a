"""LoKr, LoHa, DoRA and TI2V-5B trained image-to-video through the whole graph (tiny models,
CPU): each trains, checkpoints, samples its eval, computes validation losses and exports the
best file, which keeps the lineage header and ComfyUI's key names."""

import json

import pytest
from diffusers import WanImageToVideoPipeline
from safetensors.torch import load_file

from tests.comfy_lora_keys import unloaded_keys
from tests.e2e.test_wan22_graph import TI2V_SIZES, record, run_project
from wan_lora_dagster.formats.cache_files import read_lora_header

pytestmark = pytest.mark.slow

NETWORK = "network_dim = 4\n"
ADAPTERS = {
    "lokr": 'network = "lokr"\nnetwork_dim = 4\n',
    "loha": 'network = "loha"\nnetwork_dim = 4\n',
    "dora": "dora = true\nnetwork_dim = 4\n",
}
SUFFIX = {"lokr": "lokr_w1", "loha": "hada_w1_a", "dora": "dora_scale"}


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
    project = run_project(built_demo, tmp_path, "t2v-1.3B", changes={NETWORK: ADAPTERS[kind]})
    check_new_checkpoint(built_demo, project, SUFFIX[kind])


def test_ti2v_image_to_video_evals_from_the_held_out_first_frame(built_demo, tmp_path):
    conditions = []
    prepare = WanImageToVideoPipeline.prepare_latents

    def spy(self, image, *args, **kwargs):
        conditions.append(image)
        return prepare(self, image, *args, **kwargs)

    changes = {**TI2V_SIZES, NETWORK: "i2v = true\n" + NETWORK}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(WanImageToVideoPipeline, "prepare_latents", spy)
        project = run_project(built_demo, tmp_path, "ti2v-5B", changes=changes)
    videos = check_new_checkpoint(built_demo, project, "lora_down.weight")
    manifest = json.loads(next((project / "out/training_set").glob("*.json")).read_text())
    [held_out] = {entry["item_id"] for entry in manifest["entries"] if entry["held_out"]}
    starts = {video["start_image"] for video in videos["videos"]}
    assert starts == {f"out/eval/start/{held_out}.png"}
    assert len(conditions) == len(videos["videos"])
