"""What cropping and resizing will make of each picture, worked out without writing a training image.

For each picture of ``originals/<trigger>/``: its output size (the square of the resolution, or with buckets
on the bucket training puts it in, by ``data/buckets.py``'s own rules), the crop box in the picture's pixels
(centred on the focal point as far as the picture allows), the scale, and notes (enlarged, huge, animated,
fully transparent, cropped hard) or the reason it cannot be used. Only headers are read; a picture with
transparency is decoded once to see whether anything is visible (cached in ``.workbench/prepare.json``).
Also: the bucket histogram, the dataset-wide warnings and whether each output is already up to date.
Notes, refusals and warnings are ``Message``s (``str()`` gives the English; a refusal read from the image
loader is its English text), so the workbench can show them in the user's language.
"""
from __future__ import annotations

import os
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from PIL import Image

from ..config.schema import parse_resolution
from ..data.buckets import BucketSet
from ..data.images import UNSUPPORTED_IMAGE_EXTENSIONS, ImageHeader, ImageLoadError, read_header
from ..errors import DatasetError
from ..text.messages import Message, msg
from .crop import HUGE_SIDE, MIN_SIDE, Box, Size, box_scale, crop_box, parse_colour, rounded_box
from .messages import said
from .project import Project
from .recipe import FactsCache, fully_transparent, read_mark, recipe_of
from .scan import picture_files

_LIST = 5


def _names(paths: list[str]) -> str:
    names = [os.path.basename(p) for p in paths]
    return ", ".join(names[:_LIST]) + (f", … (+{len(names) - _LIST})" if len(names) > _LIST else "")


def default_bucket_bounds(resolution: int) -> tuple[int, int]:
    """(min, max) bucket side as the presets have them: 256/1024 at 512, 512/2048 at 1024."""
    return max(64, resolution // 2 // 64 * 64), max(128, resolution * 2 // 64 * 64)


@dataclass(frozen=True)
class PrepareSettings:
    resolution: int | str | tuple[int, int] = 512   # square side, or (width, height) without buckets
    buckets: bool = True
    background: str = "#ffffff"                 # transparent pixels are put on this colour
    min_bucket_reso: int | None = None          # None: half the resolution (256 at 512, the presets' values)
    max_bucket_reso: int | None = None          # None: twice the resolution (1024 at 512)
    bucket_reso_steps: int = 64
    bucket_no_upscale: bool = False

    @classmethod
    def from_project(cls, project: Project, **overrides) -> "PrepareSettings":
        prep = project.preparation
        values = {"resolution": prep.resolution, "buckets": prep.buckets, "background": prep.background}
        values.update(overrides)
        return cls(**values)

    @classmethod
    def from_config(cls, cfg, background: str = "#ffffff") -> "PrepareSettings":
        """The bucket rules of a ``TrainConfig``, so prepared pictures land in the buckets that run uses."""
        return cls(cfg.resolution_wh, bool(cfg.enable_bucket), background, cfg.min_bucket_reso,
                   cfg.max_bucket_reso, cfg.bucket_reso_steps, bool(cfg.bucket_no_upscale))

    @property
    def size(self) -> Size:
        """(width, height); "512", "768,512" and [768, 512] are read as the training form writes them."""
        return parse_resolution(self.resolution)

    @property
    def background_rgb(self) -> tuple[int, int, int]:
        return parse_colour(self.background)

    def check(self) -> None:
        """``DatasetError`` naming the setting that cannot work."""
        width, height = self.size
        for side in {width, height}:
            if not 64 <= side <= 4096 or side % 64:
                good = min(4096, max(64, round(side / 64) * 64))
                raise DatasetError(msg("plan.bad_resolution", side=side), msg("plan.bad_resolution.advice", good=good))
        if self.buckets and width != height:
            raise DatasetError(msg("plan.not_square", width=width, height=height), msg("plan.not_square.advice"))
        self.background_rgb  # noqa: B018  (raises for a bad colour)
        self.bucket_set()

    def bucket_set(self) -> BucketSet | None:
        if not self.buckets:
            return None
        low, high = default_bucket_bounds(self.size[0])
        return BucketSet.build(self.size, self.min_bucket_reso or low, self.max_bucket_reso or high,
                               self.bucket_reso_steps)


@dataclass
class PlannedPicture:
    key: str                                   # "<trigger>/<file name>", as focal points are stored
    trigger: str
    source: str                                # the original (never changed)
    target: str                                # img/<N>_<trigger>/<stem>.png
    width: int = 0                             # the original as displayed
    height: int = 0
    output: Size | None = None                 # the output size = its bucket
    box: Box | None = None                     # the crop box in the original's pixels
    scale: float = 0.0                         # output pixels per original pixel (> 1: enlarged)
    focal: tuple[float, float] | None = None   # the focal point used (None: the centre)
    header: ImageHeader | None = None
    notes: list[Message] = field(default_factory=list)
    error: Message | str = ""                  # why it cannot be used ("" when fine)
    advice: Message | str = ""                 # how to fix that
    recipe: str = ""                           # what the output is made from (source state + settings)
    up_to_date: bool = False                   # the target exists and was made by this recipe

    @property
    def ok(self) -> bool:
        return not self.error

    @property
    def enlarged(self) -> bool:
        return self.scale > 1.0 + 1e-6

    @property
    def crop_box(self) -> tuple[int, int, int, int] | None:
        """The crop box rounded to whole pixels of the original (for drawing it)."""
        return rounded_box(self.box) if self.box else None

    def as_dict(self, language: str = "en") -> dict:
        """JSON-ready (the HTTP API), the sentences in ``language``."""
        out = asdict(self)
        out.update(crop_box=self.crop_box, enlarged=self.enlarged, ok=self.ok,
                   animated=bool(self.header and self.header.animated),
                   notes=[said(n, language) for n in self.notes], error=said(self.error, language),
                   advice=said(self.advice, language))
        out.pop("header")
        return out


@dataclass
class PreparePlan:
    project: Project
    settings: PrepareSettings
    pictures: list[PlannedPicture]
    warnings: list[Message] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)   # prepared outputs whose original is gone (removed on run)

    @property
    def histogram(self) -> dict[Size, int]:
        """Output size (bucket) → number of pictures, most used first."""
        counts = Counter(p.output for p in self.pictures if p.ok and p.output)
        return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))

    @property
    def refused(self) -> list[PlannedPicture]:
        return [p for p in self.pictures if not p.ok]

    @property
    def to_write(self) -> list[PlannedPicture]:
        return [p for p in self.pictures if p.ok and not p.up_to_date]

    def histogram_rows(self) -> list[dict]:
        return [{"width": w, "height": h, "count": n} for (w, h), n in self.histogram.items()]

    def as_dict(self, language: str = "en") -> dict:
        """JSON-ready (the HTTP API), the sentences in ``language``."""
        return {"settings": asdict(self.settings), "pictures": [p.as_dict(language) for p in self.pictures],
                "histogram": self.histogram_rows(), "warnings": [said(w, language) for w in self.warnings],
                "stale": list(self.stale),
                "to_write": len(self.to_write), "refused": len(self.refused)}

    def picture(self, key: str) -> PlannedPicture:
        for picture in self.pictures:
            if picture.key == key:
                return picture
        raise DatasetError(msg("plan.no_picture", picture=key), msg("plan.no_picture.advice"))


def _focal(project: Project, key: str, picture: PlannedPicture) -> tuple[float, float] | None:
    value = project.preparation.focal_points.get(key)
    if value is None:
        return None
    try:
        x, y = (float(v) for v in value)
    except (TypeError, ValueError):
        picture.notes.append(msg("plan.focal_not_numbers", value=repr(value)))
        return None
    if not (0 <= x <= 1 and 0 <= y <= 1):
        picture.notes.append(msg("plan.focal_outside", x=x, y=y))
    return min(max(x, 0.0), 1.0), min(max(y, 0.0), 1.0)


def _plan_one(project: Project, concept, path: Path, settings: PrepareSettings, buckets: BucketSet | None,
              background, facts: FactsCache | None) -> PlannedPicture:
    key = f"{concept.trigger}/{path.name}"
    picture = PlannedPicture(key, concept.trigger, str(path), str(project.concept_dir(concept) / (path.stem + ".png")))
    try:
        stat = path.stat()
        header = read_header(path)
    except ImageLoadError as err:
        unknown = path.suffix.lower() in UNSUPPORTED_IMAGE_EXTENSIONS and "valid image" in err.reason
        picture.error = msg("plan.no_decoder", suffix=path.suffix) if unknown else err.reason
        picture.advice = msg("plan.no_decoder.advice") if unknown else err.advice
        return picture
    except OSError as err:
        picture.error = msg("plan.unreadable", why=str(err.strerror or err))
        picture.advice = msg("plan.unreadable.advice")
        return picture
    picture.header, picture.width, picture.height = header, header.width, header.height
    size = f"{header.width}×{header.height}"
    if min(header.width, header.height) < MIN_SIDE:
        picture.error = msg("plan.too_small", size=size, min_side=MIN_SIDE)
        picture.advice = msg("plan.too_small.advice")
        return picture
    if header.over_pixel_limit and header.format != "JPEG":
        picture.error = msg("plan.too_large", size=size, megapixels=(Image.MAX_IMAGE_PIXELS or 0) / 1e6)
        picture.advice = msg("plan.too_large.advice")
        return picture
    if facts is not None and header.has_alpha:
        try:
            if fully_transparent(path, header, key, stat, facts):
                picture.error, picture.advice = msg("plan.transparent"), msg("plan.transparent.advice")
                return picture
        except ImageLoadError as err:
            picture.error, picture.advice = err.reason, err.advice
            return picture
    picture.output = buckets.assign(header.width, header.height, settings.bucket_no_upscale) \
        if buckets is not None else settings.size
    picture.focal = _focal(project, key, picture)
    picture.box = crop_box(header.width, header.height, picture.output, picture.focal)
    picture.scale = box_scale(picture.box, picture.output)
    _notes(picture, size)
    picture.recipe = recipe_of(stat, picture.output, picture.box, background if header.has_alpha else None)
    mark = read_mark(picture.target)
    picture.up_to_date = bool(mark and mark.get("recipe") == picture.recipe and mark.get("source") == path.name)
    return picture


def _notes(picture: PlannedPicture, size: str) -> None:
    out = f"{picture.output[0]}×{picture.output[1]}"
    header = picture.header
    if picture.enlarged:
        picture.notes.append(msg("plan.note.enlarged", scale=picture.scale, size=size, out=out))
    if max(header.width, header.height) > HUGE_SIDE or header.over_pixel_limit:
        picture.notes.append(msg("plan.note.huge_jpeg" if header.format == "JPEG" else "plan.note.huge",
                                 size=size, scale=picture.scale))
    if header.animated:
        picture.notes.append(msg("plan.note.animated", frames=header.frames))
    box_w, box_h = picture.box[2] - picture.box[0], picture.box[3] - picture.box[1]
    lost = 1 - box_w * box_h / (header.width * header.height)
    if lost > 0.2:
        picture.notes.append(msg("plan.note.cropped_focal" if picture.focal else "plan.note.cropped_centre",
                                 out=out, lost=lost))


def _dataset_warnings(plan: PreparePlan, concepts_without_pictures: list[str]) -> list[Message]:
    ok = [p for p in plan.pictures if p.ok]
    warnings = [msg("plan.warn.empty", folder=folder) for folder in concepts_without_pictures]
    if plan.refused:   # each one's reason is in its own refusal
        warnings.append(msg("plan.warn.refused", count=len(plan.refused),
                            names=_names([p.source for p in plan.refused])))
    enlarged = sorted((p for p in ok if p.enlarged), key=lambda p: -p.scale)
    if enlarged:
        worst = enlarged[0]
        warnings.append(msg("plan.warn.enlarged", count=len(enlarged), scale=worst.scale,
                            worst=os.path.basename(worst.source), names=_names([p.source for p in enlarged])))
    huge = [p for p in ok if max(p.width, p.height) > HUGE_SIDE or p.header.over_pixel_limit]
    if huge:
        warnings.append(msg("plan.warn.huge", count=len(huge), side=HUGE_SIDE, names=_names([p.source for p in huge])))
    animated = [p for p in ok if p.header.animated]
    if animated:
        warnings.append(msg("plan.warn.animated", count=len(animated), names=_names([p.source for p in animated])))
    if not plan.settings.buckets:
        cropped = [p for p in ok if abs(p.width / p.height - p.output[0] / p.output[1]) > 0.1]
        if cropped:
            width, height = plan.settings.size
            warnings.append(msg("plan.warn.buckets_off", count=len(cropped), total=len(ok), width=width, height=height,
                                shapes=len({round(p.width / p.height, 1) for p in ok}),
                                names=_names([p.source for p in cropped])))
    if plan.stale:
        warnings.append(msg("plan.warn.stale", count=len(plan.stale), names=_names(plan.stale)))
    return warnings


def _stale_outputs(project: Project, concept, sources: set[str], targets: set[str]) -> list[str]:
    """Prepared PNGs in the concept's img folder whose original is gone."""
    folder = project.concept_dir(concept)
    stale = []
    if not folder.is_dir():
        return stale
    for path in sorted(folder.glob("*.png")):
        if str(path) in targets:
            continue
        mark = read_mark(path)
        if mark and mark.get("source") not in sources:
            stale.append(str(path))
    return stale


def plan_preparation(project: Project, settings: PrepareSettings | None = None,
                     concepts: list[str] | None = None, check_transparency: bool = True,
                     progress: Callable[[int, int], None] | None = None) -> PreparePlan:
    """The plan for the project's concepts (all, or the triggers in ``concepts``); writes no training image."""
    settings = settings or PrepareSettings.from_project(project)
    settings.check()
    buckets, background = settings.bucket_set(), settings.background_rgb
    chosen = [project.concept(t) for t in concepts] if concepts else list(project.concepts)
    facts = FactsCache(project) if check_transparency else None
    work: list[tuple] = []
    empty: list[str] = []
    for concept in chosen:
        folder = project.originals_dir(concept)
        images, other = picture_files(folder) if folder.is_dir() else ([], [])
        paths = sorted(images + other, key=lambda p: p.name)
        if not paths:
            empty.append(str(folder))
        work += [(concept, path) for path in paths]
    pictures, stale = [], []
    for index, (concept, path) in enumerate(work):
        pictures.append(_plan_one(project, concept, path, settings, buckets, background, facts))
        if progress is not None:
            progress(index + 1, len(work))
    _same_stem(pictures)
    for concept in chosen:
        mine = [p for p in pictures if p.trigger == concept.trigger]
        stale += _stale_outputs(project, concept, {os.path.basename(p.source) for p in mine},
                                {p.target for p in mine})
    if facts is not None:
        facts.save()
    plan = PreparePlan(project, settings, pictures, stale=stale)
    plan.warnings = _dataset_warnings(plan, empty)
    return plan


def _same_stem(pictures: list[PlannedPicture]) -> None:
    """Two originals with one stem (a.jpg, a.png) would write one a.png: the second is refused."""
    seen: dict[str, PlannedPicture] = {}
    for picture in pictures:
        first = seen.setdefault(picture.target, picture)
        if first is not picture:
            picture.error = msg("plan.same_stem", other=os.path.basename(first.source),
                                target=os.path.basename(picture.target))
            picture.advice = msg("plan.same_stem.advice")
