"""Continuing from a LoRA file: why the file does not fit the network, by key (English; Chinese in
``text/zh_CN.json``). Torch-free."""
from __future__ import annotations

from ..text.messages import register

register({
    "weights.empty": "network_weights: {name} holds no LoRA, LoHa or LoKr layers",
    "weights.empty.advice": "choose a kohya-format LoRA file (.safetensors) to continue from",
    "weights.mixed": "network_weights: {name} mixes {kinds} layers, which cannot continue as one network type",
    "weights.kind": "network_weights: {name} is a {kind}, but the network type (algo) is {algo}: set algo {found} to "
                    "continue it",
    "weights.dora": "network_weights: {name} has DoRA magnitudes (dora_scale), but DoRA is off: turn DoRA on",
    "weights.no_dora": "network_weights: {name} has no DoRA magnitudes (dora_scale), but DoRA is on: turn DoRA off",
    "weights.te_dropped": "network_weights: {name} also changes the text encoder ({count} layers), but only the UNet "
                          "is trained, so those layers would be missing from the continued file: turn off "
                          "network_train_unet_only (the text encoder then trains at text_encoder_lr)",
    "weights.unet_dropped": "network_weights: {name} changes the UNet ({count} layers), but only the text encoder is "
                            "trained: turn off network_train_text_encoder_only",
})
