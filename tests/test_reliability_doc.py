"""docs/RELIABILITY.md stays true: every test it names exists (no torch; the file is read, not imported)."""
from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_test_the_reliability_page_names_exists():
    text = (ROOT / "docs" / "RELIABILITY.md").read_text(encoding="utf-8")
    named = re.findall(r"`(tests/[\w/]+\.py)::(\w+)`", text)
    assert len(named) >= 30
    defined: dict[str, set] = {}
    for path, name in named:
        if path not in defined:
            tree = ast.parse((ROOT / path).read_text(encoding="utf-8"))
            defined[path] = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
        assert name in defined[path], f"docs/RELIABILITY.md names {path}::{name}, which does not exist"
    rows = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| case")]
    assert all(re.search(r"`tests/[\w/]+\.py::\w+`", row) for row in rows), "every case names its test"
