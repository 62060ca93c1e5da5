"""LoRA trainer core: host-independent."""
