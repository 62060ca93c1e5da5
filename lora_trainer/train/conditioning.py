"""Prompt conditioning for the UNet, per model family.

SD1.x/SD2.x: the text encoder's last layer, or with ``clip_skip`` N the N-th layer from
the end followed by the final layer norm (what the WebUI does at inference).
SDXL: penultimate layers of both encoders concatenated, the second encoder's pooled
projection, and the size/crop ``time_ids``.
"""
from __future__ import annotations

from typing import Sequence

import torch

from .transfer import to_device

MAX_TOKENS = 77


def tokenize(tokenizer, captions: Sequence[str], device) -> torch.Tensor:
    ids = tokenizer(list(captions), padding="max_length", max_length=MAX_TOKENS, truncation=True,
                    return_tensors="pt").input_ids
    return to_device(ids, device)


def long_caption_warning(tokenizer, items: Sequence) -> list[str]:
    """Captions longer than the text encoder reads are cut at ``MAX_TOKENS``; say how many and where, before
    training (with shuffled tags a different part is cut each step)."""
    captions = list(dict.fromkeys(item.image.caption for item in items))
    if not captions:
        return []
    # a limit far above the captions' length: no truncation, and no warning of the tokenizer's own
    counts = dict(zip(captions, (len(ids) for ids in tokenizer(captions, truncation=True, max_length=100_000)
                                 ["input_ids"])))
    long = [(item, counts[item.image.caption] - 2) for item in items if counts[item.image.caption] > MAX_TOKENS]
    if not long:
        return []
    long.sort(key=lambda entry: -entry[1])
    folders = sorted({item.concept.path.name for item, _ in long})
    shown = ", ".join(f"{item.image.path.name} ({tokens} tokens)" for item, tokens in long[:3])
    return [f"{len(long)} of {len(items)} captions are longer than the {MAX_TOKENS - 2} tokens the text encoder "
            f"reads and are cut there (in {', '.join(folders)}: {shown}{' …' if len(long) > 3 else ''}); the "
            f"words after the cut are not learned. Shorten them, or put the important tags first"]


def tokenize_captions(family: str, tokenizers: list, captions: Sequence[str], device) -> list[torch.Tensor]:
    """Token ids for each text encoder the family uses, on ``device`` (host work: the tokenizers)."""
    used = tokenizers if family == "sdxl" else tokenizers[:1]
    return [tokenize(tok, captions, device) for tok in used]


def encode_ids(family: str, text_encoders: list, ids: Sequence[torch.Tensor],
               clip_skip: int | None) -> dict[str, torch.Tensor]:
    """UNet keyword arguments (``encoder_hidden_states`` and, for SDXL, ``added_cond_kwargs`` parts)
    from token ids: device work only, so a CUDA graph can capture it."""
    if family == "sdxl":
        hidden, pooled = [], None
        for index, (te, tokens) in enumerate(zip(text_encoders, ids)):
            out = te(tokens, output_hidden_states=True)
            hidden.append(out.hidden_states[-2])
            if index == 1:
                pooled = out[0]  # text_embeds: the pooled, projected output
        return {"encoder_hidden_states": torch.cat(hidden, dim=-1), "text_embeds": pooled}
    te, tokens = text_encoders[0], ids[0]
    if clip_skip and clip_skip > 1:
        out = te(tokens, output_hidden_states=True)
        final_norm = getattr(te, "text_model", te).final_layer_norm  # transformers 5 has no text_model
        hidden = final_norm(out.hidden_states[-clip_skip])
    else:
        hidden = te(tokens)[0]  # last_hidden_state (final layer norm applied)
    return {"encoder_hidden_states": hidden}


def encode_prompts(family: str, text_encoders: list, tokenizers: list, captions: Sequence[str],
                   clip_skip: int | None, device) -> dict[str, torch.Tensor]:
    """``encode_ids`` of the captions' tokens."""
    return encode_ids(family, text_encoders, tokenize_captions(family, tokenizers, captions, device), clip_skip)


def sdxl_time_ids(original_sizes: Sequence[tuple[int, int]], crops: Sequence[tuple[int, int]],
                  target_sizes: Sequence[tuple[int, int]], device, dtype) -> torch.Tensor:
    """(orig_h, orig_w, crop_top, crop_left, target_h, target_w) per image."""
    rows = [list(o) + list(c) + list(t) for o, c, t in zip(original_sizes, crops, target_sizes)]
    return torch.tensor(rows, device=device, dtype=dtype)


def encode_cached(cache: dict, family: str, text_encoders: list, tokenizers: list, captions: Sequence[str],
                  clip_skip: int | None, device) -> dict[str, torch.Tensor]:
    """``encode_prompts`` through a per-caption cache (frozen text encoders, fixed captions).

    Captions not yet cached are encoded together once; a batch is then one ``stack`` per output."""
    missing = [c for c in dict.fromkeys(captions) if c not in cache]
    if missing:
        with torch.no_grad():
            out = encode_prompts(family, text_encoders, tokenizers, missing, clip_skip, device)
        for index, caption in enumerate(missing):
            cache[caption] = {key: value[index].detach() for key, value in out.items()}
    first = cache[captions[0]]
    return {key: torch.stack([cache[c][key] for c in captions]) for key in first}
