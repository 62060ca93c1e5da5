"""The GEGLU that keeps one tensor for the backward pass gives diffusers' values and gradients, bit for bit."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from lora_trainer.models.tiny import build_tiny_components  # noqa: E402
from lora_trainer.train.geglu import GegluProduct, use_lean_geglu, use_plain_geglu  # noqa: E402


def _ours_and_autograds(dtype):
    """(output, gradient) of ``GegluProduct`` and of diffusers' operations through autograd, same inputs."""
    projected = torch.randn(2, 7, 12, dtype=dtype) * 3
    grad = torch.randn(2, 7, 6, dtype=dtype)
    mine = projected.clone().requires_grad_(True)
    out = GegluProduct.apply(mine)
    out.backward(grad)
    plain = projected.clone().requires_grad_(True)
    hidden, gate = plain.chunk(2, dim=-1)
    expected = hidden * torch.nn.functional.gelu(gate)
    expected.backward(grad)
    return (out, mine.grad), (expected, plain.grad)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_the_product_and_its_gradient_are_autograds_exactly(dtype):
    (out, grad), (expected, expected_grad) = _ours_and_autograds(dtype)
    assert torch.equal(out, expected) and torch.equal(grad, expected_grad)


def _saved_bytes(fn) -> int:
    storages = {}

    def pack(t):
        storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    return out, sum(storages.values())


def _unet_run(unet):
    torch.manual_seed(0)
    x = torch.randn(1, 4, 16, 16)
    ctx = torch.randn(1, 77, unet.config.cross_attention_dim)
    return lambda: unet(x, torch.tensor([500]), encoder_hidden_states=ctx).sample


@pytest.mark.parametrize("checkpointing", [None, "plain", "selective"])
def test_a_unet_trains_the_same_and_keeps_less(checkpointing):
    unet = build_tiny_components("sd1")["unet"]
    unet.requires_grad_(False)
    weight = unet.conv_in.weight.requires_grad_(True)   # as a LoRA would: everything after it is saved
    if checkpointing == "plain":
        unet.enable_gradient_checkpointing()
    elif checkpointing == "selective":   # the captured step's: the self-attention outputs kept
        from lora_trainer.train.checkpointing import checkpoint_unet_blocks
        checkpoint_unet_blocks(unet, keep_attention=True)
    unet.train()
    results = []
    for lean in (False, True):
        count = use_lean_geglu(unet) if lean else 0
        weight.grad = None
        out, saved = _saved_bytes(_unet_run(unet))
        out.square().mean().backward()
        results.append((out.detach(), weight.grad.clone(), saved, count))
        use_plain_geglu(unet)
    (out0, grad0, saved0, _), (out1, grad1, saved1, count) = results
    assert count > 0 and "forward" not in unet.down_blocks[0].attentions[0].transformer_blocks[0].ff.net[0].__dict__
    assert torch.equal(out0, out1) and torch.equal(grad0, grad1)
    if not checkpointing:
        assert saved1 < saved0


class _KernelsInTorch:
    """The jitted kernels' arithmetic (train/geglu.py's _FORWARD, _BACKWARD) in torch operations, with the
    broadcasting the jiterator applies: what the plumbing around them must get right, checked on the CPU."""
    failed = False

    @staticmethod
    def forward(hidden, gate):
        g = gate.float()
        return (hidden.float() * (0.5 * g * (1.0 + torch.erf(g * 0.70710678118654752)))).to(hidden.dtype)

    @staticmethod
    def backward(grad, hidden, gate, is_gate):
        g, d = gate.float(), grad.float()
        cdf = 0.5 * (1.0 + torch.erf(g * 0.70710678118654752))
        pdf = 0.39894228040143268 * torch.exp(-0.5 * g * g)
        return torch.where(is_gate.float() == 0, d * g * cdf, d * hidden.float() * (cdf + g * pdf)).to(grad.dtype)

    @staticmethod
    def selector(like):
        return torch.arange(2, dtype=like.dtype).view(2, 1)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_the_fused_kernels_layout_gives_autograds_values(monkeypatch, dtype):
    from lora_trainer.train import geglu

    monkeypatch.setattr(geglu, "_fused", lambda projected: _KernelsInTorch())
    (out, grad), (expected, expected_grad) = _ours_and_autograds(dtype)
    assert grad.shape == expected_grad.shape and grad.is_contiguous()
    tolerance = {} if dtype == torch.float32 else {"rtol": 2e-2, "atol": 2e-2}   # rounded once, not twice
    torch.testing.assert_close(out, expected, **tolerance)
    torch.testing.assert_close(grad, expected_grad, **tolerance)


def test_a_failing_kernel_falls_back_to_the_plain_operations_for_good(monkeypatch):
    from lora_trainer.train import geglu

    class Failing(_KernelsInTorch):
        failed = False

        @staticmethod
        def forward(hidden, gate):
            raise RuntimeError("nvrtc: error: failed to open libnvrtc-builtins.so")

    kernels = Failing()
    monkeypatch.setattr(geglu, "_fused", lambda projected: None if kernels.failed else kernels)
    projected = torch.randn(2, 5, 8)
    out = GegluProduct.apply(projected)
    hidden, gate = projected.chunk(2, dim=-1)
    assert kernels.failed and torch.equal(out, hidden * torch.nn.functional.gelu(gate))
