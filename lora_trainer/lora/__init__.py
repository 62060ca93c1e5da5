"""LoRA networks: which layers, how they train, how they are saved (kohya format)."""
