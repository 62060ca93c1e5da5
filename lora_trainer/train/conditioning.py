"""Prompt conditioning for the UNet, per model family.

SD1.x/SD2.x: the text encoder's last layer, or with ``clip_skip`` N the N-th layer from
the end followed by the final layer norm (what the WebUI does at inference).
SDXL: penultimate layers of both encoders concatenated, the second encoder's pooled
projection, and the size/crop ``time_ids``.
Captions longer than 75 tokens (``max_token_length`` 150 / 225) are encoded in kohya's chunks
(``tokens``): every chunk alone, the outputs joined, SDXL's pooled output from the first chunk.
"""
from __future__ import annotations

from typing import Sequence

import torch

from .tokens import CHUNK, first_chunk, flatten_chunks, merge_chunks, token_ids
from .transfer import to_device

MAX_TOKENS = CHUNK + 2


def tokenize(tokenizer, captions: Sequence[str], device, max_tokens: int = CHUNK) -> torch.Tensor:
    """[B, 77] ids, or [B, n, 77] in chunks for ``max_tokens`` 150 / 225."""
    return to_device(token_ids(tokenizer, captions, max_tokens), device)


def tokenize_captions(family: str, tokenizers: list, captions: Sequence[str], device,
                      max_tokens: int = CHUNK) -> list[torch.Tensor]:
    """Token ids for each text encoder the family uses, on ``device`` (host work: the tokenizers)."""
    used = tokenizers if family == "sdxl" else tokenizers[:1]
    return [tokenize(tok, captions, device, max_tokens) for tok in used]


def encode_ids(family: str, text_encoders: list, ids: Sequence[torch.Tensor],
               clip_skip: int | None) -> dict[str, torch.Tensor]:
    """UNet keyword arguments (``encoder_hidden_states`` and, for SDXL, ``added_cond_kwargs`` parts)
    from token ids ([B, 77], or [B, n, 77] chunks): device work only, so a CUDA graph can capture it."""
    flat = [flatten_chunks(tokens) for tokens in ids]
    chunks = flat[0][1]
    if family == "sdxl":
        hidden, pooled = [], None
        for index, (te, (tokens, _)) in enumerate(zip(text_encoders, flat)):
            out = te(tokens, output_hidden_states=True)
            hidden.append(out.hidden_states[-2])
            if index == 1:
                pooled = first_chunk(out[0], chunks)  # text_embeds: the pooled, projected output
        return {"encoder_hidden_states": merge_chunks(torch.cat(hidden, dim=-1), chunks), "text_embeds": pooled}
    te, tokens = text_encoders[0], flat[0][0]
    if clip_skip and clip_skip > 1:
        out = te(tokens, output_hidden_states=True)
        final_norm = getattr(te, "text_model", te).final_layer_norm  # transformers 5 has no text_model
        hidden = final_norm(out.hidden_states[-clip_skip])
    else:
        hidden = te(tokens)[0]  # last_hidden_state (final layer norm applied)
    return {"encoder_hidden_states": merge_chunks(hidden, chunks)}


def encode_prompts(family: str, text_encoders: list, tokenizers: list, captions: Sequence[str],
                   clip_skip: int | None, device, max_tokens: int = CHUNK) -> dict[str, torch.Tensor]:
    """``encode_ids`` of the captions' tokens."""
    return encode_ids(family, text_encoders, tokenize_captions(family, tokenizers, captions, device, max_tokens),
                      clip_skip)


def sdxl_time_ids(original_sizes: Sequence[tuple[int, int]], crops: Sequence[tuple[int, int]],
                  target_sizes: Sequence[tuple[int, int]], device, dtype) -> torch.Tensor:
    """(orig_h, orig_w, crop_top, crop_left, target_h, target_w) per image."""
    rows = [list(o) + list(c) + list(t) for o, c, t in zip(original_sizes, crops, target_sizes)]
    return torch.tensor(rows, device=device, dtype=dtype)


def encode_cached(cache: dict, family: str, text_encoders: list, tokenizers: list, captions: Sequence[str],
                  clip_skip: int | None, device, max_tokens: int = CHUNK) -> dict[str, torch.Tensor]:
    """``encode_prompts`` through a per-caption cache (frozen text encoders, fixed captions).

    Captions not yet cached are encoded together once; a batch is then one ``stack`` per output."""
    missing = [c for c in dict.fromkeys(captions) if c not in cache]
    if missing:
        with torch.no_grad():
            out = encode_prompts(family, text_encoders, tokenizers, missing, clip_skip, device, max_tokens)
        for index, caption in enumerate(missing):
            cache[caption] = {key: value[index].detach() for key, value in out.items()}
    first = cache[captions[0]]
    return {key: torch.stack([cache[c][key] for c in captions]) for key in first}
