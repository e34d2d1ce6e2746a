"""A fake musubi-tuner clone, fake weights and a small mixed project, for the musubi engine tests.

Plain functions (no pytest) so that a driver script run in a subprocess can build the same.
The project: clips fight_0001..0003 under two video sections (fight_0003 held out; fight_0002's
file is not named after its id), still `poster` under an image section, and cache files in
musubi's names, as the graph lays them out (out/cache/<section>/, out/cache/text/).
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path

from wan_lora_dagster.engines.base import LatentJob, TextJob, TrainRequest
from wan_lora_dagster.engines.musubi.locate import SCRIPTS
from wan_lora_dagster.formats.cache_files import latent_cache_name, text_cache_name
from wan_lora_dagster.formats.manifest import ManifestEntry, TrainingSetManifest
from wan_lora_dagster.recipe.datasets import DatasetSection
from wan_lora_dagster.recipe.training import TrainingSettings

FAKE_SCRIPTS = Path(__file__).with_name("fake_musubi_scripts.py")
SECTIONS = (
    DatasetSection(name="motion", source="clips", resolution=(384, 208), target_frames=(45,)),
    DatasetSection(
        name="long",
        source="clips",
        resolution=(256, 144),
        target_frames=(17, 33),
        frame_extraction="uniform",
        frame_sample=3,
        frame_stride=2,
        max_frames=81,
        num_repeats=2,
        batch_size=2,
    ),
    DatasetSection(
        name="stills",
        source="stills",
        resolution=(512, 512),
        num_repeats=3,
        bucket_no_upscale=True,
    ),
)
CAPTIONS = {
    "fight_0001": 'two fighters trade blows, "slow motion"',
    "fight_0002": "a kick in the rain, 雨の中の蹴り",
    "fight_0003": "held-out clip: a sword duel at dusk",
    "poster": "a painted poster of the studio's hero \\ backslash",
}
HELD_OUT = {"fight_0003"}
MEDIA_NAMES = {
    "fight_0001": "fight_0001.mp4",
    "fight_0002": "take 2 (final).mp4",
    "fight_0003": "fight_0003.mp4",
    "poster": "poster.png",
}
HEADER = {"wan_lora.training_set": "manifest-under-test", "wan_lora.train_id": "abc123"}
# Per epoch: motion 2 clips / batch 1 = 2, long 2 clips x 2 repeats / batch 2 = 2, stills 3.
STEPS_PER_EPOCH = 7


def write_safetensors(path: Path, tensors: dict[str, str], metadata: dict | None = None) -> Path:
    """A valid safetensors file with a 2-value tensor of each given dtype name ("BF16", "F32")."""
    sizes = {"BF16": 2, "F16": 2, "F32": 4, "F8_E4M3": 1}
    header, offset = {}, 0
    for key, dtype in tensors.items():
        length = 2 * sizes[dtype]
        header[key] = {"dtype": dtype, "shape": [2], "data_offsets": [offset, offset + length]}
        offset += length
    if metadata:
        header["__metadata__"] = metadata
    blob = json.dumps(header).encode()
    blob += b" " * (-len(blob) % 8)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(struct.pack("<Q", len(blob)) + blob + bytes(offset))
    return path


def make_fake_musubi(root: Path) -> Path:
    """A musubi-tuner "clone" whose four Wan scripts are the fake."""
    package = root / "src" / "musubi_tuner"
    package.mkdir(parents=True, exist_ok=True)
    for name in SCRIPTS:
        (package / f"{name}.py").symlink_to(FAKE_SCRIPTS)
    return root


def make_weights(folder: Path, dit_dtype: str = "BF16") -> dict[str, str]:
    folder.mkdir(parents=True, exist_ok=True)
    dit = write_safetensors(
        folder / f"dit_{dit_dtype}.safetensors", {"blocks.0.cross_attn.k.weight": dit_dtype}
    )
    weights = {"dit": str(dit)}
    for name in ("vae", "t5", "clip"):
        (folder / f"{name}.pth").write_bytes(b"weights")
        weights[name] = str(folder / f"{name}.pth")
    return weights


def musubi_settings(clone: Path, weights: dict[str, str], **overrides) -> TrainingSettings:
    base = {
        "engine": "musubi",
        "musubi_dir": str(clone),
        "dit": weights["dit"],
        "vae": weights["vae"],
        "t5": weights["t5"],
        "network_dim": 4,
        "network_alpha": 4.0,
        "max_train_epochs": 4,
        "save_every_n_epochs": 1,
    }
    return TrainingSettings(**{**base, **overrides})


@dataclass(frozen=True)
class MiniProject:
    root: Path
    latent_jobs: tuple[LatentJob, ...]
    text_jobs: tuple[TextJob, ...]

    @property
    def cache_root(self) -> Path:
        return self.root / "out" / "cache"

    def media(self, item_id: str) -> Path:
        return self.root / "media" / MEDIA_NAMES[item_id]


def make_project(root: Path) -> MiniProject:
    """Media files and the cache jobs of the mixed project (no caches yet)."""
    latent_jobs = []
    for item_id, file_name in MEDIA_NAMES.items():
        media = root / "media" / file_name
        media.parent.mkdir(parents=True, exist_ok=True)
        media.write_bytes(b"not really a video")
        sources = "stills" if file_name.endswith(".png") else "clips"
        for section in SECTIONS:
            if section.source == sources:
                folder = root / "out" / "cache" / section.name
                latent_jobs.append(LatentJob(item_id, media, section, folder))
    text_jobs = tuple(
        TextJob(item_id, caption, root / "out" / "cache" / "text")
        for item_id, caption in CAPTIONS.items()
    )
    return MiniProject(root, tuple(latent_jobs), text_jobs)


def latent_name(job: LatentJob) -> str:
    """The file the fake (and musubi, for a clip long enough) writes for one job."""
    width, height = job.section.resolution
    if job.section.source == "stills":
        return latent_cache_name(job.item_id, width, height)
    return latent_cache_name(job.item_id, width, height, 0, job.section.target_frames[0])


def make_caches(project: MiniProject) -> TrainingSetManifest:
    """Cache files in musubi's names, and the manifest the graph would build over them."""
    entries = []
    for job in project.latent_jobs:
        latent = write_safetensors(
            job.cache_dir / latent_name(job), {"latents_1x2x2_bfloat16": "BF16"}
        )
        text = write_safetensors(
            project.cache_root / "text" / text_cache_name(job.item_id),
            {"varlen_t5_bfloat16": "BF16"},
        )
        entries.append(
            ManifestEntry(
                item_id=job.item_id,
                kind="still" if job.section.source == "stills" else "clip",
                section=job.section.name,
                latent_files=(str(latent.relative_to(project.root)),),
                text_file=str(text.relative_to(project.root)),
                caption=CAPTIONS[job.item_id],
                caption_origin="auto",
                caption_version="c",
                latent_version="l",
                text_version="t",
                num_repeats=job.section.num_repeats,
                held_out=job.item_id in HELD_OUT,
            )
        )
    return TrainingSetManifest(tuple(entries), root=project.root)


def train_request(
    manifest: TrainingSetManifest, settings: TrainingSettings, output_dir: Path
) -> TrainRequest:
    return TrainRequest(manifest, settings, SECTIONS, output_dir, "lora-abc123", dict(HEADER))
