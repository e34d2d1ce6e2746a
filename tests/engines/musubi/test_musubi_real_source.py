"""Our configs and training options read by musubi-tuner's OWN code, where a clone is at hand.

Opt-in: set MUSUBI_TUNER_DIR to a kohya-ss/musubi-tuner clone (its dataset and parser modules
need only torch, av, opencv, pillow, toml and voluptuous). Runs in a subprocess, because musubi
configures logging when imported.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from wan_lora_dagster.testing.musubi_fixtures import CAPTIONS, train_request

MUSUBI_TUNER_DIR = os.environ.get("MUSUBI_TUNER_DIR")
pytestmark = pytest.mark.skipif(
    not MUSUBI_TUNER_DIR, reason="set MUSUBI_TUNER_DIR to a musubi-tuner clone to run these"
)
READ_AS_MUSUBI_DOES = """
import argparse, json, sys
from musubi_tuner.dataset import config_utils
from musubi_tuner.dataset.image_video_dataset import ARCHITECTURE_WAN
from musubi_tuner.training.parser_common import setup_parser_common

texts_toml, train_toml, train_args = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])

def dataset_group(path, training):
    user_config = config_utils.load_user_config(path)
    blueprint = config_utils.BlueprintGenerator(config_utils.ConfigSanitizer()).generate(
        user_config, argparse.Namespace(debug_dataset=False), architecture=ARCHITECTURE_WAN
    )
    return config_utils.generate_dataset_group_by_blueprint(blueprint.dataset_group, training)

captions = {}
for dataset in dataset_group(texts_toml, False).datasets:
    for batch in dataset.retrieve_text_encoder_output_cache_batches(1):
        captions.update({item.text_encoder_output_cache_path: item.caption for item in batch})
training = dataset_group(train_toml, True)
_, unknown = setup_parser_common().parse_known_args(train_args)
print(json.dumps({
    "captions": captions,
    "items": {dataset.cache_directory: dataset.num_train_items for dataset in training.datasets},
    "unknown": [arg for arg in unknown if arg.startswith("--")],
}))
"""


def test_musubi_reads_our_configs_and_options(make_engine, project, manifest, tmp_path):
    engine = make_engine()
    request = train_request(manifest, engine.settings, tmp_path / "checkpoints")
    _, texts, train = engine.plan(request, project.latent_jobs, project.text_jobs)
    script = next(index for index, part in enumerate(train) if part.endswith(".py"))
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            READ_AS_MUSUBI_DOES,
            texts[texts.index("--dataset_config") + 1],
            train[train.index("--dataset_config") + 1],
            json.dumps(train[script + 1 :]),
        ],
        env={**os.environ, "PYTHONPATH": str(Path(MUSUBI_TUNER_DIR) / "src")},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(result.stdout.strip().splitlines()[-1])

    text_dir = project.cache_root / "text"
    assert found["captions"] == {
        str(text_dir / f"{item}_wan_te.safetensors"): caption for item, caption in CAPTIONS.items()
    }
    # motion: 2 training clips; long: 2 clips x 2 repeats; stills: 1 still x 3 repeats
    staged = engine.work_dir / "train" / request.output_name / "caches"
    assert found["items"] == {
        str(staged / "motion"): 2,
        str(staged / "long"): 4,
        str(staged / "stills"): 3,
    }
    # every option is musubi's common parser's, but --task, which wan_setup_parser adds
    assert found["unknown"] == ["--task"]
