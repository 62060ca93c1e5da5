"""Saved files load in third-party loaders and reproduce the trained model.

Two independent readers of a saved kohya file are compared with the trained network:
diffusers' ``load_lora_weights`` (its own kohya converter; needs transformers >= 4.34, so it
is skipped on the A1111 stack), and a merge of W += up·down·alpha/rank into the base weights,
which is what the WebUI's Lora extension does.
"""
from __future__ import annotations

import os

import pytest

torch = pytest.importorskip("torch")

from test_train import make_config, read, run  # noqa: E402

from lora_trainer.lora.kohya_format import module_key, sdxl_unet_namer  # noqa: E402
from lora_trainer.lora.network import build_network  # noqa: E402
from lora_trainer.models.loading import load_base_model  # noqa: E402
from lora_trainer.train.state import load_state  # noqa: E402

CASES = {"sd1": dict(conv_dim=4, conv_alpha=2), "sd2": {}, "sdxl": {},
         # continued from the sd1 run's file with another optimizer: a plain LoCon file again
         "sd1-continued": dict(conv_dim=4, conv_alpha=2, optimizer_type="Prodigy", learning_rate=1.0,
                               text_encoder_lr=None, max_train_epochs=1)}


def family_of(case: str) -> str:
    return case.split("-")[0]


@pytest.fixture(scope="module")
def trained(tiny_checkpoints, tmp_path_factory):
    """One short run per family; returns {family: (lora file, state dir, checkpoint)}."""
    import shutil

    from test_train import DEMO
    out = {}
    for case, extra in CASES.items():
        family = family_of(case)
        root = tmp_path_factory.mktemp(f"compat_{case}")
        data = root / "data" / "2_zkz"
        shutil.copytree(next(DEMO.iterdir()), data)
        if case.endswith("-continued"):
            extra = dict(extra, network_weights=out[family][0])
        cfg = make_config(tiny_checkpoints[family], str(data.parent), root / "out",
                          **{"max_train_epochs": 2, "learning_rate": 1e-2, "text_encoder_lr": 1e-2, **extra})
        result, _ = run(cfg)
        final = result.files[-1]
        out[case] = (final, os.path.join(result.run_dir, "测试 lora-state"), tiny_checkpoints[family])
    return out


def unet_inputs(base, seed=0):
    g = torch.Generator().manual_seed(seed)
    cfg = base.unet.config
    size = cfg.sample_size
    kwargs = {"encoder_hidden_states": torch.randn(2, 77, cfg.cross_attention_dim, generator=g)}
    if base.family == "sdxl":
        pooled = base.text_encoders[1].config.projection_dim
        kwargs["added_cond_kwargs"] = {"text_embeds": torch.randn(2, pooled, generator=g),
                                       "time_ids": torch.tensor([[64, 64, 0, 0, 64, 64]] * 2, dtype=torch.float32)}
    return torch.randn(2, 4, size, size, generator=g), torch.tensor([10, 700]), kwargs


@torch.no_grad()
def outputs(base):
    sample, t, kwargs = unet_inputs(base)
    ids = base.tokenizers[0](["zkz, red circle"], padding="max_length", max_length=77,
                             return_tensors="pt").input_ids
    return base.unet(sample, t, **kwargs).sample, [te(ids)[0] for te in base.text_encoders]


def reference(family, state_dir, checkpoint, extra):
    """The trained model: a fresh base with the run's fp32 LoRA weights in our own peft network."""
    base = load_base_model(checkpoint)
    net = build_network(family, base.unet, base.text_encoders, rank=4, alpha=4,
                        conv_rank=extra.get("conv_dim"), conv_alpha=extra.get("conv_alpha"))
    net.load_trainable_state(load_state(state_dir).lora)
    base.unet.eval()
    for te in base.text_encoders:
        te.eval()
    return outputs(base)


def assert_close(a, b):
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("case", list(CASES))
def test_webui_style_merge_reproduces_training(case, trained):
    family = family_of(case)
    path, state_dir, checkpoint = trained[case]
    want_unet, want_te = reference(family, state_dir, checkpoint, CASES[case])

    base = load_base_model(checkpoint)
    before_unet, _ = outputs(base)
    assert not torch.allclose(before_unet, want_unet, atol=1e-3), "the LoRA should change the output"
    tensors, _ = read(path)
    modules = {}
    namer = sdxl_unet_namer(base.unet.config) if family == "sdxl" else None
    prefixes = [("lora_unet", base.unet)] + list(zip(
        ["lora_te1", "lora_te2"] if family == "sdxl" else ["lora_te"], base.text_encoders))
    for prefix, model in prefixes:
        for name, module in model.named_modules():
            if isinstance(module, (torch.nn.Linear, torch.nn.Conv2d)):
                modules[module_key(prefix, name, namer)] = module
    merged = 0
    with torch.no_grad():
        for key in [k[: -len(".alpha")] for k in tensors if k.endswith(".alpha")]:
            down, up = tensors[key + ".lora_down.weight"], tensors[key + ".lora_up.weight"]
            scale = float(tensors[key + ".alpha"]) / down.shape[0]
            module = modules[key]
            if down.dim() == 4 and down.shape[2:] != (1, 1):
                delta = torch.nn.functional.conv2d(down.permute(1, 0, 2, 3), up).permute(1, 0, 2, 3)
            else:
                delta = (up.flatten(1) @ down.flatten(1)).reshape(module.weight.shape)
            module.weight += delta * scale
            merged += 1
    assert merged == len(modules.keys() & {k[: -len(".alpha")] for k in tensors})
    got_unet, got_te = outputs(base)
    assert_close(got_unet, want_unet)
    for got, want in zip(got_te, want_te):
        assert_close(got, want)


@pytest.mark.parametrize("case", list(CASES))
def test_diffusers_load_lora_weights_reproduces_training(case, trained):
    from diffusers.utils import USE_PEFT_BACKEND
    if not USE_PEFT_BACKEND:
        pytest.skip("diffusers' LoRA loader needs transformers >= 4.34 (the A1111 stack has 4.30.2)")
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

    family = family_of(case)
    path, state_dir, checkpoint = trained[case]
    want_unet, want_te = reference(family, state_dir, checkpoint, CASES[case])
    base = load_base_model(checkpoint)
    if family == "sdxl":
        pipe = StableDiffusionXLPipeline(vae=base.vae, text_encoder=base.text_encoders[0],
                                         text_encoder_2=base.text_encoders[1], tokenizer=base.tokenizers[0],
                                         tokenizer_2=base.tokenizers[1], unet=base.unet,
                                         scheduler=base.noise_scheduler)
    else:
        pipe = StableDiffusionPipeline(vae=base.vae, text_encoder=base.text_encoders[0],
                                       tokenizer=base.tokenizers[0], unet=base.unet, scheduler=base.noise_scheduler,
                                       safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    # folder + weight_name: diffusers 0.31 refuses a bare file path when HF_HUB_OFFLINE is set
    pipe.load_lora_weights(os.path.dirname(path), weight_name=os.path.basename(path))
    got_unet, got_te = outputs(base)
    assert_close(got_unet, want_unet)
    for got, want in zip(got_te, want_te):
        assert_close(got, want)
