"""Regularization images: generated from a class prompt with the host's loaded model, or imported from a folder.

Generation is resumable: the pictures already in ``reg/<N>_<class>/`` are kept and counted, and only the
missing ones are made (each with its own seed, so a second run continues the same series). Every picture
gets the class word as its caption. The host's generator reaches this module as a plain callable.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..errors import DatasetError, TrainerError
from ..io.atomic import atomic_write
from ..text.messages import msg
from .importing import ImportPlan, plan_import
from .project import Project, Regularization, check_word
from .scan import picture_files

# (prompt, negative prompt, seed, width, height) → a PIL image
Generate = Callable[[str, str, int, int, int], object]
_NUMBERED = re.compile(r"^reg_(\d{5})$")
MAX_IMAGES = 2000


@dataclass
class RegResult:
    made: list[str] = field(default_factory=list)
    kept: int = 0                       # already there
    failed: list[tuple[int, str]] = field(default_factory=list)   # (number, why)
    stopped: bool = False


def reg_entry(project: Project, class_word: str, repeats: int = 1, prompt: str = "") -> Regularization:
    class_word = check_word(class_word, "class word")
    for reg in project.regularization:
        if reg.class_word.lower() == class_word.lower():
            reg.prompt = prompt or reg.prompt
            if repeats and reg.repeats != repeats:
                old = project.reg_concept_dir(reg)
                reg.repeats = int(repeats)
                if old.is_dir():
                    old.rename(project.reg_concept_dir(reg))
            return reg
    reg = Regularization(class_word, int(repeats or 1), prompt or class_word)
    project.regularization.append(reg)
    return reg


def generate_regularization(project: Project, class_word: str, count: int, generate: Generate, *,
                            prompt: str = "", negative_prompt: str = "", repeats: int = 1, seed: int = 1,
                            size: int | None = None,
                            progress: Callable[[int, int, str], None] | None = None,
                            should_stop: Callable[[], bool] = lambda: False) -> RegResult:
    """Make ``reg/<repeats>_<class>/`` hold ``count`` pictures of ``prompt`` (default: the class word)."""
    if not 1 <= int(count) <= MAX_IMAGES:
        raise DatasetError(msg("reg.count", count=count), msg("reg.count.advice", most=MAX_IMAGES))
    reg = reg_entry(project, class_word, repeats, prompt)
    project.save()
    folder = project.reg_concept_dir(reg)
    folder.mkdir(parents=True, exist_ok=True)
    existing, _ = picture_files(folder)
    numbers = {int(m[1]) for p in existing if (m := _NUMBERED.match(p.stem))}
    result = RegResult(kept=len(existing))
    side = int(size or project.preparation.resolution)
    wanted = [n for n in range(int(count) * 2) if n not in numbers][: max(0, int(count) - len(existing))]
    for done, number in enumerate(wanted):
        if should_stop():
            result.stopped = True
            break
        if progress is not None:
            progress(done, len(wanted), f"reg_{number:05d}")
        try:
            image = generate(reg.prompt, negative_prompt, seed + number, side, side)
            if image is None:          # the host was interrupted
                result.stopped = True
                break
            target = folder / f"reg_{number:05d}.png"
            with atomic_write(target) as tmp:
                image.save(tmp, "PNG")
            with atomic_write(target.with_suffix(".txt")) as tmp:
                tmp.write_text(reg.class_word, encoding="utf-8")
            result.made.append(target.name)
        except TrainerError as err:
            result.failed.append((number, err.message))
            if len(result.failed) >= 3 and not result.made:   # the host cannot generate: say it once
                break
        except OSError as err:
            raise DatasetError(msg("reg.cannot_write", folder=folder, why=str(err.strerror or err)),
                               msg("dataset.writable.advice")) from None
    if progress is not None:
        progress(len(wanted), len(wanted), "")
    return result


def plan_reg_import(project: Project, source: str) -> ImportPlan:
    return plan_import(project, source)


def import_regularization(project: Project, plan: ImportPlan, class_word: str, repeats: int = 1) -> list[str]:
    """Copy a folder's pictures (duplicates left out) into ``reg/<repeats>_<class>/``, captioned with the class."""
    import shutil

    reg = reg_entry(project, class_word, repeats)
    project.save()
    folder = project.reg_concept_dir(reg)
    folder.mkdir(parents=True, exist_ok=True)
    copied = []
    for picture in plan.to_import:
        src = Path(picture.path)
        target = folder / src.name
        if target.exists():
            continue
        with atomic_write(target) as tmp:
            shutil.copyfile(src, tmp)
        caption = target.with_suffix(".txt")
        if not caption.exists():
            with atomic_write(caption) as tmp:
                tmp.write_text(reg.class_word, encoding="utf-8")
        copied.append(target.name)
    return copied
