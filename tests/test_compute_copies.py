"""bf16 compute copies that hold the LoRA scale in the up-projection: same values and gradients as plain copies,
two gradient kernels less per layer, masters and saved weights unscaled."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from benchmarks.op_counter import Ops  # noqa: E402

from lora_trainer.lora import layers as L  # noqa: E402
from lora_trainer.lora.compute_copies import FOLDED  # noqa: E402
from lora_trainer.lora.network import NetworkSpec, build_network  # noqa: E402
from lora_trainer.models.tiny import build_tiny_components  # noqa: E402


def _network(alpha, rank=4, dtype=torch.bfloat16):
    torch.manual_seed(0)
    unet = build_tiny_components("sd1")["unet"].to(dtype)
    net = build_network("sd1", unet, [], rank=rank, alpha=alpha, conv_rank=2, conv_alpha=1)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.1)
    net.use_compute_dtype(dtype)
    return unet, net


def _loss(unet, dtype=torch.bfloat16):
    g = torch.Generator().manual_seed(1)
    cross = unet.config.cross_attention_dim
    return unet(torch.randn(2, 4, 8, 8, generator=g).to(dtype), torch.tensor([5, 900]),
                encoder_hidden_states=torch.randn(2, 77, cross, generator=g).to(dtype)).sample.float().square().mean()


def _master_grads(unet, net, add_twice=False, dtype=torch.bfloat16):
    for m in net.optimizer_parameters():
        m.grad = None
    for _ in range(2 if add_twice else 1):
        _loss(unet, dtype).backward()
        net.grads_to_masters(keep=add_twice, add=add_twice)
    return [m.grad.clone() for m in net.optimizer_parameters()]


@pytest.mark.parametrize("alpha", [2.0, 3.0])   # scales 0.5 and 0.75 (not a power of two)
def test_scaled_up_copies_train_as_plain_copies(alpha):
    unet, net = _network(alpha)
    ups = [layer.lora_B["default"].weight for _, _, layer in net.modules()]
    assert net.folded and set(net.folded) <= set(ups)
    for up, scale in net.folded.items():   # the copy holds scale·B, rounded once
        assert torch.equal(up, (net.master(up) * scale).to(torch.bfloat16))
    state = net.trainable_state()          # saved from the unscaled fp32 masters
    assert all(torch.equal(state[f"{c.prefix}/{n}.{part}"], net.master(p))
               for c, n, layer in net.modules() for part, p in L.layer_params(layer))
    with torch.no_grad():
        folded_loss = _loss(unet)
    folded = _master_grads(unet, net)
    net.fold_scales(False)
    assert not net.folded and not any(hasattr(layer, FOLDED) for _, _, layer in net.modules())
    with torch.no_grad():
        plain_loss = _loss(unet)
    plain = _master_grads(unet, net)
    unet.float()                          # the reference: base and LoRA in fp32
    net.set_compute_dtype(torch.float32)
    with torch.no_grad():
        exact_loss = _loss(unet, torch.float32)
    exact = _master_grads(unet, net, dtype=torch.float32)
    # as close to fp32 as the plain copies are (bf16 rounding of the whole UNet dominates both)
    assert abs(folded_loss - exact_loss) <= 2 * abs(plain_loss - exact_loss) + 1e-4
    folded_error = sum((a - e).norm() ** 2 for a, e in zip(folded, exact)) ** 0.5
    plain_error = sum((b - e).norm() ** 2 for b, e in zip(plain, exact)) ** 0.5
    assert folded_error <= 1.5 * plain_error
    assert plain_error <= 0.1 * sum(e.norm() ** 2 for e in exact) ** 0.5


def test_a_scaled_layer_backward_multiplies_nothing():
    """scale ≠ 1 with plain copies: autograd multiplies both of the product's gradients by it; with the scale
    in the copy the backward pass has no multiplication, and the master's gradient gets it in fp32."""
    _, net = _network(2.0)
    layer = next(layer for _, name, layer in net.modules() if name.endswith("ff.net.2"))
    x = torch.randn(2, 16, layer.base_layer.in_features, generator=torch.Generator().manual_seed(3))
    grad = torch.randn(2, 16, layer.base_layer.out_features, generator=torch.Generator().manual_seed(4))
    results = []
    for fold in (True, False):
        net.fold_scales(fold)
        inp = x.to(torch.bfloat16).requires_grad_(True)
        with Ops() as forward:
            out = layer(inp)
        with Ops() as backward:
            out.backward(grad.to(torch.bfloat16))
        net.grads_to_masters()
        results.append((out.detach().float(), inp.grad.float(),
                        *[net.master(p).grad.clone() for _, p in L.layer_params(layer)]))
        assert forward.seen["addmm_"] == 1 and not forward.seen["mul"]
        multiplications = backward.seen["mul"] + backward.seen["mul_"]
        assert (multiplications == 0) if fold else (multiplications == 2), backward.seen
    for a, b in zip(*results):
        assert (a - b).norm() <= 0.02 * b.norm() + 1e-6


def test_accumulated_gradients_are_scaled_once():
    unet, net = _network(2.0)
    once = _master_grads(unet, net)
    twice = _master_grads(unet, net, add_twice=True)
    for a, b in zip(once, twice):
        torch.testing.assert_close(b, 2 * a)


def test_loaded_state_and_max_norm_keep_the_scale_in_the_copies():
    unet, net = _network(2.0)
    state = {k: v * 1.5 for k, v in net.trainable_state().items()}
    net.load_trainable_state(state)
    for up, scale in net.folded.items():
        assert torch.equal(up, (net.master(up) * scale).to(torch.bfloat16))
    assert all(torch.equal(v, state[k]) for k, v in net.trainable_state().items())
    net.apply_max_norm(0.01)
    for up, scale in net.folded.items():
        assert torch.equal(up, (net.master(up) * scale).to(torch.bfloat16))


def test_no_scaled_copies_in_fp16_fp32_peft_forward_or_dora():
    _, net = _network(2.0, dtype=torch.float16)   # fp16: small weights × small scales would go subnormal
    assert not net.folded
    _, net = _network(2.0)
    net.set_compute_dtype(torch.float32)           # the copies share the masters' storage
    assert not net.folded
    net.set_compute_dtype(torch.bfloat16)
    assert net.folded
    net.set_lean_forward(False)                    # peft's forward scales the output itself
    assert not net.folded
    _, net = _network(4.0)                         # scale 1: nothing to fold (the convolutions' is 1/2)
    assert net.folded and all(up.dim() == 4 for up in net.folded)
    unet = build_tiny_components("sd1")["unet"].to(torch.bfloat16)
    net = build_network("sd1", unet, [], NetworkSpec(4, 2.0, dora=True))   # DoRA's forward scales ΔW itself
    net.use_compute_dtype(torch.bfloat16)
    assert net.dora and not net.folded
