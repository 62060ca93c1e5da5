"""Captions → CLIP token ids in kohya sd-scripts' chunks of 75, and the captions a limit cuts.

``max_token_length`` 75: one sequence of 77 ids per caption (BOS, up to 75 tokens, EOS, padding).
150 or 225: kohya tokenizes the caption to 152 / 227 ids (BOS, the tokens, EOS, padding) and cuts them
into 2 / 3 chunks of 77 ids: BOS, the next 75 ids, and the last id of the whole sequence. A tokenizer
that pads with its EOS (SD1's, SDXL's first) needs nothing more; one that pads with another id (SD2's
and SDXL's second: "!") gets an EOS at the end of a chunk that is full of text, and right after BOS in a
chunk with no text. Each chunk is encoded on its own; ``merge_chunks`` joins the encoder's outputs
back the way kohya does: BOS of the first chunk, the 75 text positions of every chunk, the last
position of the last chunk — 75·n + 2 vectors (152 for 150, 227 for 225).
"""
from __future__ import annotations

from typing import Sequence

import torch

CHUNK = 75          # text tokens per chunk (77 with BOS and EOS)
TOKEN_LIMITS = (75, 150, 225)
SHOWN = 12          # captions named in a warning


def chunks_of(max_tokens: int) -> int:
    """How many 77-id chunks a caption becomes (1 for 75)."""
    return max(1, int(max_tokens) // CHUNK)


def token_ids(tokenizer, captions: Sequence[str], max_tokens: int = CHUNK) -> torch.Tensor:
    """Token ids of ``captions``: [B, 77] for 75 tokens, [B, n, 77] for n chunks (150, 225)."""
    if chunks_of(max_tokens) == 1:
        return tokenizer(list(captions), padding="max_length", max_length=CHUNK + 2, truncation=True,
                         return_tensors="pt").input_ids
    ids = tokenizer(list(captions), padding="max_length", max_length=chunks_of(max_tokens) * CHUNK + 2,
                    truncation=True, return_tensors="pt").input_ids
    return split_chunks(ids, tokenizer.eos_token_id, tokenizer.pad_token_id)


def split_chunks(ids: torch.Tensor, eos: int, pad: int) -> torch.Tensor:
    """[B, 75·n + 2] ids (BOS, text, EOS, padding) → [B, n, 77] chunks, as kohya's ``get_input_ids``."""
    count = (ids.shape[1] - 2) // CHUNK
    bos, last = ids[:, :1], ids[:, -1:]
    chunks = []
    for index in range(count):
        start = 1 + index * CHUNK
        chunk = torch.cat([bos, ids[:, start:start + CHUNK], last], dim=1)
        if pad != eos:
            before_last = chunk[:, -2]
            chunk[(before_last != eos) & (before_last != pad), -1] = eos   # text up to the end: close it
            chunk[chunk[:, 1] == pad, 1] = eos                              # no text: BOS EOS pad …
        chunks.append(chunk)
    return torch.stack(chunks, dim=1)


def flatten_chunks(ids: torch.Tensor) -> tuple[torch.Tensor, int]:
    """[B, n, 77] → ([B·n, 77], n); [B, 77] stays as it is (n = 1)."""
    if ids.dim() == 3:
        return ids.reshape(-1, ids.shape[-1]), ids.shape[1]
    return ids, 1


def merge_chunks(hidden: torch.Tensor, chunks: int) -> torch.Tensor:
    """The encoder's [B·n, 77, D] outputs of n chunks → [B, 75·n + 2, D] (kohya's ``get_hidden_states``)."""
    if chunks == 1:
        return hidden
    length = hidden.shape[1]
    joined = hidden.reshape(-1, chunks * length, hidden.shape[-1])
    parts = [joined[:, :1]]
    parts += [joined[:, 1 + index * length:1 + index * length + CHUNK] for index in range(chunks)]
    parts.append(joined[:, -1:])
    return torch.cat(parts, dim=1)


def first_chunk(pooled: torch.Tensor, chunks: int) -> torch.Tensor:
    """SDXL's pooled output of each caption: that of its first chunk (kohya: ``pool2[::n]``)."""
    return pooled if chunks == 1 else pooled[::chunks]


def count_tokens(tokenizer, caption: str) -> int:
    """The caption's CLIP tokens, BOS and EOS not counted (no warning about a caption longer than 77)."""
    return len(tokenizer(caption, add_special_tokens=False, truncation=False, verbose=False).input_ids)


def cut_captions(tokenizer, captions: Sequence[tuple[str, str]], max_tokens: int) -> list[tuple[str, int]]:
    """(name, tokens) of each (name, caption) longer than ``max_tokens``, longest first."""
    seen: dict[str, int] = {}
    cut = []
    for name, caption in captions:
        if caption not in seen:
            seen[caption] = count_tokens(tokenizer, caption) if caption else 0
        if seen[caption] > max_tokens:
            cut.append((name, seen[caption]))
    return sorted(cut, key=lambda pair: -pair[1])


def long_caption_warning(tokenizer, captions: Sequence[tuple[str, str]], max_tokens: int,
                         shuffled: bool = False) -> str | None:
    """What the run says before training about captions the limit cuts (None when none is cut)."""
    cut = cut_captions(tokenizer, captions, max_tokens)
    if not cut:
        return None
    names = ", ".join(f"{name} ({count})" for name, count in cut[:SHOWN])
    if len(cut) > SHOWN:
        names += f", … (+{len(cut) - SHOWN})"
    larger = [limit for limit in TOKEN_LIMITS if limit > max_tokens and limit >= cut[0][1]] or \
        [limit for limit in TOKEN_LIMITS if limit > max_tokens]
    fix = (f"set max_token_length {larger[0]} or shorten them" if larger else
           "shorten them (225 is the longest max_token_length)")
    where = "a different part at each step, as the tags are shuffled" if shuffled else "their end"
    return (f"{len(cut)} of {len(captions)} captions are longer than max_token_length ({max_tokens} tokens) "
            f"and lose {where}: {names}; {fix}")
