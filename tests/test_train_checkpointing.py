"""Gradient checkpointing variants give the gradients of the plain step (tiny SD1 / SDXL UNets, CPU).

The captured CUDA step keeps the self-attention outputs through selective checkpointing; the
eager step recomputes everything. Both must only trade memory for time, never change the LoRA's
gradients. Also: bf16 runs without autocast, so the step casts its inputs itself.
"""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from lora_trainer.train.graphs import gradient_checkpointing_without_rng, keep_self_attention_outputs  # noqa: E402


def lora_unet(family: str):
    from lora_trainer.lora.network import build_network
    from lora_trainer.models.tiny import build_tiny_components
    from lora_trainer.train.unit_scales import use_unit_scale_blocks

    unet = build_tiny_components(family, seed=0)["unet"]
    network = build_network(family, unet, [], rank=4, alpha=4)
    use_unit_scale_blocks(unet)   # as train runs it: self-attention projections as one function
    torch.manual_seed(1)
    with torch.no_grad():
        for p in network.parameters():
            p.add_(torch.randn_like(p) * 0.05)   # lora_B starts at zero: give it a gradient path
    unet.train()
    return unet, network


def gradients(unet, network, family: str) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    cfg = unet.config
    sample = torch.randn(2, cfg.in_channels, 16, 16, generator=gen)
    hidden = torch.randn(2, 77, cfg.cross_attention_dim, generator=gen)
    kwargs = {}
    if family == "sdxl":
        kwargs["added_cond_kwargs"] = {"text_embeds": torch.randn(2, cfg.projection_class_embeddings_input_dim - 6 * cfg.addition_time_embed_dim, generator=gen),
                                       "time_ids": torch.tensor([[16.0, 16, 0, 0, 16, 16]] * 2)}
    out = unet(sample, torch.tensor([10, 500]), encoder_hidden_states=hidden, **kwargs).sample
    out.float().pow(2).mean().backward()
    grads = [p.grad.detach().clone() for p in network.parameters()]
    for p in network.parameters():
        p.grad = None
    return grads


@pytest.mark.parametrize("family", ["sd1", "sdxl"])
def test_checkpointing_variants_give_the_same_gradients(family, monkeypatch):
    if keep_self_attention_outputs() is None:
        pytest.skip("this torch has no selective checkpointing")
    unet, network = lora_unet(family)
    plain = gradients(unet, network, family)
    unet.enable_gradient_checkpointing()
    why_not = gradient_checkpointing_without_rng(unet)
    if why_not:   # diffusers before 0.32 (the WebUI stacks) checkpoints its own way
        pytest.skip(why_not)
    recomputed = gradients(unet, network, family)
    assert gradient_checkpointing_without_rng(unet, keep_attention=True) is None
    kept = gradients(unet, network, family)
    from lora_trainer.train import graphs

    saved = []

    def counting_policy(ctx, op, *args, **kwargs):
        decision = policy(ctx, op, *args, **kwargs)
        saved.append((op, decision))
        return decision
    policy = graphs.checkpoint_policy
    monkeypatch.setattr(graphs, "checkpoint_policy", counting_policy)
    assert gradient_checkpointing_without_rng(unet, keep_attention=True, lora_rank=4) is None
    kept_lora = gradients(unet, network, family)
    from torch.utils.checkpoint import CheckpointPolicy
    assert any(op is torch.ops.aten.mm.default and d == CheckpointPolicy.MUST_SAVE for op, d in saved)
    assert any(float(g.abs().max()) > 0 for g in plain)
    for a, b, c, d in zip(plain, recomputed, kept, kept_lora):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(c, a, rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(d, a, rtol=1e-4, atol=1e-6)


def test_the_selective_policy_keeps_self_attention_and_lora_down_projections():
    if keep_self_attention_outputs() is None:
        pytest.skip("this torch has no selective checkpointing")
    from torch.utils.checkpoint import CheckpointPolicy

    from lora_trainer.train.graphs import checkpoint_policy

    save, redo = CheckpointPolicy.MUST_SAVE, CheckpointPolicy.PREFER_RECOMPUTE
    q, k_self, k_cross = torch.zeros(1, 2, 64, 8), torch.zeros(1, 2, 64, 8), torch.zeros(1, 2, 77, 8)
    for name in ("_scaled_dot_product_flash_attention", "_scaled_dot_product_flash_attention_for_cpu"):
        op = getattr(torch.ops.aten, name).default
        assert checkpoint_policy(None, op, q, k_self, k_self) == save
        assert checkpoint_policy(None, op, q, k_cross, k_cross) == redo
    mm, tokens = torch.ops.aten.mm.default, torch.zeros(4096, 640)
    lora_down, lora_up, square = torch.zeros(640, 32), torch.zeros(32, 640), torch.zeros(640, 640)
    assert checkpoint_policy(None, mm, tokens, lora_down, lora_rank=32) == save
    assert checkpoint_policy(None, mm, tokens, lora_down) == redo            # no rank given: attention only
    assert checkpoint_policy(None, mm, tokens[:, :32], lora_up, lora_rank=32) == redo
    assert checkpoint_policy(None, mm, tokens, square, lora_rank=640) == redo  # not a projection down
    assert checkpoint_policy(None, mm, tokens, lora_down, lora_rank=16) == redo


def test_the_last_checkpointed_module_is_the_last_block_of_the_last_up_block():
    from lora_trainer.models.tiny import build_tiny_components
    from lora_trainer.train.graphs import last_checkpointed_module

    for family in ("sd1", "sdxl"):
        unet = build_tiny_components(family, seed=0)["unet"]
        last = unet.up_blocks[-1]
        expected = last.attentions[-1].transformer_blocks[-1] if getattr(last, "attentions", None) \
            else last.resnets[-1]
        assert last_checkpointed_module(unet) is expected
        order = []
        hooks = [m.register_forward_hook(lambda mod, i, o: order.append(mod)) for m in unet.modules()
                 if type(m).__name__ in ("BasicTransformerBlock", "ResnetBlock2D")]
        cfg = unet.config
        kwargs = {}
        if family == "sdxl":
            kwargs["added_cond_kwargs"] = {
                "text_embeds": torch.zeros(1, cfg.projection_class_embeddings_input_dim - 6 * cfg.addition_time_embed_dim),
                "time_ids": torch.zeros(1, 6)}
        with torch.no_grad():
            unet(torch.zeros(1, cfg.in_channels, 16, 16), torch.tensor([1]),
                 encoder_hidden_states=torch.zeros(1, 77, cfg.cross_attention_dim), **kwargs)
        for h in hooks:
            h.remove()
        assert order[-1] is expected   # the last one the forward pass runs
