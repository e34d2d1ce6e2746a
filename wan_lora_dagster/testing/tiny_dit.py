"""The tiny model's transformer as a musubi-tuner / ComfyUI-format DiT file (original Wan key
names), for tests of what loads `[training] dit`. Plain functions: no pytest."""

from __future__ import annotations

from pathlib import Path

from safetensors.torch import load_file, save_file

from wan_lora_dagster.engines.musubi.single_file import HEAD_DIM_FIELD

# diffusers name part -> original Wan name part, applied in this order to every key
_TO_ORIGINAL = (
    ("condition_embedder.time_embedder.linear_1.", "time_embedding.0."),
    ("condition_embedder.time_embedder.linear_2.", "time_embedding.2."),
    ("condition_embedder.text_embedder.linear_1.", "text_embedding.0."),
    ("condition_embedder.text_embedder.linear_2.", "text_embedding.2."),
    ("condition_embedder.time_proj.", "time_projection.1."),
    ("condition_embedder.image_embedder.norm1.", "img_emb.proj.0."),
    ("condition_embedder.image_embedder.ff.net.0.proj.", "img_emb.proj.1."),
    ("condition_embedder.image_embedder.ff.net.2.", "img_emb.proj.3."),
    ("condition_embedder.image_embedder.norm2.", "img_emb.proj.4."),
    (".attn1.", ".self_attn."),
    (".attn2.", ".cross_attn."),
    (".to_q.", ".q."),
    (".to_k.", ".k."),
    (".to_v.", ".v."),
    (".to_out.0.", ".o."),
    (".add_k_proj.", ".k_img."),
    (".add_v_proj.", ".v_img."),
    (".norm_added_k.", ".norm_k_img."),
    (".norm2.", ".norm3."),  # a block's cross-attention norm: norm3 in the original
    (".ffn.net.0.proj.", ".ffn.0."),
    (".ffn.net.2.", ".ffn.2."),
    (".scale_shift_table", ".modulation"),
)
_TOP_LEVEL = {"scale_shift_table": "head.modulation", "proj_out.weight": "head.head.weight"}
_TOP_LEVEL["proj_out.bias"] = "head.head.bias"


def original_key(key: str) -> str:
    if key in _TOP_LEVEL:
        return _TOP_LEVEL[key]
    for diffusers_part, original_part in _TO_ORIGINAL:
        key = key.replace(diffusers_part, original_part)
    return key


def write_tiny_musubi_dit(tiny_model_dir: Path, path: Path) -> Path:
    """The tiny transformer's float32 weights under original names, its head width in the
    header (Wan releases all use 128; the tiny model 8)."""
    weights = load_file(tiny_model_dir / "transformer" / "diffusion_pytorch_model.safetensors")
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(
        {original_key(key): tensor.contiguous() for key, tensor in weights.items()},
        str(path),
        metadata={HEAD_DIM_FIELD: "8"},
    )
    return path
