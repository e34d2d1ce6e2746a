"""The `diffusers` engine: diffusers Wan + peft LoRA, trained and sampled in this process.

Its entry point is engines.diffusers.engine.DiffusersEngine, imported where it is needed: it pulls
in torch and diffusers, which the graph's planning modules do without.
"""
