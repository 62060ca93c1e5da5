"""Standalone previews: our own diffusers pipeline on a tiny base model, with a kohya LoRA written by
the trainer's own saver merged in for the render (SD1 and SDXL, the latter with LoCon layers)."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from lora_trainer.hosts import PreviewRequest, PreviewUnavailable  # noqa: E402
from lora_trainer.hosts.standalone import StandaloneAdapter  # noqa: E402


def _make_lora(base_path, family, path, conv):
    """A LoRA with non-zero weights, saved exactly as training saves it."""
    from safetensors.torch import save_file

    from lora_trainer.lora.kohya_format import kohya_state_dict
    from lora_trainer.lora.network import build_network
    from lora_trainer.models.loading import load_base_model

    base = load_base_model(base_path)
    network = build_network(family, base.unet, base.text_encoders, rank=4, alpha=2,
                            conv_rank=4 if conv else None, conv_alpha=2 if conv else None)
    generator = torch.Generator().manual_seed(3)
    for _, _, layer in network.modules():
        weight = layer.lora_B["default"].weight
        weight.data = torch.randn(weight.shape, generator=generator) * 0.5
    save_file(kohya_state_dict(network, family, "float", base.unet.config), str(path))
    return str(path)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from lora_trainer.models.tiny import build_tiny_components, save_single_file

    root = tmp_path_factory.mktemp("standalone")
    out = {}
    for family in ("sd1", "sdxl"):
        base = str(save_single_file(build_tiny_components(family, seed=0), root / f"tiny {family}.safetensors", family))
        out[family] = base, _make_lora(base, family, root / f"{family} lora.safetensors", conv=family == "sdxl")
    return out


def req(base, lora, **changes):
    values = dict(lora_path=lora, prompts=["{trigger}, a shape <lora:x:1>", "plain"], weight=1.0, seed=5, width=64,
                  height=64, steps=2, cfg_scale=4.0, base_model_path=base, trigger="zkz")
    values.update(changes)
    return PreviewRequest(**values)


def pixels(image):
    import numpy as np
    return np.asarray(image).astype("float32")


@pytest.mark.parametrize("family", ["sd1", "sdxl"])
def test_previews_show_the_lora_and_repeat_exactly(family, models, tmp_path):
    base, lora = models[family]
    adapter = StandaloneAdapter(lora_dir=str(tmp_path))
    without = adapter.generate_previews(req(base, lora, weight=0.0))
    with_lora = adapter.generate_previews(req(base, lora))
    again = adapter.generate_previews(req(base, lora))
    assert len(with_lora) == 2 and with_lora[0].size == (64, 64)
    assert abs(pixels(without[0]) - pixels(with_lora[0])).mean() > 1.0   # the LoRA changes the image
    assert (pixels(with_lora[0]) == pixels(again[0])).all()              # fixed seed, weights restored
    adapter.restore_vram()
    assert adapter._pipeline is None


def test_the_base_weights_are_restored_after_a_render(models):
    from safetensors.torch import load_file

    from lora_trainer.hosts.diffusers_preview import PreviewPipeline, merged_lora

    base, lora = models["sd1"]
    pipeline = PreviewPipeline(base, "cpu", torch.float32)
    before = {k: v.clone() for k, v in pipeline.base.unet.state_dict().items()}
    tensors = load_file(lora)
    with merged_lora(pipeline.targets, tensors, 1.0) as missing:
        assert missing == 0
        changed = [k for k, v in pipeline.base.unet.state_dict().items() if not torch.equal(v, before[k])]
        assert changed
    assert all(torch.equal(v, before[k]) for k, v in pipeline.base.unet.state_dict().items())


def test_a_lora_of_another_model_is_refused(models, tmp_path):
    base, _ = models["sd1"]
    _, xl_lora = models["sdxl"]
    with pytest.raises(PreviewUnavailable) as err:
        StandaloneAdapter(lora_dir=str(tmp_path)).generate_previews(req(base, xl_lora))
    assert "does not fit" in str(err.value) and "base model the LoRA was trained on" in err.value.advice


def test_a_stop_request_ends_the_render_mid_image(models):
    from safetensors.torch import load_file

    from lora_trainer.hosts.diffusers_preview import PreviewPipeline

    base, lora = models["sd1"]
    pipeline = PreviewPipeline(base, "cpu", torch.float32)
    asked = []

    def stop_during_the_first_image():   # asked before each prompt and after each denoising step
        asked.append(1)
        return len(asked) > 2

    images = pipeline.render(req(base, lora, steps=4), load_file(lora), stop_during_the_first_image)
    assert images == [] and len(asked) < 6


def test_the_samplers_and_schedule_types_offered_are_the_ones_rendered(tmp_path):
    """The grid offers what the standalone pipeline renders: the WebUI's sampler names, Karras sigmas, no hires."""
    from diffusers import DDPMScheduler

    from lora_trainer.hosts.diffusers_preview import make_scheduler

    options = StandaloneAdapter(lora_dir=str(tmp_path)).render_options()
    assert options["upscalers"] == [] and options["schedulers"] == ["Automatic", "Karras"]
    config = DDPMScheduler().config
    made = {type(make_scheduler(name, config)).__name__ for name in options["samplers"]}
    assert len(made) == len(options["samplers"])   # each name its own sampler, none falls back to the default
    assert make_scheduler("DPM++ 2M", config, "Karras").config.use_karras_sigmas
    assert not make_scheduler("DPM++ 2M", config, "Automatic").config.get("use_karras_sigmas")
