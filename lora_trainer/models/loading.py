"""Load a base model (single-file checkpoint or diffusers folder) offline.

Single files go through diffusers' ``from_single_file`` with a local config folder (shipped
``configs/<family>``, or the configs a tiny file carries in its metadata) and local tokenizers,
so nothing is ever fetched from a model hub.
"""
from __future__ import annotations

import json
import logging
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..errors import ModelLoadError
from ..text.messages import msg
from . import messages  # noqa: F401  (registers the sentences)
from .family import (IN_CONV, TORCH_PICKLE_EXTS, detect_diffusers_folder, detect_family, load_torch_checkpoint,
                     read_checkpoint_keys, state_dict_of)
from .prefetch import folder_variant
from .tiny import CONFIG_DIRS, CONFIG_FILES, METADATA_KEY, SHIPPED_CONFIGS, write_config_dir
from .tokenizers import load_clip_tokenizers

log = logging.getLogger(__name__)


@dataclass
class BaseModel:
    """The frozen base model a LoRA is trained on (all weights ``requires_grad=False``)."""

    family: str
    unet: Any
    vae: Any
    text_encoders: list
    tokenizers: list
    noise_scheduler: Any  # DDPMScheduler with prediction_type set
    v_prediction: bool
    source_path: str
    model_name: str
    # id(model) → the dtype the load asked for, for models still in their file's dtype (``cast_later``)
    pending_cast: dict = field(default_factory=dict)

    def place(self, model, device, dtype: torch.dtype) -> None:
        """``model.to(device, dtype)``. A model still in its file's dtype is cast to the dtype the load asked
        for and then to ``dtype`` (what loading and placing it did before), each weight after it reached
        ``device``: on a GPU the CPU never converts the weights, and the device holds one extra tensor at most.
        Casts round the same on the CPU and the GPU (to nearest, ties to even), so the weights are the same."""
        asked = self.pending_cast.pop(id(model), None)
        if asked is None:
            model.to(device, dtype)
            return

        def move(t: torch.Tensor) -> torch.Tensor:
            t = t.to(device)
            return t.to(asked).to(dtype) if t.is_floating_point() else t
        model._apply(move)


def load_base_model(path, *, dtype: torch.dtype = torch.float32, v_parameterization: bool | None = None,
                    cast_later: bool = False) -> BaseModel:
    """Load a ``.safetensors`` / ``.ckpt`` checkpoint (original layout) or a diffusers folder.

    ``cast_later``: a single file (or a diffusers folder's model) whose weights are all of one other float
    dtype keeps it (its weights stay memory-mapped, not converted on the CPU) and each model is cast when
    ``BaseModel.place`` moves it.

    ``v_parameterization`` forces v-prediction on/off; by default SD2 is v-prediction unless an
    A1111-style ``<name>.yaml`` beside the file says ``parameterization: "eps"``, and SD1/SDXL are
    epsilon unless such a yaml says ``"v"`` (or the file carries the ``v_pred`` marker key).
    """
    p = Path(path)
    if p.is_dir():
        return _load_diffusers_folder(p, dtype, v_parameterization, cast_later)
    info = _inspect(p)
    family = detect_family(info.keys, source=str(p), in_channels=info.in_channels)
    v_pred = _v_prediction(p, family, info.keys, v_parameterization)
    configs = info.configs
    if configs is not None and configs.get("family") != family:
        log.warning("%s: embedded configs are for %s but the keys say %s; ignoring them.", p, configs.get("family"), family)
        configs = None
    tokenizers = load_clip_tokenizers(family)
    # An fp16/bf16 file wanted in fp32 is loaded as it is and upcast afterwards, module by module:
    # asking diffusers for fp32 directly holds the whole file and the whole fp32 model at once.
    upcast = info.float_dtype is not None and _is_upcast(info.float_dtype, dtype)
    later = cast_later and info.float_dtype in _ST_DTYPES.values() and info.float_dtype != dtype
    load_dtype = info.float_dtype if upcast or later else dtype
    if configs is None:
        parts = _from_single_file(p, SHIPPED_CONFIGS / CONFIG_DIRS[family], family, load_dtype, tokenizers)
    else:
        with tempfile.TemporaryDirectory(prefix="lora_trainer_cfg_") as tmp:
            parts = _from_single_file(p, write_config_dir(configs, tmp), family, load_dtype, tokenizers)
    base = _finish(family, parts, tokenizers, v_pred, p)
    models = (base.unet, base.vae, *base.text_encoders)
    if later:
        base.pending_cast = {id(model): dtype for model in models}
    elif upcast:
        for model in models:
            model.to(dtype)
    return base


@dataclass
class _FileInfo:
    keys: list
    in_channels: int | None  # UNet input channels (4 normally, 9 for inpainting)
    float_dtype: torch.dtype | None  # the dtype of all floating tensors, None if mixed
    configs: dict | None  # diffusers configs embedded by tiny.save_single_file (metadata / ckpt entry)


_ST_DTYPES = {"F16": torch.float16, "BF16": torch.bfloat16, "F32": torch.float32, "F64": torch.float64}


def _inspect(p: Path) -> _FileInfo:
    """Read what loading needs to know from the file header (safetensors) or a memory-mapped .ckpt."""
    if p.suffix.lower() in TORCH_PICKLE_EXTS:
        top = load_torch_checkpoint(p, top_level=True)
        sd = state_dict_of(top)
        keys = [k for k, v in sd.items() if isinstance(v, torch.Tensor)]
        dtypes = {sd[k].dtype for k in keys if sd[k].is_floating_point()}
        shape = list(sd[IN_CONV].shape) if IN_CONV in keys else None
        raw = top.get(METADATA_KEY) if isinstance(top.get(METADATA_KEY), str) else None
        del sd, top
    else:
        keys = read_checkpoint_keys(p)  # also refuses missing, damaged and unknown file types
        from safetensors import safe_open

        with safe_open(str(p), framework="pt") as f:
            dtypes = {_float_dtype(f.get_slice(k).get_dtype()) for k in keys} - {False}
            shape = f.get_slice(IN_CONV).get_shape() if IN_CONV in keys else None
            raw = (f.metadata() or {}).get(METADATA_KEY)
    in_channels = int(shape[1]) if shape is not None and len(shape) == 4 else None
    float_dtype = next(iter(dtypes)) if len(dtypes) == 1 else None
    return _FileInfo(keys, in_channels, float_dtype, _parse_configs(p, raw))


def _parse_configs(p: Path, raw: str | None) -> dict | None:
    if not raw:
        return None
    try:
        configs = json.loads(raw)
    except ValueError:
        log.warning("%s: unreadable %s metadata; using the shipped configs.", p, METADATA_KEY)
        return None
    if not isinstance(configs, dict) or not all(isinstance(configs.get(k), (dict, type(None))) for k in CONFIG_FILES):
        log.warning("%s: malformed %s metadata; using the shipped configs.", p, METADATA_KEY)
        return None
    return configs


def _from_single_file(p: Path, config_dir: Path, family: str, dtype, tokenizers) -> tuple:
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

    sched_cfg = _read_json(config_dir / "scheduler" / "scheduler_config.json")
    kwargs = dict(config=str(config_dir), local_files_only=True, torch_dtype=dtype,
                  tokenizer=tokenizers[0], scheduler=_ddpm(sched_cfg, False))
    if family == "sdxl":
        cls = StableDiffusionXLPipeline
        kwargs["tokenizer_2"] = tokenizers[1]
    else:
        cls = StableDiffusionPipeline
        kwargs.update(safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    try:
        pipe = cls.from_single_file(str(p), **kwargs)
    except ModelLoadError:
        raise
    except Exception as exc:
        text = str(exc)
        what = (msg("model.shapes", family=family.upper())
                if "shape" in text or "size mismatch" in text else msg("model.not_built"))
        raise ModelLoadError(msg("model.detected_but", path=p, family=family.upper(), what=what,
                                 kind=type(exc).__name__, error=text[:500]),
                             msg("model.detected_but.advice")) from exc
    tes = [pipe.text_encoder] + ([pipe.text_encoder_2] if family == "sdxl" else [])
    return pipe.unet, pipe.vae, tes, sched_cfg


def _load_diffusers_folder(p: Path, dtype, v_parameterization, cast_later: bool = False) -> BaseModel:
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    family = detect_diffusers_folder(p)
    if family is None:
        raise ModelLoadError(msg("model.not_diffusers", path=p), msg("model.not_diffusers.advice"))
    sched_cfg = _read_json(p / "scheduler" / "scheduler_config.json")
    specs = [("unet", UNet2DConditionModel), ("vae", AutoencoderKL), ("text_encoder", CLIPTextModel)] + \
        ([("text_encoder_2", CLIPTextModelWithProjection)] if family == "sdxl" else [])
    models, pending = [], {}
    try:
        for sub, cls in specs:
            variant = folder_variant(p / sub)
            stored = _stored_float_dtype(p / sub, variant) if cast_later else None
            later = stored is not None and stored != dtype
            model = cls.from_pretrained(p, subfolder=sub, torch_dtype=stored if later else dtype,
                                        local_files_only=True, **variant)
            if later:   # cast by BaseModel.place on the device, as a single file's weights are
                pending[id(model)] = dtype
            models.append(model)
    except Exception as exc:
        raise ModelLoadError(msg("model.folder_failed", path=p, kind=type(exc).__name__, error=exc),
                             msg("model.folder_failed.advice")) from exc
    tokenizers = load_clip_tokenizers(family, diffusers_dir=p)
    if v_parameterization is None:
        v_parameterization = sched_cfg.get("prediction_type") == "v_prediction"
    unet, vae, *tes = models
    base = _finish(family, (unet, vae, tes, sched_cfg), tokenizers, bool(v_parameterization), p)
    base.pending_cast = pending
    return base


def _stored_float_dtype(folder: Path, variant: dict) -> torch.dtype | None:
    """The one float dtype of every weight in a diffusers model folder's safetensors files (None when they
    mix dtypes, are not safetensors, or cannot be read: such a model is loaded in the asked dtype)."""
    from safetensors import safe_open

    suffix = f".{variant['variant']}.safetensors" if variant else ".safetensors"
    files = [f for f in folder.glob("*.safetensors") if f.name.endswith(suffix) and (variant or f.name.count(".") == 1)]
    floats = set()
    try:
        for f in files:
            with safe_open(str(f), framework="pt") as opened:
                floats |= {_float_dtype(opened.get_slice(k).get_dtype()) for k in opened.keys()} - {False}
    except Exception:   # noqa: BLE001  (an unreadable file: diffusers' own load reports it)
        return None
    return next(iter(floats)) if files and len(floats) == 1 else None


def _float_dtype(code: str):
    """The torch dtype of a safetensors float dtype code (None for one torch cannot load here, e.g. F8);
    False for a code that is not a float."""
    return _ST_DTYPES.get(code) if code.startswith(("F", "BF")) else False


def _finish(family, parts, tokenizers, v_pred: bool, p: Path) -> BaseModel:
    unet, vae, tes, sched_cfg = parts
    for model in (unet, vae, *tes):
        model.requires_grad_(False)
        model.eval()
    return BaseModel(family=family, unet=unet, vae=vae, text_encoders=tes, tokenizers=tokenizers,
                     noise_scheduler=_ddpm(sched_cfg, v_pred), v_prediction=v_pred,
                     source_path=str(p), model_name=p.stem if p.is_file() else p.name)


def _ddpm(sched_cfg: dict, v_pred: bool):
    """The training noise scheduler: DDPM with the checkpoint's beta schedule."""
    from diffusers import DDPMScheduler

    keep = ("num_train_timesteps", "beta_start", "beta_end", "beta_schedule", "trained_betas",
            "steps_offset", "timestep_spacing", "rescale_betas_zero_snr")
    cfg = {k: v for k, v in sched_cfg.items() if k in keep}
    return DDPMScheduler.from_config(cfg, clip_sample=False,
                                     prediction_type="v_prediction" if v_pred else "epsilon")


def _is_upcast(src: torch.dtype, dst: torch.dtype) -> bool:
    return src in (torch.float16, torch.bfloat16) and dst in (torch.float32, torch.float64)


def _v_prediction(p: Path, family: str, keys: list, forced: bool | None) -> bool:
    if forced is not None:
        return bool(forced)
    yaml_file = p.with_suffix(".yaml")
    if yaml_file.is_file():
        m = re.search(r"^\s*parameterization:\s*[\"']?(\w+)", yaml_file.read_text(encoding="utf-8", errors="replace"),
                      re.MULTILINE)
        if m:
            return m.group(1) == "v"
    if "v_pred" in keys:  # marker key of v-prediction SDXL fine-tunes (read by A1111 and Forge)
        return True
    return family == "sd2"


def _read_json(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelLoadError(msg("model.unreadable", path=path, error=exc), msg("model.unreadable.advice")) from exc
