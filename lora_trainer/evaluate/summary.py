"""What a run was trained with, read back from a saved file's ``ss_*`` metadata.

Works for our files and kohya's (the same keys); values a file lacks stay ``None``.
Also guesses the trigger word a prompt needs, from the tag counts kohya stores.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..config.metadata import SD_VERSION_LABEL, read_int, read_json, read_training_metadata
from ..text.messages import Joined, msg, sentence
from . import messages  # noqa: F401  (registers the sentences)

_CONCEPT_RE = re.compile(r"^(\d+)_(.+)$", re.DOTALL)


@dataclass
class Concept:
    folder: str            # "10_dreamgirl"
    name: str              # "dreamgirl"
    repeats: int | None
    images: int | None     # None when the metadata does not say
    tags: dict[str, int] = field(default_factory=dict)


@dataclass
class TrainingSummary:
    output_name: str | None = None
    base_model: str | None = None
    family: str | None = None          # sd1 | sd2 | sdxl
    network_dim: int | None = None
    network_alpha: float | None = None
    learning_rate: float | None = None
    unet_lr: float | None = None
    text_encoder_lr: float | None = None
    optimizer: str | None = None
    lr_scheduler: str | None = None
    resolution: tuple[int, int] | None = None
    batch_size: int | None = None
    gradient_accumulation_steps: int | None = None
    epochs: int | None = None           # planned epochs
    epoch: int | None = None            # epoch of the file read
    steps: int | None = None            # steps done when the file was saved
    num_train_images: int | None = None
    num_reg_images: int | None = None
    mixed_precision: str | None = None
    min_snr_gamma: float | None = None
    v_parameterization: bool | None = None
    clip_skip: int | None = None
    train_text_encoder: bool | None = None
    concepts: list[Concept] = field(default_factory=list)
    started_at: float | None = None
    comment: str | None = None

    @property
    def sd_version(self) -> str:
        return SD_VERSION_LABEL.get(self.family or "", "Unknown")

    @property
    def repeats(self) -> int | None:
        """The repeats of the training concepts when they agree (else the largest)."""
        values = [c.repeats for c in self.concepts if c.repeats]
        return max(values) if values else None

    def trigger_words(self) -> list[str]:
        return guess_trigger_words(self.concepts)

    def lines(self) -> list[str]:
        """The summary as short lines (the Evaluate box, the kept file's notes): keyed, English as ``str``."""
        out = []
        if self.base_model:
            out.append(sentence("summary.base", model=self.base_model, version=self.sd_version))
        if self.num_train_images is not None:
            key = "summary.images" + ("_repeats" if self.repeats else "") + ("_reg" if self.num_reg_images else "")
            out.append(sentence(key, images=self.num_train_images, repeats=self.repeats, reg=self.num_reg_images))
        if self.epoch is not None or self.steps is not None:
            key = "summary.epoch" + ("_of" if self.epochs else "") + ("_step" if self.steps is not None else "")
            out.append(sentence(key, epoch=self.epoch if self.epoch is not None else "?", epochs=self.epochs,
                                step=self.steps))
        if self.network_dim is not None:
            out.append(sentence("summary.rank_alpha", rank=self.network_dim, alpha=self.network_alpha)
                       if self.network_alpha is not None else sentence("summary.rank", rank=self.network_dim))
        lrs = [msg("summary.lr", name=msg(key), value=v) for key, v in (("summary.unet", self.unet_lr),
                                                                         ("summary.te", self.text_encoder_lr))
               if v is not None]
        if lrs or self.optimizer:
            out.append(Joined(list(filter(None, [self.optimizer, self.lr_scheduler])) + lrs, ", "))
        if self.resolution:
            out.append(sentence("summary.resolution" + ("_batch" if self.batch_size else ""),
                                width=self.resolution[0], height=self.resolution[1], batch=self.batch_size))
        return out


def _concepts(tags: dict, dirs: dict) -> list[Concept]:
    """Concept folders from the tag counts and (kohya's files) ``ss_dataset_dirs``."""
    tags = tags if isinstance(tags, dict) else {}
    dirs = dirs if isinstance(dirs, dict) else {}
    names = list(dict.fromkeys(list(dirs) + list(tags)))
    out = []
    for folder in names:
        info = dirs.get(folder) if isinstance(dirs.get(folder), dict) else {}
        match = _CONCEPT_RE.match(folder)
        repeats = read_int(info.get("n_repeats")) or (int(match[1]) if match else None)
        concept_tags = tags.get(folder) if isinstance(tags.get(folder), dict) else {}
        concept_tags = {str(k): read_int(v) or 0 for k, v in concept_tags.items()}
        out.append(Concept(folder, match[2] if match else folder, repeats, read_int(info.get("img_count")),
                           concept_tags))
    return out


def summary_from_metadata(meta: dict[str, str]) -> TrainingSummary:
    """A ``TrainingSummary`` of whatever ``meta`` holds (empty metadata gives an empty summary)."""
    v = read_training_metadata(meta)
    s = TrainingSummary(
        output_name=v.get("output_name"), base_model=v.get("model_name"), family=v.get("family"),
        network_dim=v.get("network_dim"), network_alpha=v.get("network_alpha"),
        learning_rate=v.get("learning_rate"), optimizer=v.get("optimizer_type"),
        lr_scheduler=v.get("lr_scheduler"), resolution=v.get("resolution"),
        batch_size=v.get("train_batch_size") or read_int(meta.get("ss_total_batch_size")),
        gradient_accumulation_steps=v.get("gradient_accumulation_steps"), epochs=v.get("max_train_epochs"),
        epoch=v.get("epoch"), steps=v.get("steps"), num_train_images=v.get("num_train_images"),
        num_reg_images=v.get("num_reg_images"), mixed_precision=v.get("mixed_precision"),
        min_snr_gamma=v.get("min_snr_gamma"), v_parameterization=v.get("v_prediction"),
        clip_skip=v.get("clip_skip"), started_at=v.get("training_started_at"), comment=v.get("training_comment"))
    s.unet_lr = v.get("unet_lr") or s.learning_rate               # kohya writes "None" when not set
    s.text_encoder_lr = v.get("text_encoder_lr") or s.learning_rate
    unet_only = v.get("network_train_unet_only")
    s.train_text_encoder = None if unet_only is None else not unet_only
    s.concepts = _concepts(v.get("tag_frequency") or {}, read_json(meta.get("ss_dataset_dirs")) or {})
    if s.num_train_images is not None:
        known = [c for c in s.concepts if c.images is not None]
        if len(s.concepts) == 1 and not known:
            s.concepts[0].images = s.num_train_images
    return s


def guess_trigger_words(concepts: list[Concept]) -> list[str]:
    """Per training concept, the tag that most likely is its trigger word.

    kohya-style captions start with the trigger, and it occurs in every caption. Among the tags
    with the concept's highest count: one equal to the folder's concept name (ignoring case,
    spaces and punctuation), else a word of it, else the first such tag (the tag counts keep
    the order of the first caption); without tags the concept name itself (what kohya uses for
    images without a caption)."""
    def plain(text: str) -> str:
        return re.sub(r"[\W_]+", "", text.lower())

    found: list[str] = []
    for concept in concepts:
        name = concept.name.strip()
        best = max(concept.tags.values(), default=0)
        top = [t for t, n in concept.tags.items() if n == best and best > 0]
        words = {w.lower() for w in re.split(r"[\s,_]+", name) if w}
        in_all = concept.images is None or best >= concept.images
        pick = next((t for t in top if plain(t) == plain(name)), None) or \
            next((t for t in top if t.lower() in words), None) or \
            (top[0] if top and in_all else None) or name
        if pick and pick not in found:
            found.append(pick)
    return found
