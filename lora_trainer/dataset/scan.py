"""A folder of pictures read fast: sizes from the headers, and per file a content hash, a perceptual hash and a
small thumbnail, decoded once and cached on disk (keyed by path, size and modification time).

The hashes find the duplicates shown before an import: the same bytes (BLAKE2b of the file) and near
duplicates (a 64-bit difference hash of the thumbnail, a few bits apart: the same picture resized,
recompressed or slightly edited). A picture that cannot be read is listed with the reason, never skipped
in silence.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterable

from PIL import Image, ImageOps

from ..data.images import IMAGE_EXTENSIONS, UNSUPPORTED_IMAGE_EXTENSIONS, ImageLoadError, image_size
from ..io.atomic import atomic_write
from ..text.messages import ENGLISH, Message, Sentence, sentence
from . import messages  # noqa: F401  (registers the sentences)

THUMB_SIDE = 256
NEAR_BITS = 6          # of 64: at most this many different bits make a near duplicate
NEAR_TONE = 12         # and at most this much brighter or darker on average (0…255)
CACHE_FILE = "scan.json"
_HASH_CHUNK = 1 << 20


@dataclass
class Picture:
    path: str
    width: int = 0                 # as displayed (EXIF rotation applied)
    height: int = 0
    size: int = 0                  # bytes
    mtime_ns: int = 0
    digest: str = ""               # BLAKE2b of the bytes
    dhash: str = ""                # 64-bit difference hash, hex
    tone: int = 0                  # mean grey 0…255 (flat pictures all share one dHash)
    thumb: str = ""                # the cached thumbnail (JPEG)
    animated: bool = False
    has_alpha: bool = False
    mode: str = ""
    error: str = ""                # why it cannot be used ("" when fine; a ``Sentence`` when keyed)

    @property
    def ok(self) -> bool:
        return not self.error


def picture_files(folder: str | os.PathLike, recursive: bool = False) -> tuple[list[Path], list[Path]]:
    """(images, files of image formats we do not read) in ``folder``, sorted; hidden entries left out."""
    folder = Path(folder)
    found = folder.rglob("*") if recursive else folder.iterdir()
    images, unsupported = [], []
    for path in sorted(found):
        if any(part.startswith(".") for part in path.relative_to(folder).parts) or not path.is_file():
            continue
        suffix = path.suffix.lower()
        if suffix in IMAGE_EXTENSIONS:
            images.append(path)
        elif suffix in UNSUPPORTED_IMAGE_EXTENSIONS:
            unsupported.append(path)
    return images, unsupported


def file_digest(path: str | os.PathLike) -> str:
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_HASH_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def difference_hash(image: Image.Image) -> str:
    """64-bit dHash: is each of 8×8 pixels of the 9×8 grey picture brighter than its right neighbour?"""
    grey = image.convert("L").resize((9, 8), Image.LANCZOS)
    pixels = list(grey.getdata())
    bits = 0
    for row in range(8):
        for col in range(8):
            bits = (bits << 1) | (pixels[row * 9 + col] > pixels[row * 9 + col + 1])
    return f"{bits:016x}"


def hamming(a: str, b: str) -> int:
    return bin(int(a, 16) ^ int(b, 16)).count("1")


def _thumbnail(path: Path, target: Path) -> tuple[Image.Image, dict]:
    """Decode ``path`` once (JPEG at a reduced scale), save its thumbnail; (thumbnail, facts about the file)."""
    with Image.open(path) as img:
        facts = {"animated": bool(getattr(img, "is_animated", False) and getattr(img, "n_frames", 1) > 1),
                 "mode": img.mode, "has_alpha": img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info}
        img.draft("RGB", (THUMB_SIDE * 2, THUMB_SIDE * 2))   # JPEG decodes at 1/2…1/8 scale
        img = ImageOps.exif_transpose(img) or img
        if img.mode in ("I", "F") or img.mode.startswith("I;16"):
            img = img.convert("I").point(lambda v: v * (1 / 257)).convert("L")
        rgba = img.convert("RGBA")
        rgba.thumbnail((THUMB_SIDE, THUMB_SIDE))
        thumb = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba).convert("RGB")
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(target) as tmp:
        thumb.save(tmp, "JPEG", quality=85)
    return thumb, facts


def _kept(message: Message) -> dict:
    """A message as JSON: its key and values (a value that is a sentence itself kept the same way)."""
    params = {}
    for name, value in message.params.items():
        value = value.message if isinstance(value, Sentence) else value
        params[name] = _kept(value) if isinstance(value, Message) else \
            value if isinstance(value, (str, int, float, bool)) or value is None else str(value)
    return {"key": message.key, "params": params}


def _restored(kept, text: str) -> str:
    """The ``Sentence`` kept by ``_kept``; ``text`` as it is when there is none (or its key is gone)."""
    def message(data: dict) -> Message:
        if data["key"] not in ENGLISH:
            raise KeyError(data["key"])
        return Message(data["key"], {name: Sentence(message(value)) if isinstance(value, dict) else value
                                     for name, value in data["params"].items()})
    try:
        return Sentence(message(kept)) if isinstance(kept, dict) else text
    except (KeyError, TypeError, ValueError, IndexError, AttributeError):
        return text


class ScanCache:
    """Per-file facts kept in ``<folder>/scan.json`` and thumbnails beside it; entries of changed files
    (another size or modification time) are computed again."""

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)
        self.entries: dict[str, dict] = {}
        self.changed = False
        try:
            self.entries = json.loads((self.folder / CACHE_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            self.entries = {}

    def get(self, path: Path, stat: os.stat_result, decode: bool = True) -> Picture | None:
        """The cached facts of an unchanged file (with ``decode``: only when they include the thumbnail)."""
        data = self.entries.get(str(path))
        if not data or data.get("size") != stat.st_size or data.get("mtime_ns") != stat.st_mtime_ns:
            return None
        if data.get("thumb") and not os.path.isfile(data["thumb"]):
            return None
        if decode and not data.get("thumb") and not data.get("error"):
            return None
        data = dict(data)
        keyed = data.pop("error_message", None)
        picture = Picture(**data)
        picture.error = _restored(keyed, picture.error)
        return picture

    def put(self, picture: Picture) -> None:
        entry = asdict(picture)
        if isinstance(picture.error, Sentence):     # kept by key, so a later look says it in any language
            entry["error_message"] = _kept(picture.error.message)
        self.entries[picture.path] = entry
        self.changed = True

    def thumb_path(self, path: Path, stat: os.stat_result) -> Path:
        key = hashlib.blake2b(f"{path}|{stat.st_size}|{stat.st_mtime_ns}".encode(), digest_size=10).hexdigest()
        return self.folder / "thumbs" / f"{key}.jpg"

    def save(self) -> None:
        if not self.changed:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        with atomic_write(self.folder / CACHE_FILE) as tmp:
            tmp.write_text(json.dumps(self.entries, ensure_ascii=False), encoding="utf-8")
        self.changed = False


def read_picture(path: Path, cache: ScanCache, decode: bool = True) -> Picture:
    """The facts of one picture, from the cache when the file is unchanged. Without ``decode`` only the header
    and the bytes' hash are read (no thumbnail, no perceptual hash): fast enough for every Start of a run."""
    try:
        stat = path.stat()
    except OSError as err:
        return Picture(str(path), error=sentence("plan.unreadable", why=str(err.strerror or err)))
    cached = cache.get(path, stat, decode)
    if cached is not None:
        return cached
    picture = Picture(str(path), size=stat.st_size, mtime_ns=stat.st_mtime_ns)
    try:
        if stat.st_size == 0:
            raise ImageLoadError(path, sentence("data.empty_file"))
        picture.width, picture.height = image_size(path)
        if not decode:
            picture.digest = file_digest(path)
            cache.put(picture)
            return picture
        target = cache.thumb_path(path, stat)
        thumb, facts = _thumbnail(path, target)
        picture.thumb, picture.dhash = str(target), difference_hash(thumb)
        grey = thumb.convert("L").resize((1, 1), Image.BOX)
        picture.tone = int(grey.getpixel((0, 0)))
        picture.animated, picture.mode, picture.has_alpha = facts["animated"], facts["mode"], facts["has_alpha"]
        picture.digest = file_digest(path)
    except ImageLoadError as err:
        picture.error = err.reason
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        picture.error = ImageLoadError(path, str(err)).reason if not isinstance(err, Image.DecompressionBombError) \
            else sentence("data.too_large")
    cache.put(picture)
    return picture


def scan_pictures(paths: Iterable[Path], cache: ScanCache,
                  progress: Callable[[int, int], None] | None = None, decode: bool = True) -> list[Picture]:
    paths = list(paths)
    out = []
    for index, path in enumerate(paths):
        out.append(read_picture(path, cache, decode))
        if progress is not None:
            progress(index + 1, len(paths))
    cache.save()
    return out


@dataclass
class DuplicateGroup:
    kind: str                     # "same bytes" | "near duplicate"
    paths: list[str]
    distance: int = 0             # differing bits (near duplicates)


def find_duplicates(pictures: Iterable[Picture], near_bits: int = NEAR_BITS) -> list[DuplicateGroup]:
    """Groups of pictures with the same bytes, then pairs that look alike (the first of each is kept)."""
    usable = [p for p in pictures if p.ok and p.digest]
    groups: list[DuplicateGroup] = []
    by_digest: dict[str, list[Picture]] = {}
    for picture in usable:
        by_digest.setdefault(picture.digest, []).append(picture)
    for same in by_digest.values():
        same.sort(key=lambda p: (len(os.path.basename(p.path)), p.path))   # "a.png" kept before "a copy.png"
        if len(same) > 1:
            groups.append(DuplicateGroup("same bytes", [p.path for p in same]))
    firsts = [same[0] for same in by_digest.values()]
    firsts = [p for p in firsts if p.dhash]   # pictures read without decoding have no perceptual hash
    for i, a in enumerate(firsts):
        for b in firsts[i + 1:]:
            distance = hamming(a.dhash, b.dhash)
            if distance <= near_bits and abs(a.tone - b.tone) <= NEAR_TONE:
                groups.append(DuplicateGroup("near duplicate", [a.path, b.path], distance))
    return groups
