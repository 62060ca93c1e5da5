"""docs/ARCHITECTURE.md is the map the code must follow: every module is in it, every import stays within the
layer table, and the heavy libraries, gradio and the WebUI are imported only where its rules allow."""
from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "lora_trainer"
DOC = (ROOT / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
HEAVY = ("torch", "diffusers", "transformers", "peft", "accelerate", "safetensors", "bitsandbytes")
WEBUI = ("modules", "modules_forge", "backend")


def modules() -> dict[str, Path]:
    """Dotted name → file, for every module of the package."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def imports_of(name: str, path: Path) -> set[str]:
    """Every module a file imports, at its top or inside functions, as absolute dotted names."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(package[: len(package) - node.level + 1] + [node.module or ""]).strip(".") \
                if node.level else node.module or ""
            found.add(base)
            if base.startswith("lora_trainer"):   # ``from . import actions``: the submodules themselves
                found |= {f"{base}.{alias.name}" for alias in node.names}
    return found


def layer_of(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else "(package)"


def layer_table() -> dict[str, set[str]]:
    section = DOC[DOC.index("## Layers"):DOC.index("## Import rules")]
    table = {}
    for row in re.findall(r"^\| (\S+) \| ([^|]+) \|$", section, re.M):
        if row[0] in ("package", "---"):
            continue
        table[row[0]] = {p.strip() for p in row[1].split(",") if p.strip() not in ("", "—")}
    return table


def rule_files(title: str, inside_functions: bool = False) -> set[str]:
    """The module paths named in the import rule that starts with ``title`` (those that import at start-up,
    or with ``inside_functions`` those the rule names after "inside functions by")."""
    rules = DOC[DOC.index("## Import rules"):]
    start = rules.index(title)
    text = rules[start:rules.find("\n- ", start)]
    at_import, _, in_functions = text.partition("inside functions by")
    return set(re.findall(r"`([\w/]+\.py)`", in_functions if inside_functions else at_import))


def to_module(rel: str) -> str:
    return "lora_trainer." + rel[:-3].replace("/", ".")


def test_every_module_is_on_the_map():
    block = DOC[DOC.index("```\nlora_trainer/") + 4:]
    block = block[:block.index("```")]
    listed, stack = set(), []   # stack of (indent, folder)
    for line in block.splitlines():
        indent = len(line) - len(line.lstrip())
        tokens = line.strip().split("  ")[0]
        if not tokens:
            continue
        while stack and stack[-1][0] >= indent:
            stack.pop()
        folder = "/".join(f for _, f in stack)
        words = re.findall(r"[\w.]+/|[\w.]+\.py", tokens)
        if len(words) == 1 and words[0].endswith("/"):
            stack.append((indent, words[0].rstrip("/")))
            continue
        listed |= {f"{folder}/{w}".lstrip("/") for w in words if w.endswith(".py")}
    files = {str(p.relative_to(ROOT)) for p in modules().values() if p.name != "__init__.py"}
    assert sorted(files - listed) == [], "add these modules to docs/ARCHITECTURE.md's map"
    assert sorted(f for f in listed - files if f.startswith("lora_trainer/")) == [], "the map names modules that do not exist"


def test_packages_import_only_the_layers_below_them():
    table = layer_table()
    mods = modules()
    assert set(table) == {layer_of(m) for m in mods if m != "lora_trainer"} | set(), \
        "every package needs a row in docs/ARCHITECTURE.md's layer table"
    wrong = []
    for name, path in mods.items():
        layer = layer_of(name)
        for target in imports_of(name, path):
            if target.split(".")[0] == "benchmarks":
                wrong.append(f"{name} imports {target} (benchmarks are never imported by the package)")
            if not target.startswith("lora_trainer.") or target not in mods and target.rsplit(".", 1)[0] not in mods:
                continue
            other = layer_of(target)
            if other != layer and other not in table.get(layer, set()):
                wrong.append(f"{name} imports {target}")
    assert wrong == []


def test_the_webui_and_gradio_are_imported_only_where_the_map_allows():
    gradio_ok = {to_module(p) for p in rule_files("**gradio**") | rule_files("**gradio**", inside_functions=True)}
    wrong = []
    for name, path in modules().items():
        for target in imports_of(name, path):
            top = target.split(".")[0]
            if top in WEBUI and layer_of(name) != "hosts" or top == "gradio" and name not in gradio_ok:
                wrong.append(f"{name} imports {target}")
    assert wrong == []


def test_heavy_libraries_and_gradio_only_where_the_map_allows():
    """Every module is imported in a fresh Python in which the heavy libraries, gradio and the WebUI cannot be
    imported; only the modules the rules name may fail, and each of them must need what it is allowed."""
    heavy_ok = {to_module(p) for p in rule_files("**Heavy libraries**")}
    gradio_ok = {to_module(p) for p in rule_files("**gradio**")}
    mods = modules()
    assert sorted((heavy_ok | gradio_ok) - set(mods)) == [], "the rules name modules that do not exist"
    script = f"""
import importlib, importlib.abc, json, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        top = name.split(".")[0]
        if top in {list(HEAVY + WEBUI) + ["gradio"]!r}:
            raise ImportError("blocked:" + top)
sys.meta_path.insert(0, Block())
failed = {{}}
for name in {sorted(m for m in mods if not m.endswith("__main__"))!r}:
    try:
        importlib.import_module(name)
    except ImportError as err:
        failed[name] = str(err).split("blocked:")[-1].split("'")[0]
print(json.dumps(failed))
"""
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    failed = json.loads(out.stdout.strip().splitlines()[-1])
    allowed = {name: HEAVY if name in heavy_ok else ("gradio",) if name in gradio_ok else () for name in failed}
    wrong = {name: lib for name, lib in failed.items() if lib not in allowed[name]}
    assert wrong == {}, "these modules import what the rules do not allow them to (import it inside a function)"
    stale = sorted((heavy_ok | gradio_ok) - set(failed))
    assert stale == [], "these modules import nothing heavy any more: take them out of the rule"
