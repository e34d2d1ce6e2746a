import numpy as np
import pytest
import torch
from PIL import Image

from wan_lora_dagster.engines.base import LatentJob, Progress, TextJob
from wan_lora_dagster.engines.diffusers.encoding import normalised_latents
from wan_lora_dagster.engines.diffusers.engine import DiffusersEngine
from wan_lora_dagster.errors import EngineError, UserError
from wan_lora_dagster.formats.cache_files import latent_cache_name, text_cache_name
from wan_lora_dagster.formats.musubi_cache import load_latent_cache, load_text_cache
from wan_lora_dagster.media.frames import read_frames
from wan_lora_dagster.recipe.datasets import DatasetSection
from wan_lora_dagster.recipe.training import TrainingSettings


def ignore_progress(progress: Progress) -> None:
    pass


def test_each_window_is_cached_at_its_bucket_and_frame_count(engine, tmp_path, make_clip, section):
    clip = make_clip(tmp_path / "wide.mp4", seed=1, num_frames=17, size=48)
    section = section.model_copy(update={"target_frames": (5, 13), "resolution": (32, 32)})
    reports = []

    written = engine.encode_latents(
        [LatentJob("wide", clip, section, tmp_path / "cache")], reports.append
    )

    assert [path.name for path in written["wide"]] == [
        latent_cache_name("wide", 32, 32, 0, 5),
        latent_cache_name("wide", 32, 32, 0, 13),
    ]
    latent_channels = engine.models.vae.config.z_dim
    shapes = [tuple(load_latent_cache(path).latent.shape) for path in written["wide"]]
    # 1 + (frames - 1) / 4 latent frames, 8x smaller sides
    assert shapes == [(latent_channels, 2, 4, 4), (latent_channels, 4, 4, 4)]
    assert [(r.stage, r.done, r.total) for r in reports] == [("latents", 1, 1)]


def test_cached_latents_are_normalised_like_musubi(engine, tmp_path, make_clip, section):
    """Caches hold (posterior mode - latents_mean) / latents_std, as musubi-tuner's do."""
    clip = make_clip(tmp_path / "clip.mp4", seed=2, num_frames=5)
    five_frames = section.model_copy(update={"target_frames": (5,)})
    written = engine.encode_latents([LatentJob("c", clip, five_frames, tmp_path)], ignore_progress)

    vae = engine.models.vae
    pixels = torch.from_numpy(read_frames(clip)).permute(3, 0, 1, 2)[None].float() / 127.5 - 1
    with torch.no_grad():
        mode = vae.encode(pixels).latent_dist.mode()[0]
    mean = torch.tensor(vae.config.latents_mean).view(-1, 1, 1, 1)
    std = torch.tensor(vae.config.latents_std).view(-1, 1, 1, 1)

    cached = load_latent_cache(written["c"][0]).latent
    torch.testing.assert_close(cached, (mode - mean) / std)
    assert not torch.allclose(cached, mode, atol=1e-3)  # the statistics change the numbers


def test_a_still_is_one_latent_frame_named_by_its_own_size(engine, tmp_path):
    image = tmp_path / "poster.png"
    Image.fromarray(np.full((40, 56, 3), 200, dtype=np.uint8)).save(image)
    stills = DatasetSection(name="stills", source="stills", resolution=(32, 32))

    written = engine.encode_latents([LatentJob("poster", image, stills, tmp_path)], ignore_progress)

    [path] = written["poster"]

    assert path.name == latent_cache_name("poster", 56, 40)
    latent = load_latent_cache(path).latent
    assert latent.shape[1] == 1  # one frame
    assert latent.shape[2:] == (32 // 8, 32 // 8)  # a 32x32 bucket has the nearest aspect


def test_one_clip_under_two_sections_keeps_both_sections_files(
    engine, tmp_path, make_clip, section
):
    clip = make_clip(tmp_path / "clip.mp4", seed=3)
    short = section.model_copy(update={"name": "short", "target_frames": (1,)})
    jobs = [
        LatentJob("c", clip, section, tmp_path / "a"),
        LatentJob("c", clip, short, tmp_path / "b"),
    ]

    written = engine.encode_latents(jobs, ignore_progress)

    assert sorted(path.parent.name for path in written["c"]) == ["a", "b"]


def test_normalised_latents_have_the_vae_compression(engine):
    video = torch.zeros(1, 3, 9, 64, 48)
    latents = normalised_latents(engine.models, video)
    assert latents.shape == (1, engine.models.vae.config.z_dim, 3, 8, 6)


def test_text_cache_is_trimmed_to_the_caption_tokens(engine, tmp_path):
    captions = {"short": "rain", "long": "a woman walks through the rain at night"}
    jobs = [TextJob(item, text, tmp_path) for item, text in captions.items()]

    written = engine.encode_texts(jobs, ignore_progress)

    tokenizer = engine.models.tokenizer
    for item, text in captions.items():
        assert written[item].name == text_cache_name(item)
        embedding = load_text_cache(written[item])
        assert embedding.shape == (
            len(tokenizer(text).input_ids),
            engine.models.text_encoder.config.d_model,
        )


def test_missing_clip_is_a_user_error_naming_it(engine, tmp_path, section):
    missing = tmp_path / "gone.mp4"
    with pytest.raises(UserError, match=r"gone\.mp4"):
        engine.encode_latents([LatentJob("gone", missing, section, tmp_path)], ignore_progress)


def test_check_names_a_missing_model_folder(tmp_path):
    settings = TrainingSettings(model=str(tmp_path / "Wan2.1-T2V-1.3B-Diffusers"))
    engine = DiffusersEngine(settings, models_dir=tmp_path)

    with pytest.raises(EngineError, match=r"Wan2\.1-T2V-1\.3B-Diffusers"):
        engine.check()


def test_check_names_missing_components(tmp_path):
    folder = tmp_path / "half"
    (folder / "transformer").mkdir(parents=True)
    (folder / "model_index.json").write_text("{}")
    engine = DiffusersEngine(TrainingSettings(model=str(folder)), models_dir=tmp_path)

    with pytest.raises(EngineError, match="vae/"):
        engine.check()
