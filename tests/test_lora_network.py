"""LoRA network behaviour: lean forward = peft's forward, kohya dropouts, max-norm, prompt cache."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from lora_trainer.lora import layers as L  # noqa: E402
from lora_trainer.lora.network import DropoutSettings, build_network  # noqa: E402
from lora_trainer.models.tiny import build_tiny_components  # noqa: E402


def _nudge(network, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in network.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.1)


def _unet_call(unet, dtype=torch.float32):
    g = torch.Generator().manual_seed(1)
    cross = unet.config.cross_attention_dim
    return unet(torch.randn(2, 4, 8, 8, generator=g).to(dtype), torch.tensor([5, 900]),
                encoder_hidden_states=torch.randn(2, 77, cross, generator=g).to(dtype)).sample


@pytest.mark.parametrize("autocast", [False, True])
def test_lean_forward_matches_peft(autocast):
    parts = build_tiny_components("sd1")
    unet = parts["unet"]
    if autocast:
        unet.to(torch.bfloat16)
    net = build_network("sd1", unet, [], rank=4, alpha=2, conv_rank=2, conv_alpha=1)
    _nudge(net)
    dtype = torch.bfloat16 if autocast else torch.float32
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        lean = _unet_call(unet, dtype)
        net.set_lean_forward(False)
        plain = _unet_call(unet, dtype)
    tol = dict(rtol=2e-2, atol=2e-2) if autocast else dict(rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(lean.float(), plain.float(), **tol)
    assert all(p.dtype == torch.float32 for p in net.parameters())


def test_lean_forward_gradients_match_peft():
    unet = build_tiny_components("sd1")["unet"]
    net = build_network("sd1", unet, [], rank=4, alpha=4)
    _nudge(net)
    grads = []
    for lean in (True, False):
        net.set_lean_forward(lean)
        unet.zero_grad(set_to_none=True)
        _unet_call(unet).square().mean().backward()
        grads.append([p.grad.clone() for p in net.parameters()])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_a_linear_layer_adds_its_lora_by_one_product_and_copies_no_gradient():
    """A LoRA Linear with a bias on (batch, tokens, features), as the UNet's and CLIP's are: the up-projection
    is added by the base output's own matrix product, and the backward pass copies no activation-sized
    gradient (an in-place add to the view ``F.linear`` returns made autograd copy it about five times).
    Values and gradients are peft's."""
    from benchmarks.op_counter import Ops

    unet = build_tiny_components("sd1")["unet"]
    net = build_network("sd1", unet, [], rank=4, alpha=2)
    _nudge(net)
    layer = next(layer for _, name, layer in net.modules() if name.endswith("ff.net.2"))
    assert layer.base_layer.bias is not None
    x = torch.randn(2, 16, layer.base_layer.in_features, generator=torch.Generator().manual_seed(3))
    grad = torch.randn(2, 16, layer.base_layer.out_features, generator=torch.Generator().manual_seed(4))
    results = []
    for lean in (True, False):
        net.set_lean_forward(lean)
        layer.zero_grad(set_to_none=True)
        inp = x.clone().requires_grad_(True)
        with Ops() as forward:
            out = layer(inp)
        with Ops() as backward:
            out.backward(grad)
        results.append((out.detach(), inp.grad, *[p.grad for _, p in L.layer_params(layer)]))
        if lean:
            assert forward.seen["addmm_"] == 1 and not forward.seen["add_"]
            assert not {"copy_", "clone", "new_zeros", "zeros", "as_strided"} & set(backward.seen), backward.seen
    for ours, peft in zip(*results):
        torch.testing.assert_close(ours, peft, rtol=1e-5, atol=1e-6)


def test_dropouts_act_only_in_training():
    unet = build_tiny_components("sd1")["unet"]
    net = build_network("sd1", unet, [], rank=4, alpha=4,
                        dropout=DropoutSettings(network_dropout=0.5, rank_dropout=0.5, module_dropout=0.5))
    _nudge(net)
    unet.eval()
    with torch.no_grad():
        a, b = _unet_call(unet), _unet_call(unet)
    torch.testing.assert_close(a, b)
    unet.train()
    torch.manual_seed(0)
    with torch.no_grad():
        c, d = _unet_call(unet), _unet_call(unet)
    assert not torch.allclose(c, d)


def test_max_norm_caps_each_module():
    unet = build_tiny_components("sd1")["unet"]
    net = build_network("sd1", unet, [], rank=4, alpha=4)
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0, 1.0)
    scaled, mean, top = net.apply_max_norm(0.5)
    assert int(scaled) == net.num_modules() and float(top) <= 0.5 + 1e-5
    scaled, _, top = net.apply_max_norm(0.5)
    assert int(scaled) == 0 and float(top) <= 0.5 + 1e-5


def test_prompt_cache_gives_the_same_loss():
    from lora_trainer.train.conditioning import encode_cached, encode_prompts

    parts = build_tiny_components("sdxl")
    tes, toks = [parts["text_encoder"], parts["text_encoder_2"]], [parts["tokenizer"], parts["tokenizer_2"]]
    captions = ["zkz, red circle", "zkz, blue", "zkz, red circle"]
    cache = {}
    with torch.no_grad():
        direct = encode_prompts("sdxl", tes, toks, captions, None, "cpu")
        cached = encode_cached(cache, "sdxl", tes, toks, captions, None, "cpu")
        again = encode_cached(cache, "sdxl", [None, None], toks, captions, None, "cpu")  # encoders not needed
    assert len(cache) == 2
    for key in direct:
        torch.testing.assert_close(cached[key], direct[key])
        torch.testing.assert_close(again[key], direct[key])


def test_prompts_are_cached_in_chunks_whatever_the_batch(monkeypatch):
    import types

    from lora_trainer.train import conditioning
    from lora_trainer.train.setup import PROMPT_CHUNK, cache_prompts

    parts = build_tiny_components("sdxl")
    tes, toks = [parts["text_encoder"], parts["text_encoder_2"]], [parts["tokenizer"], parts["tokenizer_2"]]
    captions = [f"zkz, tag {i % 20}" for i in range(PROMPT_CHUNK + 8)] + ["zkz, tag 3"]
    sizes = []
    encode = conditioning.encode_prompts
    monkeypatch.setattr(conditioning, "encode_prompts", lambda *a, **k: sizes.append(len(a[3])) or encode(*a, **k))
    models = types.SimpleNamespace(alphas_cumprod=torch.zeros(4), prompt_cache={}, family="sdxl", text_encoders=tes,
                                   tokenizers=toks, clip_skip=None, max_token_length=75)
    cache_prompts(models, captions)
    assert sizes == [PROMPT_CHUNK, 4] and len(models.prompt_cache) == 20
    with torch.no_grad():
        alone = encode("sdxl", tes, toks, ["zkz, tag 19"], None, "cpu")
    for key, value in alone.items():
        torch.testing.assert_close(models.prompt_cache["zkz, tag 19"][key], value[0])


def test_bf16_compute_copies_keep_fp32_masters():
    unet = build_tiny_components("sd1")["unet"].to(torch.bfloat16)
    net = build_network("sd1", unet, [], rank=4, alpha=4)
    _nudge(net)
    before = {k: v.clone() for k, v in net.trainable_state().items()}
    net.use_compute_dtype(torch.bfloat16)
    assert all(p.dtype == torch.bfloat16 for p in net.parameters())
    assert all(p.dtype == torch.float32 for p in net.optimizer_parameters())
    state = net.trainable_state()
    assert all(torch.equal(state[k], before[k]) for k in before)  # saved from the fp32 masters
    opt = torch.optim.SGD(net.optimizer_parameters(), lr=0.1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = _unet_call(unet, torch.bfloat16).float().square().mean()
    loss.backward()
    net.grads_to_masters()
    assert all(p.grad is None for p in net.parameters())
    assert all(m.grad is not None and m.grad.dtype == torch.float32 for m in net.optimizer_parameters())
    opt.step()
    net.masters_to_compute()
    for p in net.parameters():
        torch.testing.assert_close(p.float(), net.master(p), rtol=1e-2, atol=1e-3)
    assert any(not torch.equal(net.trainable_state()[k], before[k]) for k in before)


def test_compute_copies_work_on_torch_without_foreach_copy(monkeypatch):
    """An A1111 venv kept from before torch 2.1 has no ``_foreach_copy_``: gradients and weights are then
    copied tensor by tensor, with the same values."""
    def one_update(net, unet):
        opt = torch.optim.SGD(net.optimizer_parameters(), lr=0.1)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = _unet_call(unet, torch.bfloat16).float().square().mean()
        loss.backward()
        net.grads_to_masters()
        opt.step()
        net.masters_to_compute()
        return [p.detach().clone() for p in net.parameters()], net.trainable_state()

    results = []
    for older in (False, True):
        if older:
            monkeypatch.delattr(torch, "_foreach_copy_", raising=False)
        torch.manual_seed(0)
        unet = build_tiny_components("sd1")["unet"].to(torch.bfloat16)
        net = build_network("sd1", unet, [], rank=4, alpha=2)   # scale 1/2: the up copies hold it
        _nudge(net)
        net.use_compute_dtype(torch.bfloat16)
        results.append(one_update(net, unet))
    (copies, state), (copies_old, state_old) = results
    assert all(torch.equal(a, b) for a, b in zip(copies, copies_old))
    assert state.keys() == state_old.keys() and all(torch.equal(state[k], state_old[k]) for k in state)


def test_compute_copies_can_switch_to_fp32_and_back():
    unet = build_tiny_components("sd1")["unet"]
    net = build_network("sd1", unet, [], rank=4, alpha=4)
    _nudge(net)
    net.use_compute_dtype(torch.bfloat16)
    net.set_compute_dtype(torch.float32)
    p = net.parameters()[0]
    assert p.dtype == torch.float32 and p.data_ptr() == net.master(p).data_ptr()
    net.set_compute_dtype(torch.bfloat16)
    assert p.dtype == torch.bfloat16 and p.data_ptr() != net.master(p).data_ptr()
