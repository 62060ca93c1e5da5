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
    assert fused_linear.fusable_weights(layer, x)
    fused, fused_ops = _run(layer, x, grad, input_grad)
    net.fuse_linears(False)
    assert fused_linear.fusable_weights(layer, x) is None
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
    x = torch.randn(4, layer.base_layer.in_features)
    assert fused_linear.fusable_weights(layer, x)
    assert fused_linear.fusable_weights(layer, x.to(torch.bfloat16)) is None   # weights in fp32
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert fused_linear.fusable_weights(layer, x) is None
    layer.base_layer.forward = lambda t: t   # fp8_base replaces the base layer's forward
    assert fused_linear.fusable_weights(layer, x) is None
    del layer.base_layer.forward
    layer.base_layer.weight.requires_grad_(True)
    assert fused_linear.fusable_weights(layer, x) is None
    layer.base_layer.weight.requires_grad_(False)
    _, dropped = _layer(dropout=DropoutSettings(network_dropout=0.5))   # kohya's dropout: a hook on lora_A
    assert fused_linear.fusable_weights(dropped, x) is None
    assert L._autocast_on("meta") is False   # a device autocast does not know is no error (FLOP counts run there)
    _, conv = _layer("conv1", conv_rank=2, conv_alpha=1)
    assert fused_linear.fusable_weights(conv, torch.randn(1, conv.base_layer.in_channels, 8, 8)) is None


def test_a_self_attention_gives_its_input_one_gradient():
    """With diffusers' division by 1 left out (``train/unit_scales``), a self-attention's query, key and value
    run as one function: no add in its backward pass; values and gradients are autograd's."""
    from benchmarks.op_counter import Ops
    from lora_trainer.train.unit_scales import use_unit_scale_blocks

    net, _ = _layer()
    unet = net.components[0].model
    assert use_unit_scale_blocks(unet) > 0
    attn = unet.down_blocks[0].attentions[0].transformer_blocks[0].attn1
    x = torch.randn(2, 16, attn.to_q.base_layer.in_features, generator=torch.Generator().manual_seed(5))
    results, seen = [], []
    for fused in (True, False):
        net.fuse_linears(fused)
        attn.zero_grad(set_to_none=True)
        inp = x.clone().requires_grad_(True)
        out = attn(inp)
        with Ops() as backward:
            out.square().sum().backward()
        results.append([out.detach(), inp.grad] + [p.grad for p in net.parameters() if p.grad is not None])
        seen.append(backward.seen)
    assert len(results[0]) == len(results[1]) == 2 + 8   # q, k, v and out: A and B each
    for ours, autograds in zip(*results):
        torch.testing.assert_close(ours, autograds, rtol=1e-5, atol=1e-6)
    assert not seen[0]["add"] and not seen[0]["add_"], seen[0]
    assert seen[1]["add"] + seen[1]["add_"] >= 6, seen[1]   # 4 layers' two paths, 3 projections of one input
