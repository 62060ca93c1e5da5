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


@pytest.mark.parametrize("fp8", [False, True])
def test_a_block_with_lora_traces_as_one_graph_and_trains_as_eager(fp8):
    """torch_compile compiles each transformer block whole: the LoRA layers' forward must not break the graph
    (``fullgraph``), and the compiled block's output and gradients are the eager ones (``aot_eager``: the
    traced forward and backward run as recorded, no code generated). No autograd function of ours is traced:
    on a CUDA GPU one made the compiled backward skip the attention (``benchmarks/compile_check.py``)."""
    from lora_trainer.lora.network import build_network
    from lora_trainer.train.fp8 import FP8, store_in_fp8

    if fp8 and FP8 is None:
        pytest.skip("this torch has no float8")

    torch.manual_seed(0)
    unet = build_tiny_components("sd1")["unet"]
    network = build_network("sd1", unet, [], rank=4, alpha=2)
    with torch.no_grad():
        for p in network.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    block = unet.down_blocks[0].attentions[0].transformer_blocks[0]
    if fp8:
        assert store_in_fp8(block, torch.float32) > 0
    x = torch.randn(2, 16, block.norm1.normalized_shape[0], requires_grad=True)
    context = torch.randn(2, 77, unet.config.cross_attention_dim)

    def run(fn):
        x.grad = None
        for p in network.parameters():
            p.grad = None
        out = fn(x, encoder_hidden_states=context)
        out.square().mean().backward()
        return [out.detach(), x.grad.clone()] + [p.grad.clone() for p in network.parameters() if p.grad is not None]

    traced_ops = []

    def recording(graph_module, example_inputs):
        traced_ops.extend(str(node.target) for node in graph_module.graph.nodes)
        return graph_module

    eager = run(block)
    assert network.num_modules() > 0
    torch._dynamo.reset()
    torch.compile(block, backend=recording, fullgraph=True)(x, encoder_hidden_states=context)
    # eagerly the LoRA Linears run as one autograd function each (lora/fused_linear), fp8 layers as another
    # (train/fp8); compiled, both are plain operations
    assert traced_ops and not any("autograd_function_apply" in op for op in traced_ops)
    torch._dynamo.reset()
    traced = run(torch.compile(block, backend="aot_eager", fullgraph=True))
    assert len(eager) == len(traced) > 2
    for a, b in zip(eager, traced):
        torch.testing.assert_close(a, b)
