"""Caches made in batches hold the bytes they would hold made one at a time, in any job order."""

import random

import torch

from wan_lora_dagster.engines.base import LatentJob, Progress, TextJob
from wan_lora_dagster.engines.diffusers.engine import DiffusersEngine
from wan_lora_dagster.engines.diffusers.latent_batches import encode_latent_jobs
from wan_lora_dagster.engines.diffusers.text_encoding import encode_texts
from wan_lora_dagster.formats.musubi_cache import load_text_cache
from wan_lora_dagster.pipeline.caches import text_fingerprint

CAPTIONS = [
    "rain",
    "snow",  # as long as "rain": the order between them is the texts'
    "a woman walks through the rain at night",
    "two dancers spin on a bright stage under red lights",
    "a boat",
]


def ignore_progress(progress: Progress) -> None:
    pass


def file_bytes(written: dict) -> dict[str, bytes]:
    paths = [path for files in written.values() for path in files]
    return {path.name: path.read_bytes() for path in paths}


def latent_jobs(tmp_path, make_clip, section, cache: str) -> list[LatentJob]:
    """Clips of two sizes (two bucket shapes), two windows each, under two sections."""
    windows = section.model_copy(update={"target_frames": (5, 9), "resolution": (32, 32)})
    wide = windows.model_copy(update={"name": "wide", "resolution": (48, 32)})
    clips = {
        f"clip{index}": make_clip(tmp_path / f"clip{index}.mp4", seed=index, num_frames=9)
        for index in range(5)
    }
    return [
        LatentJob(item, clip, chosen, tmp_path / cache / chosen.name)
        for item, clip in clips.items()
        for chosen in (windows, wide)
    ]


def test_latents_batched_in_any_order_are_the_bytes_of_one_at_a_time(
    engine, tmp_path, make_clip, section
):
    models = engine.models
    alone = encode_latent_jobs(
        models, latent_jobs(tmp_path, make_clip, section, "alone"), ignore_progress, batch_size=1
    )
    shuffled = latent_jobs(tmp_path, make_clip, section, "batched")
    random.Random(3).shuffle(shuffled)
    reports = []
    batched = encode_latent_jobs(models, shuffled, reports.append, batch_size=3)

    assert len(file_bytes(alone)) == 5 * 2 * 2
    assert file_bytes(batched) == file_bytes(alone)
    assert [report.done for report in reports] == list(range(1, 11))
    assert {item: sorted(p.name for p in files) for item, files in batched.items()} == {
        item: sorted(p.name for p in files) for item, files in alone.items()
    }


def test_text_caches_in_any_order_hold_the_same_bytes(engine, tmp_path):
    def encode(order: list[int], batch_size: int, folder: str) -> dict[str, bytes]:
        (tmp_path / folder).mkdir()
        jobs = [TextJob(f"item{i}", CAPTIONS[i], tmp_path / folder) for i in order]
        written = encode_texts(engine.models, jobs, ignore_progress, batch_size=batch_size)
        return {item: path.read_bytes() for item, path in written.items()}

    first = encode([0, 1, 2, 3, 4], 2, "first")
    assert encode([4, 3, 1, 2, 0], 2, "reordered") == first


def test_fp8_t5_encodes_near_full_precision_under_its_own_fingerprint(engine, tmp_path):
    settings = engine.settings.model_copy(update={"fp8_t5": True})
    fp8 = DiffusersEngine(settings, models_dir=engine.models_dir, device="cpu")
    jobs = {name: [TextJob("item", CAPTIONS[2], tmp_path / name)] for name in ("full", "fp8")}

    full_cache = load_text_cache(engine.encode_texts(jobs["full"], ignore_progress)["item"])
    fp8_cache = load_text_cache(fp8.encode_texts(jobs["fp8"], ignore_progress)["item"])

    assert not torch.equal(full_cache, fp8_cache), "the weights were rounded to fp8"
    assert torch.nn.functional.cosine_similarity(full_cache, fp8_cache).min() > 0.95
    assert text_fingerprint("caption", settings) != text_fingerprint("caption", engine.settings)
