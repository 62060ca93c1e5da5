"""Preview images without a host: a diffusers pipeline around our own copy of the base model,
with a kohya LoRA merged into its weights for the render and taken out again afterwards.

The LoRA is applied here rather than with diffusers' ``load_lora_weights``: our loader gives the
same module names on every diffusers/transformers version, and the key names are the ones
``kohya_format`` writes, so the mapping is exact on every stack.
"""
from __future__ import annotations

import contextlib
import inspect
import re
from typing import Callable, Iterator

import torch

from ..lora.kohya_format import module_key, sdxl_unet_namer
from .base import PreviewRequest, PreviewUnavailable

SCHEDULERS = {"euler a": "EulerAncestralDiscreteScheduler", "euler": "EulerDiscreteScheduler",
              "dpm++ 2m": "DPMSolverMultistepScheduler", "ddim": "DDIMScheduler", "unipc": "UniPCMultistepScheduler",
              "lms": "LMSDiscreteScheduler", "heun": "HeunDiscreteScheduler", "dpm2": "KDPM2DiscreteScheduler"}
_LORA_TAG = re.compile(r"<lora:[^>]*>")
_DOWN = ".lora_down.weight"


def lora_targets(base) -> dict:
    """kohya module key → the Linear/Conv2d layer of ``base`` (a ``models.loading.BaseModel``) it patches."""
    parts = [("lora_unet", base.unet, sdxl_unet_namer(base.unet.config) if base.family == "sdxl" else None)]
    prefixes = ["lora_te1", "lora_te2"] if base.family == "sdxl" else ["lora_te"]
    parts += [(prefix, te, None) for prefix, te in zip(prefixes, base.text_encoders)]
    out = {}
    for prefix, model, namer in parts:
        for name, module in model.named_modules():
            if isinstance(module, (torch.nn.Linear, torch.nn.Conv2d)):
                try:
                    out[module_key(prefix, name, namer)] = module
                except KeyError:   # a UNet module the SGM name table has no entry for
                    continue
    return out


def _delta(down: torch.Tensor, up: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    if down.dim() == 2:
        return up @ down
    if down.shape[2:] == (1, 1):
        return (up.flatten(1) @ down.flatten(1)).reshape(shape)
    return torch.einsum("or,rikl->oikl", up.flatten(1), down)   # LoCon: k×k down, 1×1 up


@contextlib.contextmanager
def merged_lora(targets: dict, tensors: dict, weight: float) -> Iterator[int]:
    """Add ``weight`` × the LoRA's deltas to the target layers; restore them on exit. Yields the
    number of LoRA modules the model has no layer for."""
    keys = [k[: -len(_DOWN)] for k in tensors if k.endswith(_DOWN)]
    missing = [k for k in keys if k not in targets]
    if not keys or len(missing) * 2 > len(keys):
        raise PreviewUnavailable(
            f"the LoRA does not fit the preview model: {len(missing)} of its {len(keys)} modules are not in it"
            + (f" (e.g. {missing[0]})" if missing else ""),
            "render previews with the base model the LoRA was trained on")
    backups = []
    try:
        with torch.no_grad():
            for key in keys:
                layer = targets.get(key)
                if layer is None:
                    continue
                down = tensors[key + _DOWN].float()
                up = tensors[key + ".lora_up.weight"].float()
                rank = down.shape[0]
                alpha = float(tensors[key + ".alpha"]) if key + ".alpha" in tensors else float(rank)
                w = layer.weight
                backups.append((w, w.detach().to("cpu", copy=True)))
                w.add_((_delta(down, up, w.shape) * (alpha / rank * weight)).to(w.device, w.dtype))
        yield len(missing)
    finally:
        with torch.no_grad():
            for w, original in backups:
                w.copy_(original.to(w.device))


def make_scheduler(sampler_name: str, config, schedule: str = "Automatic"):
    import diffusers

    cls = getattr(diffusers, SCHEDULERS.get(sampler_name.strip().lower(), SCHEDULERS["euler a"]))
    if schedule.strip().lower() == "karras" and "use_karras_sigmas" in inspect.signature(cls.__init__).parameters:
        return cls.from_config(config, use_karras_sigmas=True)
    return cls.from_config(config)


class PreviewPipeline:
    """One base model kept on the CPU between renders, moved to ``device`` while it renders."""

    def __init__(self, base_model_path: str, device: str, dtype: torch.dtype) -> None:
        from ..models.loading import load_base_model

        self.base = load_base_model(base_model_path, dtype=dtype)
        self.path = base_model_path
        self.device = device
        self.targets = lora_targets(self.base)
        self.pipe = self._pipeline()

    def _pipeline(self):
        from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

        b = self.base
        scheduler = make_scheduler("euler a", b.noise_scheduler.config)
        if b.family == "sdxl":
            pipe = StableDiffusionXLPipeline(vae=b.vae, text_encoder=b.text_encoders[0],
                                             text_encoder_2=b.text_encoders[1], tokenizer=b.tokenizers[0],
                                             tokenizer_2=b.tokenizers[1], unet=b.unet, scheduler=scheduler)
        else:
            pipe = StableDiffusionPipeline(vae=b.vae, text_encoder=b.text_encoders[0], tokenizer=b.tokenizers[0],
                                           unet=b.unet, scheduler=scheduler, safety_checker=None,
                                           feature_extractor=None, requires_safety_checker=False)
        pipe.set_progress_bar_config(disable=True)
        return pipe

    def render(self, req: PreviewRequest, tensors: dict, should_stop: Callable[[], bool]) -> list:
        pipe = self.pipe
        pipe.scheduler = make_scheduler(req.sampler_name, self.base.noise_scheduler.config, req.scheduler)

        def on_step(pipeline, step, timestep, kwargs):
            if should_stop():
                pipeline._interrupt = True
            return kwargs

        images = []
        pipe.to(self.device)
        try:
            with merged_lora(self.targets, tensors, float(req.weight)):
                for prompt in req.prompts:
                    if should_stop():
                        break
                    text = _LORA_TAG.sub("", prompt.replace("{trigger}", req.trigger)).strip(" ,")
                    out = pipe(prompt=text, negative_prompt=req.negative_prompt or None,
                               num_inference_steps=int(req.steps), guidance_scale=float(req.cfg_scale),
                               width=int(req.width), height=int(req.height),
                               generator=torch.Generator("cpu").manual_seed(int(req.seed)),
                               callback_on_step_end=on_step)
                    if not should_stop():
                        images.append(out.images[0])
        finally:
            if self.device != "cpu":
                pipe.to("cpu")
                torch.cuda.empty_cache()
        return images
