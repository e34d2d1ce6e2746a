"""musubi-tuner's side of benchmarks/same_math_gpu.py: ITS model, LoRA network and training-step
code, imported in this process from the checkout at $MUSUBI_TUNER_DIR and run as its trainer runs
them (training/trainer_base.py `_load_dit_and_swap`, `_build_network`, `_prepare_with_accelerator`
and the training loop's `process_batch`; wan_train_network.py `load_transformer` and `call_dit`).

Where its trainer reads a file, the same thing is done in memory, by its own functions:
- the DiT: `load_wan_model` builds a `WanModel` from the task's config and loads a file; here the
  same model takes the shared random state dict, through `WanModel.fp8_optimization` (the
  in-memory twin of the loader's fp8 path: the same block-wise scaled quantization) for
  `--fp8_base --fp8_scaled`, else cast to the DiT dtype as the loader casts it;
- the DiT's dtype, which `handle_model_specific_args` reads off the file (`detect_wan_sd_dtype`);
- the batch: its own `BucketBatchManager` reads the cache files, and accelerate's
  `send_to_device` moves it as its prepared data loader does.
"""

from __future__ import annotations

import copy
import importlib
import importlib.machinery
import importlib.util
import sys
import types
from dataclasses import dataclass
from pathlib import Path

import torch

# the musubi modules a step uses, by the name this file calls them
MODULES = {
    "trainer": "wan_train_network",
    "bucket": "dataset.bucket",
    "dataset": "dataset.image_video_dataset",
    "scheduling": "modules.scheduling_flow_match_discrete",
    "lora_wan": "networks.lora_wan",
    "accelerator_setup": "training.accelerator_setup",
    "parser_common": "training.parser_common",
    "model": "wan.modules.model",
}


@dataclass
class MusubiStep:
    """One step of musubi's: the loss of the compared step, the loss of the step as its trainer
    gives it (t * 1000 + 1), and each LoRA module's (lora_down, lora_up) gradients on the CPU."""

    loss: float
    loss_as_shipped: float
    grads: dict[str, tuple[torch.Tensor, torch.Tensor]]


def import_musubi(checkout: Path) -> types.SimpleNamespace:
    """musubi's modules, importable where its optional imports are not: its trainer modules import
    torchvision (only their sample-image code uses it), and wan/modules/t5.py asks CUDA for a
    default device at import (the precedent: tests/engines/musubi/test_musubi_dit_shapes.py)."""
    import diffusers  # noqa: F401 -- their optional-package checks run before the stand-in below
    import transformers  # noqa: F401

    if str(checkout / "src") not in sys.path:
        sys.path.insert(0, str(checkout / "src"))
    if importlib.util.find_spec("torchvision") is None:
        _torchvision_stand_in()
    if not torch.cuda.is_available():
        torch.cuda.current_device = lambda: 0
    return types.SimpleNamespace(
        **{name: importlib.import_module(f"musubi_tuner.{path}") for name, path in MODULES.items()}
    )


def _torchvision_stand_in() -> None:
    """Empty `torchvision` modules, for a machine without torchvision (ours: it does not import
    with the CPU torch): musubi imports it at the top of its trainer, and a step never calls it."""
    for name in ("torchvision", "torchvision.transforms", "torchvision.transforms.functional"):
        module = types.ModuleType(name)
        module.__spec__ = importlib.machinery.ModuleSpec(name, None, is_package=True)
        module.__path__ = []
        sys.modules[name] = module
    sys.modules["torchvision"].transforms = sys.modules["torchvision.transforms"]
    sys.modules["torchvision.transforms"].functional = sys.modules[
        "torchvision.transforms.functional"
    ]


class MusubiTrainer:
    """musubi's WanNetworkTrainer for one task, set up by its own argument parser and its own
    `handle_model_specific_args`, and its accelerator."""

    def __init__(self, musubi, task: str, dtype: torch.dtype, rank: int, fp8: bool, shape):
        """shape: dim, ffn_dim, heads, layers (benchmarks/_gpu_models.ModelShape): the task's
        config with these sizes (the task's own in the real-shape run)."""
        self.m = musubi
        arguments = [
            "--task", task, "--dit", "in-memory", "--sdpa", "--gradient_checkpointing",
            "--mixed_precision", "bf16" if dtype == torch.bfloat16 else "no",
            "--network_module", "networks.lora_wan", "--network_dim", str(rank),
            "--network_alpha", str(rank),
            # the given timesteps pass through unchanged only with "uniform" (trainer_base)
            "--timestep_sampling", "uniform",
        ] + (["--fp8_base", "--fp8_scaled"] if fp8 else [])  # fmt: skip
        parser = musubi.trainer.wan_setup_parser(musubi.parser_common.setup_parser_common())
        self.args = parser.parse_args(arguments)
        self.args.dit_dtype = None  # as its main() does: read off the DiT
        self.trainer = musubi.trainer.WanNetworkTrainer()
        detect = musubi.trainer.detect_wan_sd_dtype
        musubi.trainer.detect_wan_sd_dtype = lambda path: dtype  # no file: in memory
        try:
            self.trainer.handle_model_specific_args(self.args)
        finally:
            musubi.trainer.detect_wan_sd_dtype = detect
        self.trainer.blocks_to_swap = 0
        self.trainer.config = config = copy.deepcopy(self.trainer.config)  # not the shared one
        config.update(
            dim=shape.dim, ffn_dim=shape.ffn_dim, num_heads=shape.heads, num_layers=shape.layers
        )
        self.accelerator = musubi.accelerator_setup.prepare_accelerator(self.args)
        self.device = self.accelerator.device
        self.dtype = dtype
        self.fp8 = fp8

    def shapes(self) -> dict[str, list[int]]:
        """The state-dict shapes of the task's WanModel (built on the meta device)."""
        from accelerate import init_empty_weights

        with init_empty_weights():
            model = self._empty_model()
        return {key: list(tensor.shape) for key, tensor in model.state_dict().items()}

    def _empty_model(self):
        config = self.trainer.config
        return self.m.model.WanModel(
            model_type="i2v" if config.i2v else ("flf2v" if config.flf2v else "t2v"),
            model_version="2.2" if config.v2_2 else "2.1",
            dim=config.dim, eps=config.eps, ffn_dim=config.ffn_dim,
            freq_dim=config.freq_dim, in_dim=config.in_dim, num_heads=config.num_heads,
            num_layers=config.num_layers, out_dim=config.out_dim, text_len=config.text_len,
            attn_mode="torch", split_attn=False,
        )  # fmt: skip

    def model(self, state: dict):
        """`load_wan_model`'s model over the shared state dict (its tensors are shared, not
        copied, except those fp8 quantizes)."""
        from accelerate import init_empty_weights

        with init_empty_weights():
            model = self._empty_model()
            if not self.fp8:
                model.to(self.dtype)
        state = {key: tensor.to(self.device) for key, tensor in state.items()}
        if self.fp8:
            state = model.fp8_optimization(state, self.device, move_to_device=True)
        model.load_state_dict(state, strict=True, assign=True)
        if not self.fp8:
            model = model.to(self.dtype)
        model.eval().requires_grad_(False)
        return model

    def network(self, model, lora_weights: dict[str, tuple[torch.Tensor, torch.Tensor]]):
        """`_build_network` and `_prepare_with_accelerator`: the LoRA on every linear of the
        blocks, checkpointing on, training mode; its weights set to the shared initial ones."""
        args = self.args
        network = self.m.lora_wan.create_arch_network(
            1.0, args.network_dim, args.network_alpha, None, None, model,
            neuron_dropout=args.network_dropout,
        )  # fmt: skip
        network.apply_to(None, model, apply_text_encoder=False, apply_unet=True)
        model.enable_gradient_checkpointing(args.gradient_checkpointing_cpu_offload)
        network.enable_gradient_checkpointing()
        with torch.no_grad():
            for lora in network.unet_loras:
                down, up = lora_weights[lora.lora_name]
                lora.lora_down.weight.copy_(down)
                lora.lora_up.weight.copy_(up)
        network.to(self.device)
        model.train()
        network.prepare_grad_etc(model)
        network.on_epoch_start(model)
        return network

    def batch(self, latent_file: Path, text_file: Path, bucket: tuple, count: int) -> dict:
        """The batch its data loader gives: `count` copies of the item read by its own batch
        manager (one item per sample, as repeats are), moved to the device."""
        from accelerate.utils import send_to_device

        items = []
        for index in range(count):
            item = self.m.dataset.ItemInfo(
                f"item{index}",
                "",
                bucket[:2],
                bucket,
                bucket[2],
                latent_cache_path=str(latent_file),
            )
            item.text_encoder_output_cache_path = str(text_file)
            items.append(item)
        manager = self.m.bucket.BucketBatchManager({bucket: items}, batch_size=count)
        return send_to_device(manager[0], self.device)

    def step(self, model, network, batch: dict, noise: torch.Tensor, t: list[float]) -> MusubiStep:
        """The training loop's `process_batch` (noisy input and timesteps, `call_dit`,
        `compute_loss`) and backward, its model given t * 1000, as ours is; then, without
        gradients, the step as shipped (its trainer adds 1: t * 1000 + 1)."""
        trainer, args = self.trainer, self.args
        scheduler = self.m.scheduling.FlowMatchDiscreteScheduler(
            shift=args.discrete_flow_shift, reverse=True, solver="euler"
        )
        latents = trainer.scale_shift_latents(batch["latents"])
        noise = noise.to(device=self.device, dtype=latents.dtype)  # as randn_like(latents)
        batch["timesteps"] = list(t)
        dit_dtype, network_dtype = trainer.dit_dtype, torch.float32

        def loss_of(shift: float) -> torch.Tensor:
            noisy, timesteps = trainer.get_noisy_model_input_and_timesteps(
                args, noise, latents, batch["timesteps"], scheduler, self.device, dit_dtype
            )
            output = trainer.call_dit(
                args, self.accelerator, model, latents, batch, noise, noisy,
                timesteps + shift, network_dtype,
            )  # fmt: skip
            loss, _ = trainer.compute_loss(
                args, output, timesteps, scheduler, dit_dtype, network_dtype, 0
            )
            return loss

        with torch.no_grad():
            as_shipped = loss_of(0.0).item()
        network.on_step_start()
        loss = loss_of(-1.0)  # undo its `timesteps += 1`
        self.accelerator.backward(loss)
        grads = {
            lora.lora_name: (
                lora.lora_down.weight.grad.float().cpu(),
                lora.lora_up.weight.grad.float().cpu(),
            )
            for lora in network.unet_loras
        }
        return MusubiStep(loss.item(), as_shipped, grads)
