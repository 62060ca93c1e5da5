"""Continuing from a LoRA file: why the file does not fit the network, by key (English; Chinese in
``text/zh_CN.json``). Torch-free."""
from __future__ import annotations

from ..text.messages import register

register({
    "weights.family": "network_weights: {name} was trained for {trained}, but the base model is {base}: choose a "
                      "LoRA of the same family, or that base model",
    "weights.example_one": "{count} layer, e.g. {layer}",
    "weights.example_many": "{count} layers, e.g. {layer}",
    "weights.other_family": "network_weights: {name} has layers this base model lacks ({example}): it was made for "
                            "another model family than {family}; choose a LoRA of the same family",
    "weights.untrained": "network_weights: {name} trains layers these settings do not ({example}): turn on "
                         "dim_from_weights to train the file's layers (layers outside kohya's attention, "
                         "feed-forward and ResNet sets are not trained here)",
    "weights.untrained_conv": "network_weights: {name} trains layers these settings do not ({example}): set "
                              "conv_dim to the file's conv rank, or turn on dim_from_weights to train the file's "
                              "layers (layers outside kohya's attention, feed-forward and ResNet sets are not "
                              "trained here)",
    "weights.rank": "network_weights: the file's rank is {file_rank} where these settings give {ours} ({example}): "
                    "set network_dim (conv_dim for 3×3 layers) to {file_rank}, or turn on dim_from_weights",
    "weights.alpha": "network_weights: the file's alpha is {file_alpha:g} where these settings give {ours:g} "
                     "({example}): set network_alpha (conv_alpha) to the file's, or turn on dim_from_weights",
    "weights.structure": "network_weights: {name} splits its factors differently from these settings ({example}): "
                         "for a LoKr, set factor and network_dim as it was trained, or turn on dim_from_weights",
    "weights.fresh": "network_weights: {count} trained layers are not in {name} and start from zero, e.g. {layer}",
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
    "lora.file_incomplete": "the file may be incomplete; use another epoch",
    "lora.no_fit": "{name} does not fit this base model (none of its {count} layers exist in it)",
    "lora.no_fit.advice": "choose the base model the LoRA was trained on (SD1 / SD2 / SDXL must match)",
    "lora.tucker": "a layer of this file is Tucker (CP) decomposed, which is not read here",
    "lora.tucker.advice": "apply it in the WebUI instead",
    "lora.no_kind": "a layer holds {parts}, which is no LoRA, LoHa or LoKr",
    "lora.no_targets": "no LoRA target layers found in {model}",
    "lora.unexpected_key": "unexpected key {name}",
    "lora.module_no_kind": "{name} holds {parts}: no LoRA, LoHa or LoKr the hosts read",
    "lora.no_alpha": "{name} lacks alpha",
    "lora.alpha_not_single": "{name}.alpha is not a single number",
    "lora.not_finite": "{name} holds NaN or infinite values",
    "lora.no_modules": "the file holds no LoRA modules",
    "lora.metadata_lacks": "metadata lacks {name}",
    "lora.dim_mismatch": "metadata ss_network_dim={dim} but the ranks are {ranks}",
    "lora.tag_frequency": "metadata ss_tag_frequency is not JSON",
    "lora.rank_mismatch": "{name}: lora_up has rank {up}, lora_down {down}",
    "lora.conv_up": "{name}: conv lora_up must be 1×1",
    "lora.shapes": "{name}: lora_down {down} and lora_up {up} do not fit",
    "lora.loha_shapes": "{name}: the LoHa factors {shapes} do not fit",
    "lora.dora_shape": "{name}: dora_scale {shape} is not one value per input column (1 × in)",
})
