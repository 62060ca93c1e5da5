"""Read scalar series from TensorBoard event files (kohya's logs), no tensorboard package.

kohya's trainers log ``loss/current``, ``loss/average``, ``loss/epoch`` and the learning
rates through accelerate's TensorBoard tracker. Event files are TFRecord frames around
``tensorflow.Event`` protobufs; only the fields a scalar needs are decoded: ``step`` and
``summary.value[].{tag, simple_value}`` (or a one-element float ``tensor``, TF2 style).
A frame cut short by a crash ends the file quietly.
"""
from __future__ import annotations

import math
import os
import struct
from pathlib import Path


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")  # internal: read_event_file skips the damaged frame
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")  # internal: read_event_file skips the damaged frame


def _fields(buf: bytes):
    """(field number, wire type, value) of a protobuf message; bytes for length-delimited."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = buf[pos:pos + 8], pos + 8
        elif wire == 2:
            length, pos = _varint(buf, pos)
            value, pos = buf[pos:pos + length], pos + length
        elif wire == 5:
            value, pos = buf[pos:pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported wire type {wire}")  # internal: read_event_file skips the damaged frame
        if pos > len(buf):
            raise ValueError("truncated field")  # internal: read_event_file skips the damaged frame
        yield field, wire, value


def _tensor_value(buf: bytes) -> float | None:
    """A scalar TensorProto: dtype 1 (DT_FLOAT) or 2 (DT_DOUBLE) in float_val/double_val/content."""
    dtype, content, values = 1, b"", []
    for field, wire, value in _fields(buf):
        if field == 1 and wire == 0:
            dtype = value
        elif field == 4 and wire == 2:
            content = value
        elif field == 5 and wire in (2, 5):  # float_val, packed or single
            values += [v for (v,) in struct.iter_unpack("<f", value[: len(value) // 4 * 4])]
        elif field == 6 and wire in (1, 2):  # double_val, single or packed
            values += [v for (v,) in struct.iter_unpack("<d", value[: len(value) // 8 * 8])]
    if values:
        return float(values[0])
    if content:
        if dtype == 2 and len(content) >= 8:
            return struct.unpack("<d", content[:8])[0]
        if len(content) >= 4:
            return struct.unpack("<f", content[:4])[0]
    return None


def _scalars_of_event(buf: bytes) -> tuple[int, list[tuple[str, float]]]:
    step, found = 0, []
    for field, wire, value in _fields(buf):
        if field == 2 and wire == 0:
            step = value if value < 1 << 63 else value - (1 << 64)
        elif field == 5 and wire == 2:  # summary
            for sfield, swire, sval in _fields(value):
                if sfield != 1 or swire != 2:
                    continue
                tag, number = None, None
                for vfield, vwire, vval in _fields(sval):
                    if vfield == 1 and vwire == 2:
                        tag = vval.decode("utf-8", "replace")
                    elif vfield == 2 and vwire == 5:
                        number = struct.unpack("<f", vval)[0]
                    elif vfield == 8 and vwire == 2:
                        number = _tensor_value(vval)
                if tag is not None and number is not None:
                    found.append((tag, number))
    return step, found


def read_event_file(path: str | os.PathLike) -> dict[str, list[tuple[int, float]]]:
    """{tag: [(step, value), …]} of one event file, in file order."""
    out: dict[str, list[tuple[int, float]]] = {}
    with open(path, "rb") as fh:
        data = fh.read()
    pos = 0
    while pos + 12 <= len(data):
        (length,) = struct.unpack("<Q", data[pos:pos + 8])
        start = pos + 12
        end = start + length
        if end + 4 > len(data):
            break  # the writer was killed mid-frame
        try:
            step, scalars = _scalars_of_event(data[start:end])
        except (ValueError, struct.error):
            scalars, step = [], 0
        for tag, value in scalars:
            out.setdefault(tag, []).append((step, value if math.isfinite(value) else float("nan")))
        pos = end + 4
    return out


def read_scalars(folder: str | os.PathLike) -> dict[str, list[tuple[int, float]]]:
    """All event files under ``folder`` (recursively), merged per tag and sorted by step.

    A step logged twice (a resumed run writes a second file) keeps the later file's value."""
    merged: dict[str, dict[int, float]] = {}
    files = sorted(Path(folder).rglob("events.out.tfevents.*"), key=lambda p: (p.stat().st_mtime, p.name))
    for path in files:
        try:
            series = read_event_file(path)
        except OSError:
            continue
        for tag, points in series.items():
            target = merged.setdefault(tag, {})
            for step, value in points:
                target[step] = value
    return {tag: sorted(points.items()) for tag, points in merged.items()}
