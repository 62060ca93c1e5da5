"""LoHa, LoKr and DoRA layers on the tiny models, without training: the saved keys are the ones A1111 and
Forge read, each host's merge formula (tests/webui_merge.py, written from their code) reproduces the
network's output, kohya's blocks get the right ranks and learning rates, max-norm caps every type."""
from __future__ import annotations

import copy
from types import SimpleNamespace

import pytest

torch = pytest.importorskip("torch")

from webui_merge import merge  # noqa: E402

from lora_trainer.config.schema import TrainConfig  # noqa: E402
from lora_trainer.lora.file_hooks import module_table  # noqa: E402
from lora_trainer.lora.kohya_format import check_lora_state, kohya_state_dict, summarize  # noqa: E402
from lora_trainer.lora.network import NetworkSpec, build_network  # noqa: E402
from lora_trainer.lora.targets import block_index  # noqa: E402
from lora_trainer.models.tiny import build_tiny_components, text_encoders_of  # noqa: E402

# what each host's module type needs (A1111: ModuleTypeHada / ModuleTypeLokr / ModuleTypeLora.create_module)
HOST_PARTS = {"LoRA": {"lora_down.weight", "lora_up.weight"},
              "LoHa": {"hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b"}}


def tiny(family: str):
    parts = build_tiny_components(family, seed=0)
    return parts["unet"], text_encoders_of(parts)


@torch.no_grad()
def outputs(unet, text_encoders, family):
    g = torch.Generator().manual_seed(1)
    cfg = unet.config
    kwargs = {"encoder_hidden_states": torch.randn(2, 77, cfg.cross_attention_dim, generator=g)}
    if family == "sdxl":
        kwargs["added_cond_kwargs"] = {"text_embeds": torch.randn(2, text_encoders[1].config.projection_dim,
                                                                  generator=g),
                                       "time_ids": torch.tensor([[64, 64, 0, 0, 64, 64]] * 2, dtype=torch.float32)}
    sample = torch.randn(2, 4, cfg.sample_size, cfg.sample_size, generator=g)
    ids = torch.randint(0, 1000, (1, 77), generator=g)
    return [unet(sample, torch.tensor([10, 700]), **kwargs).sample] + [te(ids)[0] for te in text_encoders]


CASES = [("sd1", NetworkSpec(4, 2, 4, 1, algo="loha")), ("sd1", NetworkSpec(4, 2, 4, 2, algo="lokr")),
         ("sd2", NetworkSpec(2, 1, algo="lokr", factor=4)), ("sd1", NetworkSpec(4, 2, 4, 2, dora=True)),
         ("sdxl", NetworkSpec(4, 2, algo="loha", dora=True)), ("sd2", NetworkSpec(2, 1, 2, 1, algo="lokr", dora=True))]


@pytest.mark.parametrize("family,spec", CASES, ids=[f"{f}-{s.algo}{'-dora' if s.dora else ''}" for f, s in CASES])
@pytest.mark.parametrize("host", ["a1111", "forge"])
def test_each_hosts_merge_of_the_saved_file_reproduces_the_network(family, spec, host):
    unet, tes = tiny(family)
    clean_unet, clean_tes = copy.deepcopy(unet), copy.deepcopy(tes)
    net = build_network(family, unet, tes, spec)
    torch.manual_seed(0)
    with torch.no_grad():   # trained-looking weights (a fresh network changes nothing)
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.2)
    for model in [unet, *tes]:
        model.eval()
    want = outputs(unet, tes, family)
    tensors = kohya_state_dict(net, family, "float", unet.config)
    assert check_lora_state(tensors) == []
    kinds = summarize(tensors)["kinds"]
    assert set(kinds) == {{"lora": "LoRA", "loha": "LoHa", "lokr": "LoKr"}[spec.algo]}
    modules = {k.partition(".")[0] for k in tensors}
    for module in modules:
        parts = {k.partition(".")[2] for k in tensors if k.startswith(module + ".")}
        assert "alpha" in parts and ("dora_scale" in parts) == spec.dora
        if spec.algo == "lokr":
            assert ("lokr_w1" in parts or {"lokr_w1_a", "lokr_w1_b"} <= parts) and \
                   ("lokr_w2" in parts or {"lokr_w2_a", "lokr_w2_b"} <= parts)
        else:
            assert HOST_PARTS[next(iter(kinds))] <= parts
    if spec.algo == "lokr":
        split = [m for m in modules if f"{m}.lokr_w2_a" in tensors]
        assert split and len(split) < len(modules)   # both kinds of LoKr factor, and the alpha rule for each
    table = module_table(family, clean_unet, clean_tes)
    assert modules <= set(table), "every key names a layer of the model"
    assert merge(tensors, table, host) == len(modules)
    for model in [clean_unet, *clean_tes]:
        model.eval()
    got = outputs(clean_unet, clean_tes, family)
    before = outputs(*tiny(family), family)
    assert not torch.allclose(before[0], want[0], atol=1e-3), "the layers change the output"
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_dora_starts_as_the_base_model_and_its_magnitude_is_one_per_input_column():
    unet, _ = tiny("sd1")
    before = outputs(unet, [], "sd1")[0]
    net = build_network("sd1", unet, [], NetworkSpec(4, 4, 4, 4, dora=True))
    unet.eval()
    torch.testing.assert_close(outputs(unet, [], "sd1")[0], before, rtol=1e-4, atol=1e-5)
    tensors = kohya_state_dict(net, "sd1", "float", unet.config)
    scales = {k: v for k, v in tensors.items() if k.endswith(".dora_scale")}
    conv = next(v for k, v in scales.items() if "resnets" in k and "conv1" in k)
    linear = next(v for k, v in scales.items() if k.endswith("to_q.dora_scale"))
    assert conv.dim() == 4 and conv.shape[0] == 1 and conv.shape[2:] == (1, 1) and linear.shape[0] == 1


def test_kohya_blocks_get_their_ranks_and_learning_rates():
    from lora_trainer.lora import layers as L
    from lora_trainer.train.network_setup import build_run_network

    assert block_index("lora_unet_down_blocks_0_attentions_1_proj_in", "sd1") == 2
    assert block_index("lora_unet_down_blocks_1_downsamplers_0_conv", "sd1") == 6
    assert block_index("lora_unet_mid_block_attentions_0_proj_out", "sd1") == 12
    assert block_index("lora_unet_up_blocks_3_attentions_2_to_q", "sd1") == 13 + 9 + 2
    assert block_index("lora_unet_input_blocks_4_1_proj_in", "sdxl") == 5
    assert block_index("lora_unet_middle_block_1_proj_in", "sdxl") == 11
    assert block_index("lora_unet_output_blocks_8_0_conv1", "sdxl") == 21
    assert block_index("lora_te1_text_model_encoder_layers_0_mlp_fc1", "sdxl") == -1

    unet, tes = tiny("sd1")
    dims = ["4"] * 25
    dims[2] = "8"                                   # IN02: down block 0, second attention
    cfg = TrainConfig(network_dim=4, network_alpha=4, block_dims=",".join(dims), down_lr_weight="1,1,0",
                      up_lr_weight="0.5", learning_rate=1e-3, text_encoder_lr=1e-4)
    base = SimpleNamespace(family="sd1", unet=unet, text_encoders=tes)
    net, weight = build_run_network(cfg, base)
    keys = {net.layer_key(c, n): layer for c, n, layer in net.modules()}
    ranks = {block_index(k, "sd1"): layer.r["default"] for k, layer in keys.items() if k.startswith("lora_unet")}
    assert ranks[1] == 4 and 2 not in ranks and ranks[13] == 4   # IN02 has weight 0: no layers at all
    groups = net.param_groups(cfg.effective_unet_lr, cfg.effective_text_encoder_lr, weight)
    by_lr = {g["lr"]: {id(p) for p in g["params"]} for g in groups}
    assert set(by_lr) == {1e-3, 5e-4, 1e-4}
    for key, layer in keys.items():
        ids = {id(net.master(p)) for _, p in L.layer_params(layer)}
        want = 1e-4 if not key.startswith("lora_unet") else 5e-4 if block_index(key, "sd1") == 13 else 1e-3
        assert ids <= by_lr[want], key


@pytest.mark.parametrize("algo", ["lora", "loha", "lokr"])
def test_max_norm_caps_every_type(algo):
    from lora_trainer.lora import layers as L

    unet, _ = tiny("sd1")
    net = build_network("sd1", unet, [], NetworkSpec(4, 4, 4, 4, algo=algo))
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p))
    scaled, _, largest = net.apply_max_norm(0.5)
    assert int(scaled) > 0 and float(largest) <= 0.5 + 1e-4
    with torch.no_grad():
        assert max(float(L.delta_weight(layer).norm()) for _, _, layer in net.modules()) <= 0.5 + 1e-3


@pytest.mark.parametrize("algo, dora", [("lora", False), ("lora", True), ("loha", False), ("lokr", False)])
def test_a_seed_fixes_the_starting_weights_whatever_else_draws_from_torchs_generator(algo, dora):
    """In a WebUI another thread (a checkpoint being loaded) may draw from torch's global generator while the
    network is built: the seed alone decides the starting values, drawn as peft draws them (uniform in
    ±1/√fan_in, the parts peft starts at zero left at zero, DoRA's magnitudes from the base weights)."""
    def starting_weights(global_seed: int, seed):
        unet, text_encoders = tiny("sd1")
        torch.manual_seed(global_seed)   # whatever state the other threads left
        spec = NetworkSpec(4, 4.0, conv_rank=4, conv_alpha=4.0, algo=algo, dora=dora)
        network = build_network("sd1", unet, text_encoders, spec, seed=seed)
        return [p.detach().clone() for p in network.parameters()], network

    first, network = starting_weights(1, seed=7)
    second, _ = starting_weights(2, seed=7)
    assert all(torch.equal(a, b) for a, b in zip(first, second))
    other, _ = starting_weights(1, seed=8)
    assert not all(torch.equal(a, b) for a, b in zip(first, other))
    unseeded = [starting_weights(s, seed=None)[0] for s in (1, 2)]
    assert not all(torch.equal(a, b) for a, b in zip(*unseeded))   # peft's own draws follow the global state
    from lora_trainer.lora import layers as L
    of_bound, zero = [], 0   # each drawn tensor's largest value over its bound 1/√fan_in
    for _, _, layer in network.modules():
        for part, weight in L.layer_params(layer):
            if part == L.DORA:
                continue
            if not torch.count_nonzero(weight):
                zero += 1
                continue
            fan_in = weight.shape[1] * (weight[0][0].numel() if weight.dim() > 2 else 1)
            of_bound.append(float(weight.detach().abs().max()) * fan_in ** 0.5)
    assert of_bound and zero and max(of_bound) <= 1 and max(of_bound) > 0.9
