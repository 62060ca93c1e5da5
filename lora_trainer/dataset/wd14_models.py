"""WD14 model folders: found on disk, or downloaded on a user's request into the WebUI's models folder.

A downloaded model lives in ``<models>/wd14/<repository name>/`` (``model.onnx``, ``selected_tags.csv`` and
``source.json`` naming where it came from). A download goes to a hidden temporary folder beside it first and
is moved into place only when both files are complete, so a stopped download never leaves a half model
that looks whole. huggingface_hub is used when it is installed (the WebUIs ship it); nothing downloads
unless a caller asks for it.
"""
from __future__ import annotations

import contextlib
import importlib
import json
import os
import re
import shutil
from pathlib import Path

from ..errors import DatasetError, MissingDependency
from ..text.messages import msg
from . import messages  # noqa: F401  (registers the sentences)
from . import messages_tagging  # noqa: F401
from ..io.atomic import atomic_write, temp_path_for
from .wd14 import MODEL_FILE, TAGS_FILE, model_folder_problem, read_labels

SUBFOLDER = "wd14"
SOURCE_FILE = "source.json"
# SmilingWolf's taggers, the v3 ones first (newer tags); swinv2 v3 is a good balance of speed and quality.
KNOWN_REPOS = ("SmilingWolf/wd-swinv2-tagger-v3", "SmilingWolf/wd-vit-tagger-v3", "SmilingWolf/wd-convnext-tagger-v3",
               "SmilingWolf/wd-vit-large-tagger-v3", "SmilingWolf/wd-eva02-large-tagger-v3",
               "SmilingWolf/wd-v1-4-moat-tagger-v2", "SmilingWolf/wd-v1-4-swinv2-tagger-v2",
               "SmilingWolf/wd-v1-4-convnextv2-tagger-v2", "SmilingWolf/wd-v1-4-convnext-tagger-v2",
               "SmilingWolf/wd-v1-4-vit-tagger-v2")
DEFAULT_REPO = KNOWN_REPOS[0]
HUB = "huggingface_hub"      # the package that downloads from Hugging Face
_REPO_RE = re.compile(r"^[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95}$")


def wd14_dir(models_dir) -> Path:
    """Where downloaded WD14 models go: ``<models>/wd14``."""
    return Path(models_dir) / SUBFOLDER


def find_models(*folders) -> list[Path]:
    """Every WD14 model folder in or below the folders given (the folder itself, its sub-folders and
    those of its ``wd14`` folder), sorted by name, each once."""
    found: dict[str, Path] = {}
    for folder in folders:
        if not folder:
            continue
        folder = Path(folder)
        candidates = [folder]
        for parent in (folder, folder / SUBFOLDER):
            with contextlib.suppress(OSError):
                candidates += sorted(p for p in parent.iterdir() if p.is_dir() and not p.name.startswith("."))
        for candidate in candidates:
            if not model_folder_problem(candidate):
                found.setdefault(os.path.normcase(str(candidate.resolve())), candidate)
    return sorted(found.values(), key=lambda p: (p.name.lower(), str(p)))


def model_source(folder) -> str:
    """The repository a downloaded model came from ("" when unknown)."""
    try:
        return str(json.loads((Path(folder) / SOURCE_FILE).read_text(encoding="utf-8")).get("repo", ""))
    except (OSError, ValueError, AttributeError):
        return ""


def check_repo_id(repo_id: str) -> str:
    repo_id = str(repo_id or "").strip().strip("/")
    if not _REPO_RE.match(repo_id) or ".." in repo_id:
        raise DatasetError(msg("wd14.bad_repo", repo=repo_id), msg("wd14.bad_repo.advice", example=DEFAULT_REPO))
    return repo_id


def _import_hub():
    try:
        return importlib.import_module(HUB)
    except ImportError:
        raise MissingDependency(HUB, msg("dep.wd14_download")) from None


def download_model(repo_id: str, models_dir, *, revision: str | None = None, force: bool = False) -> Path:
    """Download ``model.onnx`` and ``selected_tags.csv`` of ``repo_id`` into ``<models_dir>/wd14/<name>/``
    and return that folder. A complete folder already there is returned as it is (``force`` downloads again).
    Only on a user's request: this goes to the network."""
    repo_id = check_repo_id(repo_id)
    target = wd14_dir(models_dir) / repo_id.split("/", 1)[1]
    if not force and not model_folder_problem(target):
        return target
    hub = _import_hub()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DatasetError(msg("wd14.cannot_create", folder=target.parent, why=str(err.strerror or err)),
                           msg("wd14.cannot_create.advice")) from None
    staging = temp_path_for(target)
    try:
        staging.mkdir()
        cache = staging / ".cache"
        for name in (MODEL_FILE, TAGS_FILE):
            try:
                got = hub.hf_hub_download(repo_id=repo_id, filename=name, revision=revision, cache_dir=str(cache))
            except Exception as err:  # network, unknown repository or file, gated, offline mode …
                raise _download_error(repo_id, name, target, err) from None
            os.replace(os.path.realpath(got), staging / name)     # the blob, not the cache's link to it
        shutil.rmtree(cache, ignore_errors=True)
        read_labels(staging / TAGS_FILE)                           # a readable tag list, or an error now
        with atomic_write(staging / SOURCE_FILE) as tmp:
            tmp.write_text(json.dumps({"repo": repo_id, "revision": revision or "main"}), encoding="utf-8")
        _move_into_place(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _move_into_place(staging: Path, target: Path) -> None:
    """The finished folder becomes ``target``; into an existing folder, file by file, the tag list last
    (a folder is a model only when both files are there)."""
    try:
        if not target.exists():
            os.replace(staging, target)
            return
        for name in (SOURCE_FILE, MODEL_FILE, TAGS_FILE):
            os.replace(staging / name, target / name)
    except OSError as err:
        raise DatasetError(msg("wd14.cannot_place", folder=target, why=str(err.strerror or err)),
                           msg("wd14.cannot_place.advice")) from None


def _download_error(repo_id: str, name: str, target: Path, err: Exception) -> DatasetError:
    kind = type(err).__name__
    text = str(err).strip().splitlines()[0] if str(err).strip() else kind
    if "RepositoryNotFound" in kind or "GatedRepo" in kind:
        why = msg("wd14.dl.not_found", repo=repo_id)
    elif "EntryNotFound" in kind:
        why = msg("wd14.dl.no_file", repo=repo_id, name=name)
    elif "Offline" in kind or "LocalEntryNotFound" in kind or os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0"):
        why = msg("wd14.dl.offline")
    else:
        why = f"{kind}: {text}"
    return DatasetError(msg("wd14.dl.failed", name=name, repo=repo_id, why=why),
                        msg("wd14.dl.failed.advice", model_file=MODEL_FILE, tags_file=TAGS_FILE, repo=repo_id,
                            folder=target))
