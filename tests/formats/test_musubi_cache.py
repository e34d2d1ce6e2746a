"""Our cache files are byte-level musubi-tuner caches: names, tensor keys, dtypes and headers.

Expected values come from musubi-tuner commit 30c658c (src/musubi_tuner/dataset/):
- image_video_dataset.py:BaseDataset.get_latent_cache_path
    f"{basename}_{w:04d}x{h:04d}_{self.architecture}.safetensors"
- image_video_dataset.py:VideoDataset.retrieve_latent_cache_batches
    item_key = f"{body}_{crop_pos:05d}-{target_frame:03d}{ext}"
- image_video_dataset.py:BaseDataset.get_text_encoder_output_cache_path
    f"{basename}_{self.architecture}_te.safetensors"
- architectures.py: ARCHITECTURE_WAN = "wan", ARCHITECTURE_WAN_FULL = "wan"
- cache_io.py:save_latent_cache_wan
    sd = {f"latents_{F}x{H}x{W}_{dtype_str}": latent}; sd[f"clip_{dtype_str}"] = clip_embed;
    sd[f"latents_image_{F}x{H}x{W}_{dtype_str}"] = image_latent
- cache_io.py:save_latent_cache_common
    {"architecture", "width", "height", "format_version": "1.0.1"} + "frame_count" when known
- cache_io.py:save_text_encoder_output_cache_wan / _common
    sd[f"varlen_t5_{dtype_str}"]; {"architecture", "caption1", "format_version": "1.0.1"}
"""

from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from wan_lora_dagster.errors import UserError
from wan_lora_dagster.formats import musubi_cache
from wan_lora_dagster.formats.cache_files import (
    ARCHITECTURE,
    LONGEST_ITEM_ID_BYTES,
    CacheFileError,
    LatentCacheName,
    latent_cache_name,
    parse_latent_cache_name,
    text_cache_name,
)
from wan_lora_dagster.formats.musubi_cache import (
    load_latent_cache,
    load_text_cache,
    save_latent_cache,
    save_text_cache,
    strip_dtype_suffix,
)


def _read_raw(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata()
    return load_file(str(path)), metadata


def _latent(channels: int = 16, frames: int = 5, dtype=torch.bfloat16) -> torch.Tensor:
    return torch.randn(channels, frames, 4, 6, generator=torch.Generator().manual_seed(0)).to(dtype)


def test_architecture_is_the_short_name_musubi_uses_for_wan():
    assert ARCHITECTURE == "wan"


def test_video_window_name_matches_the_one_musubi_wrote_on_the_gpu_machine():
    # benchmarks/README.md: musubi's wan_cache_latents wrote this name for a 45-frame window.
    assert (
        latent_cache_name("clip00", 384, 208, 0, 45) == "clip00_00000-045_0384x0208_wan.safetensors"
    )
    assert latent_cache_name("a_b", 832, 480, 120, 81) == "a_b_00120-081_0832x0480_wan.safetensors"


def test_image_and_text_names():
    assert latent_cache_name("still_01", 1024, 768) == "still_01_1024x0768_wan.safetensors"
    assert text_cache_name("clip00") == "clip00_wan_te.safetensors"


def test_musubi_training_finds_the_text_cache_of_each_latent_by_name():
    # VideoDataset.prepare_for_training: tokens = basename.split("_");
    # item_key = "_".join(tokens[:-3]); text cache f"{item_key}_{architecture}_te.safetensors";
    # tokens[-2] is "WxH" and tokens[-3] "start-frames".
    name = latent_cache_name("film_one_00012", 384, 208, 16, 33)
    tokens = name.split("_")
    assert "_".join(tokens[:-3]) + "_wan_te.safetensors" == text_cache_name("film_one_00012")
    assert tokens[-2] == "0384x0208"
    assert tokens[-3].split("-") == ["00016", "033"]


def test_names_parse_back():
    assert parse_latent_cache_name(
        "my_clip_00016-033_0384x0208_wan.safetensors"
    ) == LatentCacheName("my_clip", 384, 208, 16, 33)
    assert parse_latent_cache_name("s_0640x0480_wan.safetensors") == LatentCacheName("s", 640, 480)
    with pytest.raises(CacheFileError, match="not a musubi-tuner Wan latent cache name"):
        parse_latent_cache_name("clip00_wan_te.safetensors")


@pytest.mark.parametrize(
    "item_id", ["", "a/b", ".hidden", "tab\there", "x" * (LONGEST_ITEM_ID_BYTES + 1)]
)
def test_names_refuse_ids_that_cannot_be_a_cache_file(item_id):
    with pytest.raises(ValueError, match="cannot name a cache file"):
        text_cache_name(item_id)


def test_names_take_any_other_name_linux_allows():
    odd = "back\\slash [1] *?% 'q' \"d\" ünï 日本 -x:y"
    assert text_cache_name(odd) == f"{odd}_wan_te.safetensors"
    assert parse_latent_cache_name(latent_cache_name(odd, 64, 48, 0, 9)).item_id == odd


def test_window_needs_both_start_and_length():
    with pytest.raises(ValueError, match="both start_frame and num_frames"):
        latent_cache_name("clip", 384, 208, start_frame=0)


def test_video_latent_file_has_musubis_keys_dtypes_and_header(tmp_path):
    path = tmp_path / latent_cache_name("clip00", 384, 208, 0, 17)
    latent = _latent(frames=5)
    save_latent_cache(path, latent)
    tensors, metadata = _read_raw(path)
    assert list(tensors) == ["latents_5x4x6_bfloat16"]
    assert tensors["latents_5x4x6_bfloat16"].dtype == torch.bfloat16
    assert torch.equal(tensors["latents_5x4x6_bfloat16"], latent)
    assert metadata == {
        "architecture": "wan",
        "width": "384",
        "height": "208",
        "format_version": "1.0.1",
        "frame_count": "17",
    }


def test_i2v_latent_file_names_clip_and_image_tensors_like_musubi(tmp_path):
    path = tmp_path / latent_cache_name("clip00", 384, 208, 0, 17)
    latent, image_latent = _latent(frames=5), _latent(channels=20, frames=5)
    clip_embedding = torch.randn(3, 8).to(torch.float16)
    save_latent_cache(path, latent, clip_embedding=clip_embedding, image_latent=image_latent)
    tensors, _ = _read_raw(path)
    # musubi names the clip tensor after the latent's dtype though it stores float16
    assert set(tensors) == {
        "latents_5x4x6_bfloat16",
        "clip_bfloat16",
        "latents_image_5x4x6_bfloat16",
    }
    assert tensors["clip_bfloat16"].dtype == torch.float16
    loaded = load_latent_cache(path)
    assert torch.equal(loaded.latent, latent)
    assert torch.equal(loaded.clip_embedding, clip_embedding)
    assert torch.equal(loaded.image_latent, image_latent)


def test_content_keys_are_the_batch_keys_musubis_wan_trainer_reads():
    # BucketBatchManager.__getitem__ strips "varlen_", the dtype and (for latents_) the FxHxW;
    # wan_train_network.py then reads batch["latents"], ["latents_image"], ["clip"], ["t5"].
    def content(key):
        key = strip_dtype_suffix(key.removeprefix("varlen_"))
        return key.rsplit("_", 1)[0] if key.startswith("latents_") else key

    keys = ["latents_5x4x6_bfloat16", "latents_image_5x4x6_bfloat16", "clip_bfloat16"]
    assert [content(key) for key in [*keys, "varlen_t5_bfloat16"]] == [
        "latents",
        "latents_image",
        "clip",
        "t5",
    ]
    assert strip_dtype_suffix("latents_1x2x3_float8_e4m3fn") == "latents_1x2x3"


def test_image_latent_has_no_frame_count_and_keeps_float32(tmp_path):
    path = tmp_path / latent_cache_name("still", 640, 480)
    save_latent_cache(path, _latent(frames=1, dtype=torch.float32))
    tensors, metadata = _read_raw(path)
    assert list(tensors) == ["latents_1x4x6_float32"]
    assert metadata == {
        "architecture": "wan",
        "width": "640",
        "height": "480",
        "format_version": "1.0.1",
    }
    loaded = load_latent_cache(path)
    assert loaded.clip_embedding is None and loaded.image_latent is None
    assert loaded.metadata["width"] == "640"


def test_latent_frames_must_match_the_window_in_the_name(tmp_path):
    path = tmp_path / latent_cache_name("clip", 384, 208, 0, 33)  # 33 frames -> 9 latent frames
    with pytest.raises(ValueError, match="has 9 latent frames, the latent has 5"):
        save_latent_cache(path, _latent(frames=5))
    assert not path.exists()


def test_latent_must_be_saved_under_a_musubi_name(tmp_path):
    with pytest.raises(CacheFileError):
        save_latent_cache(tmp_path / "latent.safetensors", _latent())


def test_text_cache_has_musubis_key_and_header(tmp_path):
    path = tmp_path / text_cache_name("clip00")
    embedding = torch.randn(7, 32).to(torch.bfloat16)
    save_text_cache(path, embedding, caption="a fox runs")
    tensors, metadata = _read_raw(path)
    assert list(tensors) == ["varlen_t5_bfloat16"]
    assert tensors["varlen_t5_bfloat16"].shape == (7, 32)
    assert metadata == {"architecture": "wan", "caption1": "a fox runs", "format_version": "1.0.1"}
    assert torch.equal(load_text_cache(path), embedding)


def test_text_cache_refuses_a_padded_batch(tmp_path):
    with pytest.raises(ValueError, match="num_tokens, dim"):
        save_text_cache(tmp_path / "x_wan_te.safetensors", torch.zeros(1, 512, 32))


def test_nan_becomes_zero_as_musubi_does_and_the_callers_tensor_is_untouched(tmp_path):
    embedding = torch.tensor([[1.0, float("nan")]])
    path = tmp_path / text_cache_name("clip")
    save_text_cache(path, embedding)
    assert load_text_cache(path).tolist() == [[1.0, 0.0]]
    assert torch.isnan(embedding).any()


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / text_cache_name("clip")
    save_text_cache(path, torch.ones(2, 4))

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(musubi_cache, "_safetensors_bytes", crash)
    with pytest.raises(OSError, match="disk full"):
        save_text_cache(path, torch.zeros(2, 4))
    assert torch.equal(load_text_cache(path), torch.ones(2, 4))
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_overwrite_replaces_the_file(tmp_path):
    path = tmp_path / "sub" / text_cache_name("clip")
    save_text_cache(path, torch.ones(2, 4), caption="old")
    save_text_cache(path, torch.zeros(3, 4), caption="new")
    assert load_text_cache(path).shape == (3, 4)
    assert _read_raw(path)[1]["caption1"] == "new"


def test_a_cache_of_another_architecture_is_refused_with_advice(tmp_path):
    path = tmp_path / "clip_hunyuan_video_te.safetensors"
    save_file({"llm_bfloat16": torch.zeros(2, 2)}, str(path), metadata={"architecture": "hv"})
    with pytest.raises(CacheFileError, match="expected 'wan'; delete it to re-encode"):
        load_text_cache(path)


def test_a_broken_file_is_a_user_error_naming_it(tmp_path):
    path = tmp_path / text_cache_name("clip")
    path.write_bytes(b"not safetensors")
    with pytest.raises(UserError, match=str(path)):
        load_text_cache(path)


def test_the_same_cache_is_written_as_the_same_bytes(tmp_path):
    """safetensors orders metadata at random (a Rust HashMap); a cache's bytes must not vary."""
    paths = [tmp_path / str(index) / text_cache_name("clip") for index in range(6)]
    for path in paths:
        save_text_cache(path, torch.arange(8.0).view(2, 4), caption="rain, ünïcödé")
    assert len({path.read_bytes() for path in paths}) == 1
    assert load_text_cache(paths[0]).tolist() == torch.arange(8.0).view(2, 4).tolist()
