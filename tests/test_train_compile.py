"""Regional torch.compile: which UNet modules are wrapped (compiling itself is lazy: nothing runs here)."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from lora_trainer.models.tiny import build_tiny_components  # noqa: E402
from lora_trainer.train.compile import BLOCK_CLASSES, WIDE_CLASSES, compile_unet_blocks  # noqa: E402


def compiled(unet) -> list[str]:
    return [name for name, m in unet.named_modules() if getattr(m, "_compiled_call_impl", None) is not None]


@pytest.mark.parametrize("classes", [BLOCK_CLASSES, WIDE_CLASSES])
def test_each_region_is_compiled_once_and_never_inside_another(classes):
    unet = build_tiny_components("sdxl")["unet"]
    expected = [name for name, m in unet.named_modules() if type(m).__name__ in classes]
    count = compile_unet_blocks(unet, classes=classes)
    names = compiled(unet)
    assert count == len(names) > 0
    assert not any(a != b and b.startswith(a + ".") for a in names for b in names)
    # every module of the classes is compiled or inside a compiled one
    assert all(any(n == c or n.startswith(c + ".") for c in names) for n in expected)
    assert {type(unet.get_submodule(n)).__name__ for n in names} <= set(classes)
