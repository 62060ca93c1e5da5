"""The base model's loading errors by key (English; Chinese in ``text/zh_CN.json``)."""
from __future__ import annotations

from ..text.messages import register

register({
    "model.shapes": "its tensor shapes do not match a standard {family} model",
    "model.not_built": "diffusers could not build the model from it",
    "model.detected_but": "{path}: detected as {family}, but {what} ({kind}: {error}).",
    "model.detected_but.advice": "the file may be damaged or an architecture variant the trainer does not support; "
                                 "try re-downloading it, or another checkpoint of the same model",
    "model.not_diffusers": "{path}: this folder is not a diffusers model (no model_index.json).",
    "model.not_diffusers.advice": "select a .safetensors/.ckpt file, or a diffusers folder containing "
                                  "model_index.json",
    "model.folder_failed": "{path}: the diffusers model folder could not be loaded ({kind}: {error}).",
    "model.folder_failed.advice": "check that unet/, vae/ and text_encoder/ hold their weights (re-download if not)",
    "model.unreadable": "{path}: missing or unreadable ({error}).",
    "model.unreadable.advice": "repair or re-download the model",
})
