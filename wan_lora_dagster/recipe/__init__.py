"""The recipe: `wan_lora.toml` read into typed, validated sections (docs/architecture.md)."""
