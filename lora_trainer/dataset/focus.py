"""Focal points proposed from the picture itself, for the user to accept or move with a click.

In order, the first that finds something wins:

1. **faces**: OpenCV's frontal-face Haar cascade, the file that ships inside the ``opencv-python`` package
   (A1111 and Forge install it). Nothing is downloaded. Without ``cv2`` this step is skipped and
   ``detector_status()`` says so. It finds photographed faces; drawn (anime) faces mostly not.
2. **the subject of a cut-out**: a picture with transparency (a removed background): the box of its
   visible pixels.
3. **the subject on a plain background**: a picture whose border is one colour (a studio or a flat
   illustration background): the box of the pixels that differ from it.

A subject taller than wide is focused near its top (a standing figure's head), else on its centre.
Otherwise no proposal: the centre crop stays.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from PIL import Image

from ..text.messages import Message, msg, sentence
from . import messages  # noqa: F401  (registers the sentences)

FACE = "face"
CUTOUT = "subject (transparent background)"
PLAIN = "subject (plain background)"
DETECT_SIDE = 512              # pictures are looked at this small
_BORDER_SPREAD = 18.0          # a plain border: its pixels' colours spread at most this much (0…255)
_FOREGROUND = 40               # a pixel this far from the border colour belongs to the subject
_CASCADE = "haarcascade_frontalface_default.xml"


@dataclass(frozen=True)
class FocalProposal:
    x: float                                   # 0…1 of the width
    y: float                                   # 0…1 of the height
    method: str                                # FACE, CUTOUT or PLAIN
    box: tuple[float, float, float, float]     # what was found (left, top, right, bottom), 0…1

    @property
    def point(self) -> list[float]:
        """As ``project.preparation.focal_points`` stores it."""
        return [round(self.x, 4), round(self.y, 4)]


def _cv2():
    try:
        import cv2  # noqa: PLC0415  (optional: the WebUIs ship it, we do not require it)
    except Exception:   # not installed, or a broken build (missing libGL): no face detector either way
        return None
    return cv2 if hasattr(cv2, "CascadeClassifier") else None


_cascade_cache: dict = {}


def _face_cascade():
    cv2 = _cv2()
    if cv2 is None:
        return None, msg("focus.no_cv2")
    if "face" not in _cascade_cache:
        folder = getattr(getattr(cv2, "data", None), "haarcascades", "")
        cascade = cv2.CascadeClassifier(folder + _CASCADE) if folder else None
        version = getattr(cv2, "__version__", "")
        if cascade is None or cascade.empty():
            _cascade_cache["face"] = (None, msg("focus.no_cascade", version=version, file=_CASCADE))
        else:
            _cascade_cache["face"] = (cascade, msg("focus.faces", version=version))
    return _cascade_cache["face"]


def detector_message() -> tuple[bool, Message]:
    """(faces can be detected, one sentence for the UI saying what proposes focal points here)."""
    cascade, faces = _face_cascade()
    return cascade is not None, msg("focus.status" if cascade is not None else "focus.status.install", faces=faces)


def detector_status(language: str = "en") -> tuple[bool, str]:
    """``detector_message`` with the sentence in ``language``."""
    available, sentence = detector_message()
    return available, sentence.format(language)


def _detect_faces(image: Image.Image) -> list[tuple[int, int, int, int]]:
    cascade, _ = _face_cascade()
    if cascade is None:
        return []
    import numpy as np
    cv2 = _cv2()
    grey = cv2.equalizeHist(np.asarray(image.convert("L"), dtype=np.uint8))
    side = max(24, min(image.size) // 12)
    found = cascade.detectMultiScale(grey, scaleFactor=1.1, minNeighbors=5, minSize=(side, side))
    return [tuple(int(v) for v in face) for face in (found if len(found) else [])]


def _focus(left: float, top: float, right: float, bottom: float, width: int, height: int,
           method: str, head_first: bool) -> FocalProposal:
    box_w, box_h = right - left, bottom - top
    y = top + box_w / 2 if head_first and box_h > box_w else top + box_h / 2
    box = (left / width, top / height, right / width, bottom / height)
    return FocalProposal((left + box_w / 2) / width, y / height, method, box)


def _faces(image: Image.Image) -> FocalProposal | None:
    faces = _detect_faces(image)
    if not faces:
        return None
    largest = max(w * h for _, _, w, h in faces)
    chosen = [f for f in faces if f[2] * f[3] >= largest / 2]     # the main face, or a group of similar ones
    left, top = min(f[0] for f in chosen), min(f[1] for f in chosen)
    right, bottom = max(f[0] + f[2] for f in chosen), max(f[1] + f[3] for f in chosen)
    return _focus(left, top, right, bottom, *image.size, FACE, head_first=False)


def _box_of(mask, min_share: float = 0.01):
    """The rows and columns where at least ``min_share`` of the pixels are set (ignores specks)."""
    import numpy as np
    rows = np.flatnonzero(mask.mean(axis=1) >= min_share)
    cols = np.flatnonzero(mask.mean(axis=0) >= min_share)
    if not len(rows) or not len(cols):
        return None
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def _subject(mask, width: int, height: int, method: str) -> FocalProposal | None:
    share = float(mask.mean())
    if not 0.02 <= share <= 0.9:            # nothing there, or the subject fills the picture: centre is fine
        return None
    box = _box_of(mask)
    if box is None or (box[2] - box[0]) * (box[3] - box[1]) >= 0.95 * width * height:
        return None
    return _focus(*box, width, height, method, head_first=True)


def _cutout(alpha: Image.Image | None) -> FocalProposal | None:
    if alpha is None:
        return None
    import numpy as np
    mask = np.asarray(alpha, dtype=np.uint8) > 16
    return _subject(mask, alpha.width, alpha.height, CUTOUT)


def _plain_background(image: Image.Image) -> FocalProposal | None:
    import numpy as np
    pixels = np.asarray(image.convert("RGB"), dtype=np.int16)
    edge = max(1, min(image.size) // 50)
    border = np.concatenate([pixels[:edge].reshape(-1, 3), pixels[-edge:].reshape(-1, 3),
                             pixels[:, :edge].reshape(-1, 3), pixels[:, -edge:].reshape(-1, 3)])
    colour = np.median(border, axis=0)
    if float(np.abs(border - colour).max(axis=1).mean()) > _BORDER_SPREAD:
        return None
    mask = np.abs(pixels - colour).max(axis=2) > _FOREGROUND
    return _subject(mask, image.width, image.height, PLAIN)


def propose_focal_point(image: Image.Image, alpha: Image.Image | None = None) -> FocalProposal | None:
    """A focal point for ``image`` (RGB, EXIF rotation applied; ``alpha`` its transparency if any), or None
    when nothing stands out. Looks at a copy at most ``DETECT_SIDE`` px a side."""
    if max(image.size) > DETECT_SIDE:
        factor = DETECT_SIDE / max(image.size)
        size = (max(1, round(image.width * factor)), max(1, round(image.height * factor)))
        image = image.resize(size, Image.Resampling.BILINEAR)
        alpha = alpha.resize(size, Image.Resampling.BILINEAR) if alpha is not None else None
    try:
        found = _faces(image)
    except Exception:       # a cv2 build that fails at run time: the other methods still work
        found = None
    return found or _cutout(alpha) or _plain_background(image)


# --- a project's pictures ----------------------------------------------------------------------------------
@dataclass
class FocalScan:
    proposals: dict = field(default_factory=dict)    # "<trigger>/<file name>" → FocalProposal
    nothing_found: list[str] = field(default_factory=list)
    failed: dict = field(default_factory=dict)       # key → why the picture could not be looked at
    detector: Message | str = ""                     # detector_message()'s sentence
    stopped: bool = False


def propose_focal_points(project, concepts: list[str] | None = None, only_missing: bool = True,
                         progress: Callable[[int, int], None] | None = None,
                         should_stop: Callable[[], bool] | None = None) -> FocalScan:
    """Proposals for the project's usable pictures (with ``only_missing``: those without a focal point yet).
    Nothing is stored: ``apply_proposals`` puts them into the project."""
    from ..data.images import ImageLoadError
    from .crop import small_view
    from .plan import plan_preparation

    plan = plan_preparation(project, concepts=concepts)
    points = project.preparation.focal_points
    todo = [p for p in plan.pictures if p.ok and not (only_missing and p.key in points)]
    scan = FocalScan(detector=detector_message()[1])
    for index, picture in enumerate(todo):
        if should_stop is not None and should_stop():
            scan.stopped = True
            break
        try:
            view = small_view(picture.source, picture.header, DETECT_SIDE)
            found = propose_focal_point(view.image, view.alpha)
        except ImageLoadError as err:
            scan.failed[picture.key] = sentence("dataset.reason_advice", reason=err.reason, advice=err.advice)
            found = None
        if found is not None:
            scan.proposals[picture.key] = found
        elif picture.key not in scan.failed:
            scan.nothing_found.append(picture.key)
        if progress is not None:
            progress(index + 1, len(todo))
    return scan


def apply_proposals(project, proposals: dict, overwrite: bool = False) -> int:
    """Store proposals as the project's focal points (those a user set stay unless ``overwrite``);
    how many were stored. The caller saves the project."""
    points = project.preparation.focal_points
    stored = 0
    for key, proposal in proposals.items():
        if overwrite or key not in points:
            points[key] = proposal.point
            stored += 1
    return stored


def set_focal_point(project, key: str, x: float | None, y: float | None = None) -> None:
    """A clicked focal point (x, y in 0…1 of the picture shown), or ``x=None`` for the centre again."""
    from ..errors import DatasetError

    points = project.preparation.focal_points
    if x is None:
        points.pop(key, None)
        return
    try:
        x, y = float(x), float(y)
    except (TypeError, ValueError):
        raise DatasetError(msg("focus.not_numbers", x=repr(x), y=repr(y), picture=key),
                           msg("focus.not_numbers.advice")) from None
    if not (0 <= x <= 1 and 0 <= y <= 1):
        raise DatasetError(msg("focus.outside", x=x, y=y, picture=key), msg("focus.outside.advice"))
    points[key] = [round(x, 4), round(y, 4)]
