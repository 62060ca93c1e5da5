"""A LoRA Linear as one autograd function: autograd's values and gradients, without the add of the input's two
gradients; and the layers it must leave to autograd."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from lora_trainer.lora import fused_linear  # noqa: E402
from lora_trainer.lora import layers as L  # noqa: E402
from lora_trainer.lora.layers import ADAPTER  # noqa: E402
from lora_trainer.lora.network import DropoutSettings, build_network  # noqa: E402
from lora_trainer.models.tiny import build_tiny_components  # noqa: E402


def _layer(name="ff.net.2", alpha=2.0, dropout=None, **conv):
    unet = build_tiny_components("sd1")["unet"]
    net = build_network("sd1", unet, [], rank=4, alpha=alpha, dropout=dropout, **conv)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.1)
    return net, next(layer for _, n, layer in net.modules() if n.endswith(name))


def _run(layer, x, grad, input_grad=True):
    from benchmarks.op_counter import Ops

    layer.zero_grad(set_to_none=True)
    inp = x.clone().requires_grad_(input_grad)
    out = layer(inp)
    with Ops() as backward:
        out.backward(grad)
    return [out.detach(), inp.grad] + [p.grad for _, p in L.layer_params(layer)], backward.seen


@pytest.mark.parametrize("input_grad", [True, False])
def test_the_input_gets_one_gradient_and_the_values_are_autograds(input_grad):
    net, layer = _layer()
    assert layer.scaling[ADAPTER] == 0.5
    base = layer.base_layer
    x = torch.randn(2, 16, base.in_features, generator=torch.Generator().manual_seed(3))
    grad = torch.randn(2, 16, base.out_features, generator=torch.Generator().manual_seed(4))
    assert fused_linear.fusable(layer, x, layer.lora_A[ADAPTER], layer.lora_B[ADAPTER])
    fused, fused_ops = _run(layer, x, grad, input_grad)
    net.fuse_linears(False)
    assert not fused_linear.fusable(layer, x, layer.lora_A[ADAPTER], layer.lora_B[ADAPTER])
    plain, plain_ops = _run(layer, x, grad, input_grad)
    for ours, autograds in zip(fused, plain):
        if autograds is None:
            assert ours is None
        else:
            torch.testing.assert_close(ours, autograds, rtol=1e-5, atol=1e-6)
    adds = ("add", "add_")
    assert not any(fused_ops[op] for op in adds), fused_ops
    if input_grad:
        assert any(plain_ops[op] for op in adds), plain_ops   # what the function saves
        assert fused_ops["mm"] + fused_ops["addmm_"] == 5
    else:
        assert fused_ops["mm"] == 3 and not fused_ops["addmm_"]   # no product for the input's gradient


def test_layers_autograd_must_run_are_left_to_it():
    _, layer = _layer()
    lora_a, lora_b = layer.lora_A[ADAPTER], layer.lora_B[ADAPTER]
    x = torch.randn(4, layer.base_layer.in_features)
    assert fused_linear.fusable(layer, x, lora_a, lora_b)
    assert not fused_linear.fusable(layer, x.to(torch.bfloat16), lora_a, lora_b)   # weights in fp32
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not fused_linear.fusable(layer, x, lora_a, lora_b)
    layer.base_layer.forward = lambda t: t   # fp8_base replaces the base layer's forward
    assert not fused_linear.fusable(layer, x, lora_a, lora_b)
    del layer.base_layer.forward
    layer.base_layer.weight.requires_grad_(True)
    assert not fused_linear.fusable(layer, x, lora_a, lora_b)
    layer.base_layer.weight.requires_grad_(False)
    _, dropped = _layer(dropout=DropoutSettings(network_dropout=0.5))   # kohya's dropout: a hook on lora_A
    assert not fused_linear.fusable(dropped, x, dropped.lora_A[ADAPTER], dropped.lora_B[ADAPTER])
    _, conv = _layer("conv1", conv_rank=2, conv_alpha=1)
    assert not fused_linear.fusable(conv, torch.randn(1, conv.base_layer.in_channels, 8, 8),
                                    conv.lora_A[ADAPTER], conv.lora_B[ADAPTER])
