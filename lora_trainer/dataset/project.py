"""A dataset project: the user's pictures turned into a kohya training folder, one concept per trigger word.

Layout (what the trainer reads is ``img/`` and ``reg/``; the rest is the workbench's own)::

    <project>/project.json             concepts, the preparation settings, per-image focal points
    <project>/originals/<trigger>/     copies of the imported pictures, never changed afterwards
    <project>/img/<N>_<trigger>/       the training images (cropped and resized, or as imported) + captions
    <project>/reg/<N>_<class>/         regularization images + captions
    <project>/.workbench/              thumbnails, hashes, the caption edit history (safe to delete)

The user's own source folder is only read. ``project.json`` is written atomically.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import DatasetError
from ..io.atomic import atomic_write
from ..text.messages import Message, msg
from .messages import joined

PROJECT_FILE = "project.json"
WORK_DIR = ".workbench"
GOALS = ("character", "style", "concept")
# images × repeats per epoch the tutorials aim at (a character of 20–50 images trains 10 epochs of ~300)
SAMPLES_PER_EPOCH = {"character": 300, "style": 400, "concept": 200}
_BAD_NAME = re.compile(r'[\\/:*?"<>|\x00-\x1f]')
WORDS = {"trigger word": "word.trigger", "class word": "word.class"}


def suggest_repeats(images: int, goal: str = "character") -> int:
    """Repeats so that one epoch is about the samples the tutorials give for the goal (1–100)."""
    if images <= 0:
        return 10
    return max(1, min(100, round(SAMPLES_PER_EPOCH.get(goal, 300) / images)))


def check_word(word: str, what: str | Message) -> str:
    """A trigger or class word as a folder name can hold it; ``DatasetError`` naming the problem. ``what``:
    "trigger word" or "class word" (said in the user's language), or a ``Message``."""
    word = " ".join(str(word or "").split())
    what = msg(WORDS[what]) if isinstance(what, str) and what in WORDS else what
    if not word:
        raise DatasetError(msg("project.empty_word", what=what), msg("project.empty_word.advice", what=what))
    if _BAD_NAME.search(word) or word in (".", ".."):
        raise DatasetError(msg("project.bad_char", what=what, word=word), msg("project.bad_char.advice"))
    return word


@dataclass
class Concept:
    trigger: str                  # the word a prompt uses; also the folder's name
    repeats: int = 10
    class_word: str = ""          # "woman", "dog", "style": what the trigger is a kind of
    goal: str = "character"

    @property
    def folder_name(self) -> str:
        return f"{self.repeats}_{self.trigger}"


@dataclass
class Regularization:
    class_word: str
    repeats: int = 1
    prompt: str = ""              # the class prompt images are generated from


@dataclass
class Preparation:
    """How ``img/`` is made from ``originals/``."""
    resolution: int = 512                 # training size (square side, multiple of 64)
    buckets: bool = True                  # keep aspect ratios (aspect-ratio buckets) or crop to the square
    background: str = "#ffffff"           # transparent pixels are put on this colour
    focal_points: dict = field(default_factory=dict)   # "<trigger>/<file name>" → [x, y] in 0…1


@dataclass
class Project:
    root: Path
    concepts: list[Concept] = field(default_factory=list)
    regularization: list[Regularization] = field(default_factory=list)
    preparation: Preparation = field(default_factory=Preparation)

    # --- places ------------------------------------------------------------------------------------
    @property
    def img_dir(self) -> Path:
        return self.root / "img"

    @property
    def reg_dir(self) -> Path:
        return self.root / "reg"

    @property
    def work_dir(self) -> Path:
        return self.root / WORK_DIR

    def concept(self, trigger: str) -> Concept:
        for concept in self.concepts:
            if concept.trigger == trigger:
                return concept
        raise DatasetError(msg("project.no_concept", trigger=trigger),
                           msg("dataset.choose_one", names=joined([c.trigger for c in self.concepts])
                               or msg("project.no_concept.none")))

    def originals_dir(self, concept: Concept) -> Path:
        return self.root / "originals" / concept.trigger

    def concept_dir(self, concept: Concept) -> Path:
        return self.img_dir / concept.folder_name

    def reg_concept_dir(self, reg: Regularization) -> Path:
        return self.reg_dir / f"{reg.repeats}_{reg.class_word}"

    # --- concepts ----------------------------------------------------------------------------------
    def add_concept(self, trigger: str, repeats: int, class_word: str = "", goal: str = "character") -> Concept:
        trigger = check_word(trigger, "trigger word")
        if class_word:
            class_word = check_word(class_word, "class word")
        if goal not in GOALS:
            raise DatasetError(msg("project.bad_goal", goal=goal), msg("project.bad_goal.advice"))
        if not 1 <= int(repeats) <= 1000:
            raise DatasetError(msg("project.bad_repeats", repeats=repeats), msg("project.bad_repeats.advice"))
        for concept in self.concepts:
            if concept.trigger.lower() == trigger.lower():
                return concept
        concept = Concept(trigger, int(repeats), class_word, goal)
        self.concepts.append(concept)
        self.concept_dir(concept).mkdir(parents=True, exist_ok=True)
        self.originals_dir(concept).mkdir(parents=True, exist_ok=True)
        return concept

    def set_repeats(self, trigger: str, repeats: int) -> None:
        """A new repeat count renames the concept's folder (kohya reads repeats from the name)."""
        concept = self.concept(trigger)
        old = self.concept_dir(concept)
        concept.repeats = int(repeats)
        if old.is_dir() and old != self.concept_dir(concept):
            os.replace(old, self.concept_dir(concept))

    # --- the file ----------------------------------------------------------------------------------
    def save(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        data = {"version": 1, "concepts": [asdict(c) for c in self.concepts],
                "regularization": [asdict(r) for r in self.regularization],
                "preparation": asdict(self.preparation)}
        with atomic_write(self.root / PROJECT_FILE) as tmp:
            tmp.write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")

    @classmethod
    def create(cls, root: str | os.PathLike) -> "Project":
        root = Path(root)
        if (root / PROJECT_FILE).is_file():
            return cls.open(root)
        if root.exists() and not root.is_dir():
            raise DatasetError(msg("project.is_file", root=root), msg("project.is_file.advice"))
        project = cls(root)
        project.save()
        return project

    @classmethod
    def open(cls, root: str | os.PathLike) -> "Project":
        root = Path(root)
        path = root / PROJECT_FILE
        if not path.is_file():
            raise DatasetError(msg("project.missing", root=root, file=PROJECT_FILE), msg("project.missing.advice"))
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(root, [Concept(**c) for c in data.get("concepts", [])],
                       [Regularization(**r) for r in data.get("regularization", [])],
                       Preparation(**data.get("preparation", {})))
        except (ValueError, TypeError) as err:
            raise DatasetError(msg("project.unreadable", path=path, error=str(err)),
                               msg("project.unreadable.advice")) from None

    def training_settings(self) -> dict:
        """What the Train tab needs: the folders, the trigger word (first concept), the size and buckets."""
        from .plan import default_bucket_bounds   # plan imports this module

        first = self.concepts[0] if self.concepts else None
        size = int(self.preparation.resolution)
        low, high = default_bucket_bounds(size)
        return {"train_data_dir": str(self.img_dir),
                "reg_data_dir": str(self.reg_dir) if any(self.reg_dir.glob("*_*")) else "",
                "resolution": str(size), "enable_bucket": self.preparation.buckets,
                # the buckets the pictures were prepared for (half and twice the size, as the presets have them)
                "min_bucket_reso": low, "max_bucket_reso": high,
                "trigger": first.trigger if first else "", "goal": first.goal if first else "character"}
