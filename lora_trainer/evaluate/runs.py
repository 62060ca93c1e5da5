"""Find a training run's saved files, and turn X/Y/Z epoch values (``1-10``, ``4,6,8``, ``final``,
file names) into those files.

A run is a name with saved files in one folder: ``<name>-000001.safetensors`` … (epochs),
``<name>.safetensors`` (final) and ``<name>-interrupted.safetensors``. It is found from our
own log (``metrics.jsonl`` records every saved file) or, for kohya runs, from the file names
alone (a name counts as a run once it has an epoch file). Nothing here opens a tensor.
"""
from __future__ import annotations

import csv
import io
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import TrainerError
from ..io.safetensors_header import read_metadata
from ..text.messages import ENGLISH, Joined, sentence
from .messages import msg

LORA_SUFFIX = ".safetensors"
EPOCH_RE = re.compile(r"^(?P<name>.+)-(?P<epoch>\d{6})$")
INTERRUPTED_SUFFIX = "-interrupted"
METRICS_FILE = "metrics.jsonl"
_RANGE_RE = re.compile(r"^\s*(\d+)\s*-\s*(\d+)\s*(?:\(\s*\+?\s*(\d+)\s*\))?\s*$")
_EPOCH_WORD_RE = re.compile(r"^(?:epoch\s*|e)?0*(\d+)$", re.IGNORECASE)


def kind_word(kind: str) -> str:
    """"final", "interrupted" as a keyed word; another kind as it is."""
    return sentence(f"eval.kind.{kind}") if f"eval.kind.{kind}" in ENGLISH else kind


@dataclass
class RunFile:
    """One saved LoRA file of a run."""

    path: str
    stem: str                 # the name the host knows it by: <lora:STEM:w>
    kind: str                 # "epoch" | "final" | "interrupted"
    epoch: int | None         # from the name; for final/interrupted from the log or metadata
    step: int | None = None   # global step when it was saved (log or metadata), if known
    _metadata: dict | None = field(default=None, repr=False, compare=False)

    @property
    def label(self) -> str:
        """What a grid legend shows: "epoch 5", "final", "interrupted" (a ``str`` that ``localized`` translates)."""
        if self.kind == "epoch":
            return sentence("eval.file.epoch", epoch=self.epoch)
        return kind_word(self.kind)

    def metadata(self) -> dict[str, str]:
        """The file's safetensors metadata (read once, header only)."""
        if self._metadata is None:
            self._metadata = read_metadata(self.path)
        return self._metadata

    def fill_from_metadata(self) -> None:
        meta = self.metadata()
        if self.step is None and str(meta.get("ss_steps", "")).isdigit():
            self.step = int(meta["ss_steps"])
        if self.epoch is None and str(meta.get("ss_epoch", "")).isdigit():
            self.epoch = int(meta["ss_epoch"])


@dataclass
class RunInfo:
    """A run: its name, the folder holding its files, and where its log is (if anywhere)."""

    name: str
    folder: str
    files: list[RunFile]      # epochs by number, then interrupted, then final
    log_dir: str | None = None
    source: str = "kohya"     # "ours" (our metrics.jsonl) or "kohya" (file names only)

    @property
    def epoch_files(self) -> list[RunFile]:
        return [f for f in self.files if f.kind == "epoch"]

    @property
    def final(self) -> RunFile | None:
        return next((f for f in self.files if f.kind == "final"), None)

    @property
    def latest(self) -> RunFile | None:
        """The final file, else the interrupted one, else the highest epoch."""
        return self.final or next((f for f in self.files if f.kind == "interrupted"), None) or \
            (self.epoch_files[-1] if self.epoch_files else None)

    @property
    def stems(self) -> list[str]:
        return [f.stem for f in self.files]

    def file_by_stem(self, stem: str) -> RunFile | None:
        return next((f for f in self.files if f.stem == stem), None)

    def mtime(self) -> float:
        times = []
        for f in self.files:
            try:
                times.append(os.path.getmtime(f.path))
            except OSError:
                pass
        return max(times, default=0.0)

    def describe_saved(self) -> str:
        """"epochs 2, 4, 6, final" — for messages (a ``str`` that ``localized`` puts into another language)."""
        epochs = ", ".join(str(f.epoch) for f in self.epoch_files)
        parts = ([msg("eval.saved.epochs" if len(self.epoch_files) > 1 else "eval.saved.epoch", epochs=epochs)]
                 if epochs else []) + [kind_word(f.kind) for f in self.files if f.kind != "epoch"]
        return Joined(parts, msg("eval.comma")) if parts else sentence("eval.saved.none")


def classify_stem(stem: str) -> tuple[str, str, int | None]:
    """(run name, kind, epoch) a file stem implies on its own: ``a-000003`` → ("a", "epoch", 3)."""
    match = EPOCH_RE.match(stem)
    if match:
        return match["name"], "epoch", int(match["epoch"])
    if stem.endswith(INTERRUPTED_SUFFIX) and len(stem) > len(INTERRUPTED_SUFFIX):
        return stem[: -len(INTERRUPTED_SUFFIX)], "interrupted", None
    return stem, "final", None


def _sort_key(f: RunFile) -> tuple:
    return ({"epoch": 0, "interrupted": 1, "final": 2}[f.kind], f.epoch or 0, f.stem)


def _lora_files(folder: Path, recursive: bool) -> list[Path]:
    """``.safetensors`` files below ``folder``; dot-folders skipped (as the hosts do)."""
    found: list[Path] = []
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError as err:
        raise TrainerError(msg("eval.cannot_list", folder=folder, reason=err.strerror or err),
                           msg("eval.cannot_list.advice")) from None
    for entry in entries:
        if entry.name.startswith("."):
            continue
        try:
            if entry.is_dir():
                if recursive:
                    found += _lora_files(Path(entry.path), True)
            elif entry.name.lower().endswith(LORA_SUFFIX):
                found.append(Path(entry.path))
        except OSError:
            continue
    return found


def _saved_events(log_dir: Path) -> list[dict]:
    """The ``file_saved`` records of ``metrics.jsonl``; only those lines are parsed (a long run logs
    tens of thousands of step lines, and the X/Y/Z axes list runs at every dropdown refresh)."""
    out = []
    try:
        with open(log_dir / METRICS_FILE, "rb") as fh:
            for raw in fh:
                if b'"file_saved"' not in raw:
                    continue
                try:
                    rec = json.loads(raw.decode("utf-8"))
                except (UnicodeDecodeError, ValueError):
                    continue  # half a line from a killed process
                if isinstance(rec, dict):
                    out.append(rec)
    except OSError:
        return []
    return out


def _read_log_files(log_dir: Path) -> tuple[str | None, list[RunFile]]:
    """(output name, files) from a run log's ``file_saved`` events; files that are gone are left out."""
    files: dict[str, RunFile] = {}
    name = None
    for rec in _saved_events(log_dir):
        if rec.get("type") != "event" or rec.get("kind") != "file_saved" or not rec.get("path"):
            continue
        path = str(rec["path"])
        if not os.path.isfile(path):
            continue
        stem = Path(path).name[: -len(LORA_SUFFIX)] if path.lower().endswith(LORA_SUFFIX) else Path(path).stem
        run_name, kind, epoch = classify_stem(stem)
        kind = str(rec.get("file_kind") or kind)
        if kind == "final":
            run_name = stem
        name = name or run_name
        epoch = int(rec["epoch"]) if isinstance(rec.get("epoch"), int) and kind != "interrupted" else epoch
        files[os.path.normcase(os.path.abspath(path))] = RunFile(
            path=os.path.abspath(path), stem=stem, kind=kind, epoch=epoch,
            step=int(rec["step"]) if isinstance(rec.get("step"), int) else None)
    return name, sorted(files.values(), key=_sort_key)


def _log_dirs_under(root: Path) -> list[Path]:
    """Run log folders (holding ``metrics.jsonl``) at ``root`` or one/two levels below it."""
    out = []
    for pattern in (METRICS_FILE, f"*/{METRICS_FILE}", f"*/*/{METRICS_FILE}"):
        out += [p.parent for p in root.glob(pattern)]
    return sorted(set(out))


def find_runs(lora_dir: str | os.PathLike, *, log_dirs: list[str | os.PathLike] = (),
              recursive: bool = True) -> list[RunInfo]:
    """Every run whose files lie in ``lora_dir`` (sub-folders too), newest first.

    Our logs are looked for in ``lora_dir/logs`` and in ``log_dirs`` (a run log folder or a
    folder of them); a name without a log counts as a run once it has an epoch file."""
    root = Path(lora_dir)
    if not root.is_dir():
        raise TrainerError(msg("eval.no_lora_folder", folder=root), msg("eval.no_lora_folder.advice"))
    groups: dict[tuple[str, str], list[RunFile]] = {}
    for path in _lora_files(root, recursive):
        stem = path.name[: -len(LORA_SUFFIX)]
        name, kind, epoch = classify_stem(stem)
        groups.setdefault((os.path.normcase(str(path.parent)), name), []).append(
            RunFile(str(path), stem, kind, epoch))
    runs: dict[tuple[str, str], RunInfo] = {}
    for (folder_key, name), files in groups.items():
        if any(f.kind in ("epoch", "interrupted") for f in files):
            files.sort(key=_sort_key)
            runs[(folder_key, name)] = RunInfo(name, os.path.dirname(files[0].path), files)
    candidates = _log_dirs_under(root / "logs") if (root / "logs").is_dir() else []
    for extra in log_dirs:
        candidates += _log_dirs_under(Path(extra))
    for log_dir in sorted(set(candidates), key=lambda p: p.stat().st_mtime if p.exists() else 0):
        name, files = _read_log_files(log_dir)
        if not files:
            continue
        key = (os.path.normcase(os.path.dirname(files[0].path)), name)
        run = runs.get(key)
        if run is None:
            runs[key] = RunInfo(name, os.path.dirname(files[0].path), files, str(log_dir), "ours")
            continue
        by_stem = {f.stem: f for f in run.files}
        for f in files:  # the log knows steps and the final file's epoch
            by_stem[f.stem] = f
        run.files = sorted(by_stem.values(), key=_sort_key)
        run.log_dir, run.source = str(log_dir), "ours"  # the newest log of that name wins
    return sorted(runs.values(), key=lambda r: (-r.mtime(), r.name))


def open_run(path: str | os.PathLike, name: str | None = None) -> RunInfo:
    """The run at ``path``: a run log folder, one of the run's ``.safetensors`` files, or a
    folder of LoRA files (then ``name`` picks the run when there are several)."""
    p = Path(path)
    if p.is_dir() and (p / METRICS_FILE).is_file():
        run_name, files = _read_log_files(p)
        if not files:
            raise TrainerError(msg("eval.log_without_files", folder=p), msg("eval.log_without_files.advice"))
        return RunInfo(run_name or files[0].stem, os.path.dirname(files[0].path), files, str(p), "ours")
    if p.is_file():
        if not p.name.lower().endswith(LORA_SUFFIX):
            raise TrainerError(msg("eval.not_safetensors", path=p), msg("eval.not_safetensors.advice"))
        run_name, _, _ = classify_stem(p.name[: -len(LORA_SUFFIX)])
        runs = [r for r in find_runs(p.parent, recursive=False) if r.name == run_name]
        if runs:
            return runs[0]
        stem = p.name[: -len(LORA_SUFFIX)]
        return RunInfo(stem, str(p.parent), [RunFile(str(p), stem, "final", None)])
    runs = find_runs(p)
    if name is not None:
        runs = [r for r in runs if r.name == name]
    if len(runs) == 1:
        return runs[0]
    if not runs:
        raise TrainerError(msg("eval.no_run_named", name=repr(name), folder=p) if name
                           else msg("eval.no_run", folder=p), msg("eval.no_run.advice"))
    names = ", ".join(sorted({r.name for r in runs}))
    raise TrainerError(msg("eval.several_runs", folder=p, names=names), msg("eval.several_runs.advice"))


# --- X/Y/Z epoch values ----------------------------------------------------------------------------

def split_epoch_values(text: str) -> list[str]:
    """``"1-3, final"`` → ``["1", "2", "3", "final"]``; ``"2-10 (+2)"`` steps by 2; names stay as written.

    Comma separated (quotes allowed, as the X/Y/Z script reads them)."""
    out: list[str] = []
    for raw in next(csv.reader(io.StringIO(text or ""), skipinitialspace=True), []):
        token = raw.strip()
        if not token:
            continue
        match = _RANGE_RE.match(token)
        if match:
            start, end, step = int(match[1]), int(match[2]), int(match[3] or 1)
            if step <= 0:
                raise TrainerError(msg("eval.range_step", range=repr(token), step=step), msg("eval.range_step.advice"))
            if end < start:
                raise TrainerError(msg("eval.range_backwards", range=repr(token)),
                                   msg("eval.range_backwards.advice", start=start, end=end))
            out += [str(e) for e in range(start, end + 1, step)]
        else:
            out.append(token)
    return out


def is_epoch_number(token: str) -> bool:
    return bool(_EPOCH_WORD_RE.match(token.strip()))


def resolve_epoch_value(run: RunInfo, token: str) -> RunFile:
    """The file of ``run`` that ``token`` names: ``5``/``000005``/``epoch 5``, ``final``,
    ``interrupted``, ``last``, or a file name (with or without ``.safetensors``)."""
    value = token.strip()
    lowered = value.lower()
    if lowered.endswith(LORA_SUFFIX):
        value = value[: -len(LORA_SUFFIX)]
    found = run.file_by_stem(value)
    if found:
        return found
    if lowered in ("final", "interrupted"):
        found = next((f for f in run.files if f.kind == lowered), None)
    elif lowered == "last":
        found = run.latest
    else:
        match = _EPOCH_WORD_RE.match(value)
        if match:
            number = int(match[1])
            found = next((f for f in run.epoch_files if f.epoch == number), None)
    if found:
        return found
    raise TrainerError(msg("eval.no_such_file", token=token, run=run.name, folder=run.folder,
                           saved=run.describe_saved()), msg("eval.no_such_file.advice"))


def resolve_epoch_values(run: RunInfo, values: list[str] | str) -> list[RunFile]:
    """Each value (or the text ``"1-10, final"``) as a file of ``run``; the first unknown one raises."""
    tokens = split_epoch_values(values) if isinstance(values, str) else list(values)
    return [resolve_epoch_value(run, t) for t in tokens]
