"""The header of a ``.safetensors`` file, read and rewritten without loading any tensor.

Format: ``u64 little-endian N | N bytes of JSON | tensor bytes``. The JSON maps tensor names
to ``{dtype, shape, data_offsets}`` and holds the string-to-string ``__metadata__``. Reading
it directly needs neither torch nor the safetensors package (the WebUI's start-up Python may
lack both), and copying the tensor bytes unchanged while replacing the metadata keeps a kept
epoch bit-identical to the file that was evaluated.
"""
from __future__ import annotations

import json
import os
import shutil
import struct
from typing import Any, Mapping

from ..errors import TrainerError
from ..text.messages import Message, msg, register

register({
    "io.not_safetensors": "{path} is not a readable .safetensors file ({why})",
    "io.not_safetensors.advice": "the file may be incomplete or damaged; use another epoch or train again",
    "io.short_header": "shorter than a header",
    "io.header_length": "header length {length} does not fit a {size}-byte file",
    "io.header_not_json": "the header is not JSON",
    "io.header_not_object": "the header is not a JSON object",
    "io.no_offsets": "tensor {name!r} has no valid data_offsets",
    "io.data_missing": "{count} bytes of tensor data are missing",
    "io.not_found": "file not found: {path}",
    "io.not_found.advice": "refresh the list of files; it may have been moved or deleted",
    "io.cannot_read": "cannot read {path}: {reason}",
    "io.cannot_read.advice": "check that the file is not open in another program and that the disk is reachable",
})

MAX_HEADER_BYTES = 100 * 2**20  # the safetensors library's own limit


def _bad(path: str | os.PathLike, why: Message) -> TrainerError:
    return TrainerError(msg("io.not_safetensors", path=path, why=why),
                        msg("io.not_safetensors.advice"))


def read_header(path: str | os.PathLike) -> tuple[dict[str, Any], int]:
    """(header JSON, offset where the tensor bytes start). Checks that no tensor lies past the end."""
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as fh:
            raw = fh.read(8)
            if len(raw) < 8:
                raise _bad(path, msg("io.short_header"))
            (length,) = struct.unpack("<Q", raw)
            if length > MAX_HEADER_BYTES or 8 + length > size:
                raise _bad(path, msg("io.header_length", length=length, size=size))
            text = fh.read(length)
    except FileNotFoundError:
        raise TrainerError(msg("io.not_found", path=path), msg("io.not_found.advice")) from None
    except OSError as err:
        raise TrainerError(msg("io.cannot_read", path=path, reason=err.strerror or err),
                           msg("io.cannot_read.advice")) from None
    try:
        header = json.loads(text.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise _bad(path, msg("io.header_not_json")) from None
    if not isinstance(header, dict):
        raise _bad(path, msg("io.header_not_object"))
    data_start = 8 + length
    end = 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            end = max(end, int(info["data_offsets"][1]))
        except (TypeError, KeyError, IndexError, ValueError):
            raise _bad(path, msg("io.no_offsets", name=name)) from None
    if data_start + end > size:
        raise _bad(path, msg("io.data_missing", count=data_start + end - size))
    return header, data_start


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The ``__metadata__`` block (empty when the file has none)."""
    header, _ = read_header(path)
    meta = header.get("__metadata__") or {}
    return {str(k): str(v) for k, v in meta.items()} if isinstance(meta, dict) else {}


def tensor_names(path: str | os.PathLike) -> list[str]:
    header, _ = read_header(path)
    return [k for k in header if k != "__metadata__"]


def encode_header(header: Mapping[str, Any]) -> bytes:
    """Length prefix + JSON, padded with spaces to a multiple of 8 (as the library writes it)."""
    text = json.dumps(header, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text


def copy_with_metadata(src: str | os.PathLike, dst: str | os.PathLike, updates: Mapping[str, str]) -> None:
    """Write ``dst``: ``src``'s tensors byte for byte, its metadata with ``updates`` applied.

    ``dst`` is written as given (the caller makes it atomic)."""
    bad = [k for k, v in updates.items() if not isinstance(k, str) or not isinstance(v, str)]
    if bad:
        raise TypeError(f"safetensors metadata must map strings to strings; not: {', '.join(map(str, bad))}")
    header, data_start = read_header(src)
    meta = dict(header.get("__metadata__") or {})
    meta.update(updates)
    header = {"__metadata__": meta, **{k: v for k, v in header.items() if k != "__metadata__"}}
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        fout.write(encode_header(header))
        fin.seek(data_start)
        shutil.copyfileobj(fin, fout, 1 << 20)
