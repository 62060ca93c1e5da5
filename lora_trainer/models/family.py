"""Which Stable Diffusion family a checkpoint or diffusers folder holds: "sd1", "sd2" or "sdxl".

Single files are recognised from their original-layout (LDM/SGM) key names, read without loading
the weights. Anything else (SD3, Flux, refiner, inpainting, LoRA, VAE, embeddings, ...) is refused
with a message that says what the file is and what to use instead.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable

from ..errors import ModelLoadError
from ..text.messages import Message, msg
from . import messages  # noqa: F401  (registers the sentences)

FAMILIES = ("sd1", "sd2", "sdxl")

UNET = "model.diffusion_model."
SD1_TE = "cond_stage_model.transformer."
SD2_TE = "cond_stage_model.model."
SDXL_TE1 = "conditioner.embedders.0.transformer."
SDXL_TE2 = "conditioner.embedders.1.model."
REFINER_TE = "conditioner.embedders.0.model."
IN_CONV = UNET + "input_blocks.0.0.weight"

SUPPORTED = msg("models.supported")
_PICK_BASE = msg("models.pick_base")


def _fail(source: str | Message, what: Message, advice: Message = _PICK_BASE) -> ModelLoadError:
    return ModelLoadError(msg("models.at", source=source, what=what), advice)


def detect_family(keys: Iterable[str], *, source: str | Message = msg("models.this_checkpoint"),
                  in_channels: int | None = None) -> str:
    """Family of an original-layout checkpoint from its key names.

    ``in_channels`` (the UNet's first conv input width, if known) lets inpainting and
    instruct-pix2pix models be refused; ``source`` names the file in error messages.
    """
    keys = list(keys)
    if not keys:
        raise _fail(source, msg("models.no_tensors"), msg("models.no_tensors.advice"))
    _reject_non_base(keys, source)

    def has(prefix: str) -> bool:
        return any(k.startswith(prefix) for k in keys)

    if not has(UNET):
        raise _unet_missing(keys, source)
    if has(SDXL_TE2) and has(SDXL_TE1):
        family = "sdxl"
    elif has(REFINER_TE):
        raise _fail(source, msg("models.refiner"), msg("models.refiner.advice"))
    elif has(SD2_TE):
        family = "sd2"
    elif has(SD1_TE + "text_model."):
        family = "sd1"
    elif has(SD1_TE):
        raise _fail(source, msg("models.old_clip"), msg("models.old_clip.advice"))
    elif has(UNET + "label_emb.") or has("conditioner."):
        raise _fail(source, msg("models.sdxl_one_te"), _PICK_BASE)
    else:
        raise _fail(source, msg("models.no_te"), msg("models.no_te.advice"))
    _check_in_channels(in_channels, source)
    return family


def _check_in_channels(in_channels: int | None, source: str) -> None:
    if in_channels is not None and in_channels != 4:
        kind = {9: "models.inpainting", 8: "models.pix2pix", 5: "models.depth"}.get(in_channels, "models.special")
        raise _fail(source, msg("models.in_channels", kind=msg(kind), channels=in_channels),
                    msg("models.in_channels.advice"))


def _reject_non_base(keys: list[str], source: str) -> None:
    lower = [k.lower() for k in keys]
    if any(k.startswith(("lora_unet_", "lora_te", "lycoris_")) or ".lora_down." in k or ".lora_up." in k
           or ".lora_a." in k or ".lora_b." in k or ".hada_w" in k or ".lokr_w" in k for k in lower):
        raise _fail(source, msg("models.is_lora"), msg("models.is_lora.advice", pick=_PICK_BASE))
    if any(k in ("string_to_param", "emb_params", "clip_l", "clip_g", "string_to_token") for k in keys):
        raise _fail(source, msg("models.is_embedding"), _PICK_BASE)
    if any(k.startswith(("model.diffusion_model.joint_blocks.", "joint_blocks.", "text_encoders.")) for k in keys):
        raise _fail(source, msg("models.is_sd3", supported=SUPPORTED), _PICK_BASE)
    if any(k.startswith(("double_blocks.", "model.diffusion_model.double_blocks.", "single_transformer_blocks.",
                         "transformer_blocks.0.ff_context")) for k in keys):
        raise _fail(source, msg("models.is_flux", supported=SUPPORTED), _PICK_BASE)
    if any(k.startswith("control_model.") for k in keys):
        raise _fail(source, msg("models.is_controlnet"), _PICK_BASE)
    if "edm_mean" in keys or "edm_std" in keys:
        raise _fail(source, msg("models.is_edm", supported=SUPPORTED), _PICK_BASE)


def _unet_missing(keys: list[str], source: str) -> ModelLoadError:
    vae = ("encoder.", "decoder.", "quant_conv.", "post_quant_conv.", "first_stage_model.")
    if all(k.startswith(vae) for k in keys):
        return _fail(source, msg("models.is_vae"), msg("models.is_vae.advice", pick=_PICK_BASE))
    if all(k.startswith(("text_model.", "cond_stage_model.", "conditioner.", "transformer.", "encoder.layers"))
           for k in keys):
        return _fail(source, msg("models.is_te"), _PICK_BASE)
    if any(k.startswith(("down_blocks.", "mid_block.", "conv_in.")) for k in keys):
        return _fail(source, msg("models.is_component"), msg("models.is_component.advice"))
    return _fail(source, msg("models.unknown_arch", supported=SUPPORTED))


# --- reading key names without loading weights --------------------------------------------------

TORCH_PICKLE_EXTS = (".ckpt", ".pt", ".pth", ".bin")


def read_checkpoint_keys(path: str | os.PathLike) -> list[str]:
    """Tensor names of a ``.safetensors`` or ``.ckpt`` file, without reading the weights into RAM."""
    p = Path(path)
    _check_file(p)
    if p.suffix.lower() == ".safetensors":
        from safetensors import safe_open

        try:
            with safe_open(str(p), framework="pt") as f:
                return list(f.keys())
        except Exception as exc:
            raise _damaged(p, exc) from exc
    if p.suffix.lower() in TORCH_PICKLE_EXTS:
        return [k for k, v in load_torch_checkpoint(p).items() if hasattr(v, "shape")]
    raise ModelLoadError(msg("models.file_type", path=p, suffix=p.suffix), msg("models.file_type.advice"))


def load_torch_checkpoint(path: str | os.PathLike, *, top_level: bool = False) -> dict:
    """A .ckpt state dict, memory-mapped and with ``weights_only=True`` (no code runs from the file).

    ``top_level=True`` returns the outer dict, which may hold the weights under "state_dict".
    """
    import pickle

    import torch

    p = Path(path)
    _check_file(p)
    try:
        try:
            obj = torch.load(str(p), map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as exc:
            if "mmap" not in str(exc):
                raise
            obj = torch.load(str(p), map_location="cpu", weights_only=True)  # legacy (non-zip) format
    except pickle.UnpicklingError as exc:
        raise ModelLoadError(msg("models.pickle", path=p), msg("models.pickle.advice")) from exc
    except (RuntimeError, EOFError, ValueError, OSError) as exc:
        raise _damaged(p, exc) from exc
    if not isinstance(obj, dict):
        raise ModelLoadError(msg("models.no_state_dict", path=p, kind=type(obj).__name__),
                             msg("models.no_state_dict.advice"))
    return obj if top_level else state_dict_of(obj)


def state_dict_of(obj: dict) -> dict:
    """The weights of a loaded .ckpt: unwrap (nested) "state_dict" entries."""
    while isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    return obj


def _check_file(p: Path) -> None:
    if not p.is_file():
        raise ModelLoadError(msg("models.not_found", path=p), msg("models.not_found.advice"))
    if p.stat().st_size < 16:
        raise ModelLoadError(msg("models.too_small", path=p, size=p.stat().st_size), msg("models.redownload"))


def _damaged(p: Path, exc: Exception) -> ModelLoadError:
    return ModelLoadError(msg("models.damaged", path=p, kind=type(exc).__name__, error=exc),
                          msg("models.damaged.advice"))


# --- diffusers folders ----------------------------------------------------------------------------

def detect_diffusers_folder(path: str | os.PathLike) -> str | None:
    """Family of a diffusers model folder, or None if ``path`` is not one (no model_index.json)."""
    p = Path(path)
    index_file = p / "model_index.json"
    if not index_file.is_file():
        return None
    try:
        index = json.loads(index_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelLoadError(msg("models.index_unreadable", path=index_file, error=exc),
                             msg("models.repair_folder")) from exc
    cls = str(index.get("_class_name", ""))
    source = str(p)
    if cls == "StableDiffusionXLPipeline":
        if "text_encoder_2" not in index or index.get("text_encoder") in (None, [None, None]):
            raise _fail(source, msg("models.sdxl_folder_one_te"))
        family = "sdxl"
    elif cls == "StableDiffusionPipeline":
        te = _read_json(p / "text_encoder" / "config.json")
        family = "sd2" if te.get("hidden_act") == "gelu" else "sd1"
    else:
        raise _unsupported_pipeline(cls, source)
    unet_config = p / "unet" / "config.json"
    if unet_config.is_file():
        _check_in_channels(_read_json(unet_config).get("in_channels", 4), source)
    return family


def _unsupported_pipeline(cls: str, source: str) -> ModelLoadError:
    if "Inpaint" in cls or "Img2Img" in cls or "Refiner" in cls:
        return _fail(source, msg("models.special_folder", cls=cls))
    if "StableDiffusion3" in cls or "Flux" in cls:
        name = "SD3" if "3" in cls else "Flux"
        return _fail(source, msg("models.other_folder", name=name, cls=cls, supported=SUPPORTED))
    return _fail(source, msg("models.other_pipeline", cls=cls, supported=SUPPORTED))


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelLoadError(msg("model.unreadable", path=path, error=exc), msg("models.repair_folder")) from exc
