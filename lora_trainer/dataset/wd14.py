"""The WD14 tagger: SmilingWolf's wd-v1-4-*-tagger-v2 and wd-*-tagger-v3 ONNX models, run with onnxruntime.

A model folder holds ``model.onnx`` and ``selected_tags.csv`` (columns tag_id, name, category, count;
category 0 general, 4 character, 9 rating). The picture is put on white, padded to a white square, resized
(bicubic) to the model's input size, read from the model, and given as a batch of one, NHWC float32 in BGR
order, 0–255; the model answers one sigmoid score per tag of the CSV, in its order.

onnxruntime is optional: without it :func:`import_onnxruntime` raises a ``MissingDependency`` that says how
to install it (``lora_trainer.install.on_request`` installs it through the install gate on request). The
session is created on first use and is safe to share between threads.
"""
from __future__ import annotations

import csv
import importlib
import importlib.util
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import DatasetError, MissingDependency
from ..text.messages import msg, sentence
from . import messages  # noqa: F401  (registers the sentences)
from . import messages_tagging  # noqa: F401
from .tagging import TagOptions, Tagger, TagScores

MODEL_FILE = "model.onnx"
TAGS_FILE = "selected_tags.csv"
GENERAL, CHARACTER, RATING = 0, 4, 9
DEFAULT_INPUT_SIZE = 448
PROVIDERS = ("CUDAExecutionProvider", "ROCMExecutionProvider", "DmlExecutionProvider", "CPUExecutionProvider")
INSTALL_ADVICE = sentence("wd14.install.advice")
_BICUBIC = getattr(getattr(Image, "Resampling", Image), "BICUBIC")


def onnxruntime_available() -> bool:
    """Is onnxruntime installed (without importing it)?"""
    try:
        return importlib.util.find_spec("onnxruntime") is not None
    except (ImportError, ValueError):
        return False


def import_onnxruntime():
    """The onnxruntime module, or a ``TrainerError`` that says how to get a working one."""
    try:
        return importlib.import_module("onnxruntime")
    except ModuleNotFoundError as err:
        if err.name not in (None, "onnxruntime"):
            raise _broken_onnxruntime(err) from None
        missing = MissingDependency("onnxruntime", msg("dep.wd14_tagger"))
        missing.advice = INSTALL_ADVICE
        raise missing from None
    except Exception as err:  # a broken install: a DLL that does not load, a numpy it was not built for
        raise _broken_onnxruntime(err) from None


def _broken_onnxruntime(err: BaseException) -> DatasetError:
    return DatasetError(msg("wd14.broken", error=f"{type(err).__name__}: {err}"), msg("wd14.broken.advice"))


# --- the model folder ------------------------------------------------------------------------------
def model_folder_problem(folder) -> str:
    """Why ``folder`` is not a WD14 model folder, or "" when it is one."""
    folder = Path(folder)
    if not folder.is_dir():
        return sentence("dataset.not_folder", folder=folder)
    missing = [name for name in (MODEL_FILE, TAGS_FILE) if not (folder / name).is_file()]
    if len(missing) == 1:
        return sentence("wd14.no_file", folder=folder, name=missing[0])
    if missing:
        return sentence("wd14.no_files", folder=folder, first=missing[0], second=missing[1])
    return ""


def check_model_folder(folder) -> Path:
    problem = model_folder_problem(folder)
    if problem:
        raise DatasetError(msg("wd14.bad_folder", problem=problem),
                           msg("wd14.bad_folder.advice", model_file=MODEL_FILE, tags_file=TAGS_FILE))
    return Path(folder)


@dataclass(frozen=True)
class Labels:
    names: tuple[str, ...]
    categories: np.ndarray         # one int per name

    def __len__(self) -> int:
        return len(self.names)


def read_labels(path) -> Labels:
    """``selected_tags.csv``: its ``name`` and ``category`` columns, in file order."""
    path = Path(path)
    advice = msg("wd14.labels.advice", tags_file=TAGS_FILE, model_file=MODEL_FILE)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as err:
        raise DatasetError(msg("wd14.cannot_read", path=path, why=str(err.strerror or err)), advice) from None
    except UnicodeDecodeError as err:
        raise DatasetError(msg("wd14.not_utf8", path=path, position=err.start), advice) from None
    reader = csv.DictReader(text.splitlines())
    if not reader.fieldnames or not {"name", "category"} <= {f.strip() for f in reader.fieldnames}:
        found = ", ".join(reader.fieldnames or []) or msg("wd14.nothing")
        raise DatasetError(msg("wd14.no_columns", path=path, found=found), advice)
    names, categories = [], []
    for row_number, row in enumerate(reader, start=2):
        row = {(k or "").strip(): (v or "").strip() for k, v in row.items() if k is not None}
        try:
            category = int(row.get("category") or "")
        except ValueError:
            raise DatasetError(msg("wd14.bad_category", path=path, line=row_number, value=row.get("category")),
                               advice) from None
        if not row.get("name"):
            raise DatasetError(msg("wd14.no_name", path=path, line=row_number), advice)
        names.append(row["name"])
        categories.append(category)
    if not names:
        raise DatasetError(msg("wd14.no_tags", path=path), advice)
    return Labels(tuple(names), np.asarray(categories, dtype=np.int64))


# --- the picture -----------------------------------------------------------------------------------
def prepare_image(image: Image.Image, width: int, height: int | None = None) -> np.ndarray:
    """The model's input for ``image``: transparent parts on white, padded to a centred white square,
    resized to ``width`` × ``height``; shape (1, height, width, 3), float32, BGR, 0–255."""
    height = height or width
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba).convert("RGB")
    elif image.mode != "RGB":
        image = image.convert("RGB")
    side = max(image.size)
    square = Image.new("RGB", (side, side), (255, 255, 255))
    square.paste(image, ((side - image.width) // 2, (side - image.height) // 2))
    if square.size != (width, height):
        square = square.resize((width, height), _BICUBIC)
    pixels = np.asarray(square, dtype=np.float32)[:, :, ::-1]
    return np.ascontiguousarray(pixels[None])


# --- the tagger ------------------------------------------------------------------------------------
class WD14Tagger(Tagger):
    """A WD14-style ONNX model from a folder; loaded on first use."""

    kind = "tags"

    def __init__(self, folder, *, providers: list[str] | None = None, threads: int = 0):
        self.folder = check_model_folder(folder)
        self.name = f"wd14:{self.folder}"
        self.label = f"WD14 ({self.folder.name})"
        self.providers = providers
        self.threads = int(threads)
        self._lock = threading.Lock()
        self._session = None
        self._labels: Labels | None = None
        self._input = ("", DEFAULT_INPUT_SIZE, DEFAULT_INPUT_SIZE)     # name, width, height
        self._output = ""

    # -- loading --------------------------------------------------------------------------------------
    def load(self) -> None:
        with self._lock:
            if self._session is None:
                self._load()

    def _load(self) -> None:
        ort = import_onnxruntime()
        labels = read_labels(self.folder / TAGS_FILE)
        model = self.folder / MODEL_FILE
        options = ort.SessionOptions()
        options.log_severity_level = 3                # no warnings on the WebUI's console
        if self.threads > 0:
            options.intra_op_num_threads = self.threads
        available = list(ort.get_available_providers())
        providers = self.providers or [p for p in PROVIDERS if p in available] or available
        try:
            session = ort.InferenceSession(str(model), sess_options=options, providers=providers)
        except Exception as err:  # onnxruntime raises its own classes (InvalidProtobuf, Fail, NoSuchFile …)
            reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise DatasetError(msg("wd14.cannot_load", model=model, reason=reason),
                               msg("wd14.cannot_load.advice")) from None
        self._input = self._check_input(session, model)
        self._output = self._check_output(session, model, labels)
        self._labels = labels
        self._session = session

    @staticmethod
    def _check_input(session, model: Path) -> tuple[str, int, int]:
        inputs = session.get_inputs()
        shape = list(inputs[0].shape) if inputs else []
        if len(inputs) != 1 or len(shape) != 4 or shape[3] != 3 or inputs[0].type != "tensor(float)":
            found = ", ".join(f"{i.name} {i.type} {list(i.shape)}" for i in inputs) or msg("wd14.none")
            raise DatasetError(msg("wd14.bad_input", model=model, found=found), msg("wd14.bad_input.advice"))
        height = shape[1] if isinstance(shape[1], int) and shape[1] > 0 else None
        width = shape[2] if isinstance(shape[2], int) and shape[2] > 0 else None
        height = height or width or DEFAULT_INPUT_SIZE
        return inputs[0].name, width or height, height

    @staticmethod
    def _check_output(session, model: Path, labels: Labels) -> str:
        outputs = session.get_outputs()
        shape = list(outputs[0].shape) if outputs else []
        size = shape[-1] if shape and isinstance(shape[-1], int) else None
        if not outputs or (size is not None and size != len(labels)):
            raise DatasetError(msg("wd14.bad_output", model=model, size=size, tags_file=TAGS_FILE, count=len(labels))
                               if outputs else msg("wd14.no_output", model=model, tags_file=TAGS_FILE, count=len(labels)),
                               msg("wd14.same_repo.advice", model_file=MODEL_FILE, tags_file=TAGS_FILE))
        return outputs[0].name

    @property
    def input_size(self) -> tuple[int, int]:
        """(width, height) the model takes (loads it)."""
        self.load()
        return self._input[1], self._input[2]

    @property
    def labels(self) -> Labels:
        self.load()
        assert self._labels is not None
        return self._labels

    def close(self) -> None:
        with self._lock:
            self._session = None

    # -- running --------------------------------------------------------------------------------------
    def scores(self, image: Image.Image) -> np.ndarray:
        """One score 0…1 per tag of ``selected_tags.csv``."""
        self.load()
        name, width, height = self._input
        session, labels = self._session, self._labels
        result = session.run([self._output], {name: prepare_image(image, width, height)})[0]
        scores = np.asarray(result, dtype=np.float64).reshape(-1)
        if scores.size != len(labels):
            raise DatasetError(msg("wd14.wrong_scores", model=self.folder / MODEL_FILE, size=scores.size,
                                   count=len(labels)),
                               msg("wd14.same_repo.advice", model_file=MODEL_FILE, tags_file=TAGS_FILE))
        scores = np.nan_to_num(scores, nan=0.0, posinf=1.0, neginf=0.0)
        if scores.min() < 0.0 or scores.max() > 1.0:      # a model that answers logits
            scores = 1.0 / (1.0 + np.exp(-np.clip(scores, -60, 60)))
        return scores

    def tag(self, image: Image.Image, options: TagOptions | None = None) -> TagScores:
        """Character tags at least ``character_threshold`` sure, then general tags at least
        ``general_threshold`` sure, each most confident first; the likeliest rating only when asked."""
        options = options or TagOptions()
        scores = self.scores(image)
        categories = self.labels.categories
        character = np.flatnonzero((categories == CHARACTER) & (scores >= options.character_threshold))
        general = np.flatnonzero((categories != CHARACTER) & (categories != RATING)
                                 & (scores >= options.general_threshold))
        chosen = [*sorted(character, key=lambda i: -scores[i]), *sorted(general, key=lambda i: -scores[i])]
        ratings = np.flatnonzero(categories == RATING)
        if options.include_ratings and ratings.size:
            chosen.append(ratings[int(np.argmax(scores[ratings]))])
        names = self.labels.names
        return [(names[i], float(scores[i])) for i in chosen]
