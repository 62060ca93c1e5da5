"""Regional ``torch.compile`` of the UNet: each transformer block and ResNet block is
compiled on its own (blocks of one shape share the compiled code), which fuses the
normalisations, activations, LoRA adds and casts between the GEMMs at a fraction of the
compile time of the whole UNet. Inductor caches the kernels on disk for the next run.
"""
from __future__ import annotations

import torch

BLOCK_CLASSES = ("BasicTransformerBlock", "ResnetBlock2D")
# wider regions: each transformer with its norm and projections, and the resampling layers
WIDE_CLASSES = ("Transformer2DModel", "ResnetBlock2D", "Downsample2D", "Upsample2D")


def compiles_unet(cfg, device) -> bool:
    """Whether a run compiles the UNet's blocks: ``torch_compile``, the UNet trained, on a CUDA device."""
    return bool(cfg.torch_compile and cfg.train_unet and torch.device(device).type == "cuda")


def compile_unet_blocks(unet: torch.nn.Module, mode: str | None = None, classes=BLOCK_CLASSES) -> int:
    """Compile the UNet's modules of ``classes`` in place (not those inside one already compiled);
    returns how many were wrapped."""
    import torch._dynamo

    from .geglu import use_plain_geglu
    from .unit_scales import use_plain_blocks

    use_plain_geglu(unet)   # inductor fuses diffusers' own GEGLU and divisions
    use_plain_blocks(unet)
    config = torch._dynamo.config
    # one compiled graph per block shape: SDXL has ~15 distinct shapes, batch/bucket changes add more
    for name in ("cache_size_limit", "recompile_limit", "accumulated_cache_size_limit",
                 "accumulated_recompile_limit"):
        if hasattr(config, name):
            setattr(config, name, max(getattr(config, name), 256))
    count = 0
    inside: list[str] = []
    for name, module in unet.named_modules():
        if type(module).__name__ in classes and not any(name.startswith(p + ".") for p in inside):
            module.compile(dynamic=False, mode=mode)
            inside.append(name)
            count += 1
    return count
