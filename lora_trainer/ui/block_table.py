"""The per-block table of the form: kohya's seven block settings (``down_lr_weight`` … ``conv_block_alphas``)
shown as one row per block (SD1/SD2: IN00–IN11, MID, OUT00–OUT11; SDXL: BASE, IN00–IN08, MID00–MID02,
OUT00–OUT08, OUT) and columns for the learning-rate weight, rank, alpha and the 3×3 rank and alpha.

An empty column leaves that setting unset; an empty learning-rate cell is 1 (unchanged); a rank or alpha
column is filled for every block or for none (kohya takes all of them). SDXL's BASE and OUT rows have no
learning-rate weight of their own (kohya keeps them at 1). Gradio-free.
"""
from __future__ import annotations

from typing import Any

from ..config.blocks import _curve, block_names, family_of_block_count, lr_weight_counts
from ..errors import ConfigError
from ..text.messages import sentence
from . import messages  # noqa: F401  (registers the table's sentence)

BLOCK_FIELDS = ("down_lr_weight", "mid_lr_weight", "up_lr_weight", "block_dims", "block_alphas", "conv_block_dims",
                "conv_block_alphas")
TABLE = "block_table"       # the form's name for the table (it stands for the seven fields)
HEADERS = ["Block", "LR weight", "Rank", "Alpha", "Conv rank", "Conv alpha"]
LAYOUTS = {"SD1 / SD2": "sd1", "SDXL": "sdxl"}
_COLUMNS = {"block_dims": 2, "block_alphas": 3, "conv_block_dims": 4, "conv_block_alphas": 5}


def _lr_rows(family: str) -> tuple[range, range, range]:
    down, mid, up = lr_weight_counts(family)
    first = 1 if family == "sdxl" else 0     # SDXL's BASE row has no weight
    return range(first, first + down), range(first + down, first + down + mid), \
        range(first + down + mid, first + down + mid + up)


def layout_of(values: dict[str, Any]) -> str:
    """sd1 or sdxl, from the lengths of the lists (sd1 when nothing says)."""
    def count(key: str) -> int:
        text = str(values.get(key) or "")
        return len(text.split(",")) if "," in text else 0
    for key in _COLUMNS:
        if family_of_block_count(count(key)):
            return family_of_block_count(count(key))
    sdxl_down, sdxl_mid, _ = lr_weight_counts("sdxl")
    if count("down_lr_weight") == sdxl_down or count("up_lr_weight") == sdxl_down or count("mid_lr_weight") == sdxl_mid:
        return "sdxl"
    return "sd1"


def _cells(text: str, count: int, name: str) -> list[str]:
    text = str(text or "").strip()
    if not text:
        return [""] * count
    if name in ("down_lr_weight", "up_lr_weight") and "," not in text:
        curve = _curve(text, count)
        if curve is not None:
            return [f"{v:.4g}" for v in curve]
    parts = [p.strip() for p in text.split(",")]
    return (parts + [""] * count)[:count]


def table_rows(values: dict[str, Any], family: str | None = None) -> list[list[str]]:
    """The rows the table shows for the seven fields' values."""
    family = family or layout_of(values)
    names = block_names(family)
    rows = [[name, "", "", "", "", ""] for name in names]
    for key, rows_of in zip(("down_lr_weight", "mid_lr_weight", "up_lr_weight"), _lr_rows(family)):
        for index, cell in zip(rows_of, _cells(values.get(key), len(rows_of), key)):
            rows[index][1] = cell
    for key, column in _COLUMNS.items():
        for row, cell in zip(rows, _cells(values.get(key), len(names), key)):
            row[column] = cell
    return rows


def _text(cell: Any) -> str:
    if cell is None:
        return ""
    if isinstance(cell, float):
        return "" if cell != cell else f"{cell:g}"
    return str(cell).strip()


def fields_from_rows(rows: Any) -> dict[str, str]:
    """The seven fields from the table's rows (a list of lists, or a pandas frame); ConfigError for a rank or
    alpha column filled for some blocks only."""
    if hasattr(rows, "values") and hasattr(rows, "columns"):   # pandas, as gradio may send it
        rows = rows.values.tolist()
    rows = [[_text(c) for c in row] + [""] * (6 - len(row)) for row in (rows or [])]
    family = family_of_block_count(len(rows))
    if family is None:
        return {key: "" for key in BLOCK_FIELDS}
    out: dict[str, str] = {}
    for key, rows_of in zip(("down_lr_weight", "mid_lr_weight", "up_lr_weight"), _lr_rows(family)):
        cells = [rows[i][1] for i in rows_of]
        out[key] = "" if not any(cells) else ",".join(c or "1" for c in cells)
    problems = []
    for key, column in _COLUMNS.items():
        cells = [row[column] for row in rows]
        filled = sum(1 for c in cells if c)
        if 0 < filled < len(cells):
            problems.append(sentence("ui.blocks.partly_filled", name=key, column=HEADERS[column], filled=filled,
                                     count=len(cells)))
        out[key] = ",".join(cells) if filled == len(cells) else ""
    if problems:
        raise ConfigError(problems)
    return out
