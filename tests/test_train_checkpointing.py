"""Gradient checkpointing variants give the gradients of the plain step (tiny SD1 / SDXL UNets, CPU).

The captured CUDA step keeps the self-attention outputs through selective checkpointing; the
eager step of one process recomputes everything, reentrantly where a block's inputs need a gradient.
All must only trade memory for time, never change the LoRA's gradients, on every diffusers version
(0.31, the WebUIs', takes no checkpointing function: there the blocks' forwards are wrapped). Also:
bf16 runs without autocast, so the step casts its inputs itself.
"""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from lora_trainer.train.checkpointing import checkpoint_unet_blocks, keep_self_attention_outputs  # noqa: E402


def lora_unet(family: str, conv: bool = False):
    from lora_trainer.lora.network import build_network
    from lora_trainer.models.tiny import build_tiny_components
    from lora_trainer.train.unit_scales import use_unit_scale_blocks

    unet = build_tiny_components(family, seed=0)["unet"]
    network = build_network(family, unet, [], rank=4, alpha=4, conv_rank=2 if conv else None)
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


def counting_checkpoints(monkeypatch) -> list[bool]:
    """Each block checkpoint's ``use_reentrant``, in call order."""
    import torch.utils.checkpoint as ckpt

    seen, real = [], ckpt.checkpoint

    def counted(fn, *args, use_reentrant=None, **kwargs):
        seen.append(use_reentrant)
        return real(fn, *args, use_reentrant=use_reentrant, **kwargs)
    monkeypatch.setattr(ckpt, "checkpoint", counted)
    return seen


@pytest.mark.parametrize("family,conv", [("sd1", False), ("sdxl", False), ("sd1", True)])
def test_checkpointing_variants_give_the_same_gradients(family, conv, monkeypatch):
    unet, network = lora_unet(family, conv)
    plain = gradients(unet, network, family)
    seen = counting_checkpoints(monkeypatch)
    variants = {"recomputed": {}, "reentrant": {"reentrant": True}, "with the RNG state": {"keep_rng": True, "reentrant": True}}
    if keep_self_attention_outputs() is not None:   # selective checkpointing: torch 2.4 and later
        variants.update({"kept": {"keep_attention": True}, "kept with LoRA": {"keep_attention": True, "lora_rank": 4}})
    assert any(float(g.abs().max()) > 0 for g in plain)
    calls = {}
    for name, settings in variants.items():
        assert checkpoint_unet_blocks(unet, **settings)
        seen.clear()
        for got, expected in zip(gradients(unet, network, family), plain):
            torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-6, msg=name)
        calls[name] = list(seen)
    blocks = sum(type(m).__name__ in ("ResnetBlock2D", "BasicTransformerBlock") for m in unet.modules())
    # every block once (diffusers 0.32+ leaves the middle block's first ResNet out)
    assert calls["recomputed"] in ([False] * blocks, [False] * (blocks - 1))
    # reentrant where a block's inputs need a gradient; the first blocks' inputs (after the frozen conv_in) do
    # not, and with LoCon their ResNets hold LoRA weights: those stay non-reentrant and still get theirs
    assert calls["reentrant"].count(True) > 0 and calls["reentrant"].count(False) > 0
    assert len(calls["reentrant"]) == len(calls["recomputed"])
    if "kept" in calls:
        assert calls["kept"] == calls["recomputed"][1:]   # the last block runs plainly


def test_the_blocks_wrapped_for_an_older_diffusers_are_wrapped_once_and_keep_the_unit_scale_forward(monkeypatch):
    """Where the UNet takes no checkpointing function (diffusers before 0.32) each block's forward runs through
    ours, once however often the settings change, and the unit-scale ResNet forward stays inside it."""
    from lora_trainer.train import checkpointing
    from lora_trainer.train.unit_scales import use_plain_blocks, use_unit_scale_blocks

    unet, network = lora_unet("sd1")
    plain = gradients(unet, network, "sd1")

    def no_function(**kwargs):   # as diffusers 0.31's signature answers a checkpointing function
        if kwargs:
            raise TypeError("enable_gradient_checkpointing() got an unexpected keyword argument")
        type(unet).enable_gradient_checkpointing(unet)
    monkeypatch.setattr(unet, "enable_gradient_checkpointing", no_function)
    seen = counting_checkpoints(monkeypatch)
    assert checkpoint_unet_blocks(unet, reentrant=True)
    assert checkpoint_unet_blocks(unet, keep_rng=True)   # settings changed: the wrappers replaced, not nested
    resnet = unet.down_blocks[0].resnets[0]
    wrapper = resnet.__dict__["forward"]
    assert isinstance(wrapper, checkpointing._CheckpointedForward)
    assert wrapper.inner is not None and wrapper.inner.__func__.__name__ == "_resnet_forward"
    assert not any(getattr(m, "gradient_checkpointing", False) for m in unet.modules())   # diffusers' own off
    for got, expected in zip(gradients(unet, network, "sd1"), plain):
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-6)
    blocks = sum(type(m).__name__ in ("ResnetBlock2D", "BasicTransformerBlock") for m in unet.modules())
    assert len(seen) == blocks and not any(seen)   # each block once, non-reentrant (the RNG kept)
    use_plain_blocks(unet)    # diffusers' ResNet forward, still checkpointed
    assert resnet.__dict__["forward"] is wrapper and wrapper.inner is None
    use_unit_scale_blocks(unet)
    assert resnet.__dict__["forward"] is wrapper and wrapper.inner.__func__.__name__ == "_resnet_forward"
    with torch.no_grad():   # no autograd, no checkpoint
        seen.clear()
        unet(torch.zeros(1, 4, 16, 16), torch.tensor([1]), encoder_hidden_states=torch.zeros(1, 77, unet.config.cross_attention_dim))
        assert seen == []
    assert not checkpoint_unet_blocks(unet, wrap_blocks=False)   # compiled blocks: diffusers' own, unwrapped
    assert "forward" in resnet.__dict__ and not isinstance(resnet.__dict__["forward"], checkpointing._CheckpointedForward)
    assert any(getattr(m, "gradient_checkpointing", False) for m in unet.modules())


def test_the_selective_policy_keeps_self_attention_and_lora_down_projections():
    if keep_self_attention_outputs() is None:
        pytest.skip("this torch has no selective checkpointing")
    from torch.utils.checkpoint import CheckpointPolicy

    from lora_trainer.train.checkpointing import checkpoint_policy

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
    from lora_trainer.train.checkpointing import last_checkpointed_module

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


@pytest.mark.parametrize("family,extra", [
    # the text encoder trained: its outputs need gradients, so the transformer blocks run reentrantly; LoCon
    # ResNets after the frozen conv_in do not; then LoRA dropout: the RNG state kept around each block
    ("sd1", dict(network_train_unet_only=False, conv_dim=2, conv_alpha=2)),
    ("sdxl", dict(network_train_unet_only=True, network_dropout=0.1, rank_dropout=0.1)),
])
def test_a_checkpointed_run_writes_the_file_of_a_plain_one(family, extra, tiny_checkpoints, tmp_path):
    """A whole eager ``train`` run (one process, CPU) with gradient checkpointing trains as one without."""
    from test_train import DEMO, make_config, read, run
    import shutil

    data = tmp_path / "data" / "2_zkz"
    data.mkdir(parents=True)
    for image in sorted(next(DEMO.iterdir()).glob("*.png"))[:4]:
        shutil.copy(image, data)
        shutil.copy(image.with_suffix(".txt"), data)
    files = []
    for checkpointing in (False, True):
        cfg = make_config(tiny_checkpoints[family], str(data.parent), tmp_path / f"out{checkpointing}",
                          max_train_epochs=1, save_every_n_epochs=None, train_batch_size=2,
                          gradient_checkpointing=checkpointing, **extra)
        result, _ = run(cfg)
        assert result.steps == 4
        files.append(read(result.files[-1])[0])
    plain, checkpointed = files
    assert plain.keys() == checkpointed.keys()
    assert any(k.startswith("lora_te") for k in plain) == (not extra["network_train_unet_only"])
    for key in plain:
        # four AdamW steps from gradients summed in another order: a few 1e-6 apart on weights of about 0.1
        torch.testing.assert_close(checkpointed[key], plain[key], rtol=1e-4, atol=2e-5, msg=key)
