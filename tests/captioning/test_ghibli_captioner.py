"""The Ghibli starter's captioner, a Qwen2.5-VL-7B folder, opens as a Qwen2.5-VL (it was once
opened with the Qwen2-VL class, whose vision tower is not Qwen2.5-VL's)."""

from pathlib import Path

from wan_lora_dagster.captioning.backends import load_captioner
from wan_lora_dagster.captioning.tiny import build_tiny_qwen_vl
from wan_lora_dagster.cli import main
from wan_lora_dagster.pipeline.dataset import captioner_settings
from wan_lora_dagster.project import open_project


def test_the_ghibli_starters_captioner_opens_its_qwen2_5_vl_folder(tmp_path, synthetic_frames):
    directory = tmp_path / "ghibli"
    assert main(["init", str(directory), "--like", "ghibli"]) == 0
    recipe_path = directory / "wan_lora.toml"
    named = open_project(directory).recipe.captions.model
    assert Path(named).name == "Qwen2.5-VL-7B-Instruct"
    # the folder the starter names, stood in for by a tiny Qwen2.5-VL of the same name
    folder = build_tiny_qwen_vl(tmp_path / "models" / Path(named).name, "qwen2_5_vl")
    recipe_path.write_text(recipe_path.read_text().replace(named, str(folder)))
    project = open_project(directory)

    captioner = load_captioner(captioner_settings(project, project.recipe.captions, "cpu"))

    assert type(captioner.model).__name__ == "Qwen2_5_VLForConditionalGeneration"
    prompt = project.recipe.captions.prompt
    assert captioner.caption_batch([synthetic_frames(seed=0)], prompt)[0].strip()
