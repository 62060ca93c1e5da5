"""Attention and ResNet blocks without their division by 1: diffusers' values and gradients, bit for bit, and
two operations fewer per block."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from benchmarks.op_counter import Ops  # noqa: E402

from lora_trainer.lora.network import build_network  # noqa: E402
from lora_trainer.models.tiny import build_tiny_components  # noqa: E402
from lora_trainer.train.unit_scales import UnitScaleAttention, use_plain_blocks, use_unit_scale_blocks  # noqa: E402


@pytest.mark.parametrize("family,dtype,checkpointing", [("sd1", torch.float32, None),
                                                        ("sdxl", torch.bfloat16, "selective")])
def test_blocks_train_as_diffusers_bit_for_bit(family, dtype, checkpointing):
    parts = build_tiny_components(family)
    unet = parts["unet"].to(dtype)
    net = build_network(family, unet, [], rank=4, alpha=2)
    net.use_compute_dtype(dtype)
    net.fuse_linears(False)   # a fused query, key and value sum their input's gradient in another order
    if checkpointing:
        from lora_trainer.train.checkpointing import checkpoint_unet_blocks
        checkpoint_unet_blocks(unet, keep_attention=True)
    unet.train()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 4, 16, 16, generator=g).to(dtype)
    ctx = torch.randn(2, 77, unet.config.cross_attention_dim, generator=g).to(dtype)
    extra = {}
    if family == "sdxl":
        text_dim = unet.config.projection_class_embeddings_input_dim - 6 * unet.config.addition_time_embed_dim
        extra["added_cond_kwargs"] = {"text_embeds": torch.randn(2, text_dim, generator=g).to(dtype),
                                      "time_ids": torch.randn(2, 6, generator=g).to(dtype)}
    results = []
    for lean in (False, True):
        count = use_unit_scale_blocks(unet) if lean else 0
        unet.zero_grad(set_to_none=True)
        with Ops() as ops:
            out = unet(x, torch.tensor([5, 900]), encoder_hidden_states=ctx, **extra).sample
            out.float().square().mean().backward()
        results.append((out.detach(), [p.grad.clone() for p in net.parameters()], ops.seen, count))
    (out0, grads0, ops0, _), (out1, grads1, ops1, count) = results
    assert torch.equal(out0, out1) and all(torch.equal(a, b) for a, b in zip(grads0, grads1))
    attentions = sum(isinstance(getattr(m, "processor", None), UnitScaleAttention) for m in unet.modules())
    resnets = count - attentions
    assert attentions > 0 and resnets > 0
    # a division less per block forward (recomputed too under checkpointing), and per block backward where a
    # trained weight lies before it
    assert ops0["div"] - ops1["div"] > count
    use_plain_blocks(unet)
    assert not any(isinstance(getattr(m, "processor", None), UnitScaleAttention) for m in unet.modules())
    # diffusers' forwards again (under diffusers 0.31 a checkpointed ResNet keeps our checkpointing around it)
    assert all(getattr(m.__dict__.get("forward"), "inner", None) is None for m in unet.modules()
               if type(m).__name__ == "ResnetBlock2D")
    assert not any("forward" in m.__dict__ for m in unet.modules() if type(m).__name__ == "Attention")


def test_other_configurations_keep_diffusers_forward():
    unet = build_tiny_components("sd1")["unet"]
    attn = next(m for m in unet.modules() if type(m).__name__ == "Attention")
    resnet = next(m for m in unet.modules() if type(m).__name__ == "ResnetBlock2D")
    attn.rescale_output_factor = 2.0
    resnet.output_scale_factor = 2.0
    use_unit_scale_blocks(unet)
    assert "forward" not in resnet.__dict__
    hidden = torch.randn(1, 5, attn.to_q.in_features)
    with Ops() as ops:
        attn(hidden)
    assert ops.seen["div"] == 1   # the attention fell back to diffusers' processor, which divides by 2
