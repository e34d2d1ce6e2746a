"""The dataset half: a 16 fps clip per curated range, and a caption per clip.

Every function returns the record it wrote; `fingerprint` is what the partition was made from and
`data_version` is what downstream assets see (they are equal where the output is a pure function
of the inputs; a caption's data version is the hash of its final text).
"""

from __future__ import annotations

from pathlib import Path

from wan_lora_dagster.captioning.backends import Captioner, CaptionerSettings
from wan_lora_dagster.captioning.rules import apply_trigger, find_banned_words
from wan_lora_dagster.captioning.store import CaptionState, CaptionStore
from wan_lora_dagster.errors import ConfigError
from wan_lora_dagster.media.cut import CutSettings, cut_clip, expected_frame_count
from wan_lora_dagster.media.frames import sample_frames
from wan_lora_dagster.media.scenes import detect_hard_cuts
from wan_lora_dagster.media.thumbnails import thumbnail_strip
from wan_lora_dagster.pipeline.catalog import Catalog
from wan_lora_dagster.project import CaptionSettings, Project, fingerprint

CLIPS_CODE_VERSION = "1"
CAPTIONS_CODE_VERSION = "1"
TINY_CAPTIONER = "tiny"


def clip_path(project: Project, clip_id: str) -> Path:
    return project.out("clips", f"{clip_id}.mp4")


def clip_fingerprint(catalog: Catalog, clip_id: str, settings: CutSettings) -> str:
    clip_range = catalog.ranges_by_clip[clip_id]
    film_hash = catalog.film_hashes[clip_range.film_stem]
    return fingerprint(
        "clips", CLIPS_CODE_VERSION, film_hash, clip_range.start, clip_range.end, settings.fps
    )


def make_clip(catalog: Catalog, clip_id: str, settings: CutSettings) -> dict:
    """Cut, resample to 16 fps, look for hard cuts and draw a thumbnail strip."""
    project = catalog.project
    clip_range = catalog.ranges_by_clip[clip_id]
    film = project.films()[clip_range.film_stem]
    info = cut_clip(film, clip_range.start, clip_range.end, clip_path(project, clip_id), settings)
    thumbnail = thumbnail_strip(info.path, project.out("thumbnails", f"{clip_id}.png"))
    version = clip_fingerprint(catalog, clip_id, settings)
    record = {
        "fingerprint": version,
        "data_version": version,
        "path": str(info.path.relative_to(project.root)),
        "film": str(film.relative_to(project.root)),
        "ranges_file": f"{clip_range.ranges_file.relative_to(project.root)}:{clip_range.line}",
        "start": clip_range.start,
        "end": clip_range.end,
        "num_frames": info.num_frames,
        "expected_frames": expected_frame_count(clip_range.duration, settings.fps),
        "duration": info.duration,
        "fps": info.fps,
        "width": info.width,
        "height": info.height,
        "scene_cuts": detect_hard_cuts(info.path),
        "thumbnail": str(thumbnail.relative_to(project.root)),
    }
    catalog.records.write("clips", clip_id, record)
    return record


def captioner_settings(
    project: Project, settings: CaptionSettings, device: str
) -> CaptionerSettings:
    """The captioner backend's settings; model 'tiny' means the offline plumbing model."""
    model = settings.model
    if model == TINY_CAPTIONER:
        model = str(project.out("models", f"tiny-{settings.captioner}"))
    return CaptionerSettings(
        captioner=settings.captioner,
        model=model,
        prompt=settings.prompt,
        frames_per_clip=settings.frames_per_clip,
        max_new_tokens=settings.max_new_tokens,
        device=device,
    )


def ensure_tiny_captioner(project: Project, captioner: str) -> Path:
    """Build the offline plumbing captioner once per project (random weights: random words)."""
    from wan_lora_dagster.captioning.tiny import build_tiny_blip2, build_tiny_qwen2vl

    build = build_tiny_blip2 if captioner == "blip2" else build_tiny_qwen2vl
    return build(project.out("models", f"tiny-{captioner}"))


def caption_store(project: Project) -> CaptionStore:
    return CaptionStore(project.captions_dir, project.out("records", "captioner_output"))


def caption_fingerprint(
    state: CaptionState, clip_version: str, settings: CaptionSettings, captioner: CaptionerSettings
) -> str:
    """A hand edit depends on its text only; an auto caption on the clip and the captioner."""
    if state.origin == "edited":
        return fingerprint(
            "captions", CAPTIONS_CODE_VERSION, "edited", state.text, settings.trigger
        )
    return fingerprint(
        "captions",
        CAPTIONS_CODE_VERSION,
        "auto",
        clip_version,
        captioner.fingerprint(),
        settings.trigger,
    )


def make_caption(
    catalog: Catalog,
    clip_id: str,
    settings: CaptionSettings,
    captioner_config: CaptionerSettings,
    captioner: Captioner | None,
) -> dict:
    """Caption a clip unless its caption was edited by hand; record the final text."""
    project = catalog.project
    store = caption_store(project)
    clip_record = catalog.records.read("clips", clip_id)
    state = store.state(clip_id)
    if state.origin != "edited":
        if captioner is None:
            raise ConfigError(
                f"{state.path}: no caption for clip {clip_id}, and [captions] captioner is 'none'. "
                "Write the caption in that file, or choose a captioner in wan_lora.toml."
            )
        frames = sample_frames(project.root / clip_record["path"], settings.frames_per_clip)
        generated = captioner.caption(frames, settings.prompt)
        state = store.write_auto(
            clip_id, apply_trigger(generated, settings.trigger), captioner_config.fingerprint()
        )
    final_text = apply_trigger(state.text, settings.trigger)
    record = {
        "fingerprint": caption_fingerprint(
            state, clip_record["data_version"], settings, captioner_config
        ),
        "data_version": fingerprint("caption-text", final_text),
        "text": final_text,
        "origin": state.origin,
        "path": str(state.path.relative_to(project.root)),
        "banned_words": find_banned_words(final_text, settings.banned_words),
    }
    catalog.records.write("captions", clip_id, record)
    return record
