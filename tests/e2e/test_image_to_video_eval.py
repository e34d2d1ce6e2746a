"""An i2v-14B project end to end on the diffusers engine (tiny models, CPU): its eval videos
start from the held-out clip's first frame, shown beside them on the contact sheet.

The tiny model's weights are random, so a video's decoded first frame is not its start image
(Wan 2.1 I2V conditions on the image's latents; it does not paste the frame). What is checked is
the conditioning: the image WanImageToVideoPipeline encodes for every eval video.
"""

import json
import shutil

import numpy as np
import pytest
from diffusers import WanImageToVideoPipeline
from PIL import Image

from wan_lora_dagster.cli import main
from wan_lora_dagster.media.frames import read_frames
from wan_lora_dagster.pipeline.contact_sheet import CELL
from wan_lora_dagster.project_builder import demo_recipe, write_recipe
from wan_lora_dagster.testing.commands import run_json

pytestmark = pytest.mark.slow
CODEC_TOLERANCE = 2 / 255  # the start image is decoded from the clip: only float rounding
WIDTH, HEIGHT = 320, 192  # the demo film's size: the pipeline encodes the frame unresized


@pytest.fixture(scope="module")
def i2v_project(captioned_demo, tmp_path_factory):
    """A copy of the demo made up to its captions, switched to i2v-14B and run to best_lora."""
    project = tmp_path_factory.mktemp("i2v") / "demo"
    shutil.copytree(captioned_demo, project, symlinks=True)
    changes = demo_recipe(
        training={"task": "i2v-14B", "max_train_epochs": 2},
        # the fewest frames and steps a video takes: what is checked is its start image
        eval={"width": WIDTH, "height": HEIGHT, "num_frames": 5, "num_inference_steps": 2},
    )
    write_recipe(project, **changes)
    conditions = []
    prepare = WanImageToVideoPipeline.prepare_latents

    def spy(self, image, *args, **kwargs):
        conditions.append(image.detach().cpu().clone())
        return prepare(self, image, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(WanImageToVideoPipeline, "prepare_latents", spy)
        assert main(["run", "--project", str(project)]) == 0
    return project, conditions


def eval_records(project):
    folder = project / "out" / "records" / "eval_videos"
    return [json.loads(path.read_text()) for path in sorted(folder.glob("*.json"))]


def test_every_eval_video_starts_from_the_held_out_clips_first_frame(i2v_project):
    project, conditions = i2v_project
    manifest = json.loads(next((project / "out" / "training_set").glob("*.json")).read_text())
    [held_out] = {entry["item_id"] for entry in manifest["entries"] if entry["held_out"]}
    first_frame = read_frames(project / "out" / "clips" / f"{held_out}.mp4", [0])[0] / 255

    videos = [video for record in eval_records(project) for video in record["videos"]]
    assert videos and all(v["start_image"] == f"out/eval/start/{held_out}.png" for v in videos)
    assert len(conditions) == len(videos), "one encoded start image per eval video"
    for condition in conditions:
        pixels = (condition[0].permute(1, 2, 0).numpy() + 1) / 2
        assert np.abs(pixels - first_frame).max() < CODEC_TOLERANCE
    others = [p for p in (project / "out" / "clips").glob("*.mp4") if p.stem != held_out]
    for other in others:  # and it is not any other clip's first frame
        assert np.abs(read_frames(other, [0])[0] / 255 - first_frame).mean() > 0.02


def test_the_contact_sheet_shows_the_start_image_beside_each_strength(i2v_project):
    project, _ = i2v_project
    for record in eval_records(project):
        strengths = {video["strength"] for video in record["videos"]}
        with Image.open(project / record["contact_sheet"]) as sheet:
            assert sheet.width == CELL * (1 + len(strengths))
        assert record["validation_loss"] is not None


def test_a_listed_image_that_is_missing_names_the_file_and_key(i2v_project, capsys):
    project, _ = i2v_project
    recipe = project / "wan_lora.toml"
    recipe.write_text(recipe.read_text() + 'images = ["stills/missing.png"]\n')
    status, summary = run_json(capsys, project)
    assert status != 0
    errors = " ".join(summary["eval_videos"]["errors"].values())
    assert "wan_lora.toml: [eval] images: 'stills/missing.png' not found" in errors
