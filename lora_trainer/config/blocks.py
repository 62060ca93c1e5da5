"""kohya's per-block learning-rate weights and ranks: ``down_lr_weight`` … ``conv_block_alphas``.

The UNet's LoRA layers fall into kohya's blocks: SD1/SD2 have 25 (IN00–IN11, MID, OUT00–OUT11), SDXL
23 (BASE, IN00–IN08, MID00–MID02, OUT00–OUT08, OUT). ``down_lr_weight`` / ``mid_lr_weight`` /
``up_lr_weight`` multiply the UNet's learning rate per block (12 / 1 / 12 values, SDXL 9 / 3 / 9; for
down and up also a curve: ``cosine``, ``sine``, ``linear``, ``reverse_linear`` or ``zeros``, optionally
``+0.5`` added); ``block_dims`` / ``block_alphas`` give every block its rank and alpha, ``conv_block_dims``
/ ``conv_block_alphas`` those of its 3×3 convolutions. A block with weight 0 gets no layers. ``block_plan``
resolves them for a family as kohya's ``networks/lora.py`` does, except that a list longer than the
family's blocks is refused instead of cut. Torch-free.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..errors import ConfigError
from ..text.messages import msg, sentence
from . import messages  # noqa: F401  (registers the sentences)

LR_KEYS = ("down_lr_weight", "mid_lr_weight", "up_lr_weight")
DIM_KEYS = ("block_dims", "block_alphas", "conv_block_dims", "conv_block_alphas")
CURVES = ("cosine", "sine", "linear", "reverse_linear", "zeros")
_LAYOUT = {"sd1": (12, 1, 12), "sdxl": (9, 3, 9)}   # (down, mid, up) lr weights


def layout(family: str) -> str:
    return "sdxl" if family == "sdxl" else "sd1"


def block_names(family: str) -> list[str]:
    """kohya's blocks in order (the index ``lora.targets.block_index`` gives a layer)."""
    if layout(family) == "sdxl":
        return (["BASE"] + [f"IN{i:02d}" for i in range(9)] + [f"MID{i:02d}" for i in range(3)]
                + [f"OUT{i:02d}" for i in range(9)] + ["OUT"])
    return [f"IN{i:02d}" for i in range(12)] + ["MID"] + [f"OUT{i:02d}" for i in range(12)]


def lr_weight_counts(family: str) -> tuple[int, int, int]:
    return _LAYOUT[layout(family)]


def family_of_block_count(count: int) -> str | None:
    return {25: "sd1", 23: "sdxl"}.get(count)


def _curve(name: str, count: int) -> list[float] | None:
    base, _, extra = name.partition("+")
    try:
        offset = float(extra) if extra else 0.0
    except ValueError:
        return None
    steps = [i / (count - 1) for i in range(count)]
    values = {"cosine": [math.sin(math.pi * s / 2) for s in reversed(steps)],
              "sine": [math.sin(math.pi * s / 2) for s in steps], "linear": steps,
              "reverse_linear": list(reversed(steps)), "zeros": [0.0] * count}.get(base.strip())
    return None if values is None else [v + offset for v in values]


def _numbers(name: str, text: str, cast=float) -> list:
    try:
        return [cast(float(part)) if part.strip() else cast(0) for part in text.split(",")]
    except ValueError:
        curves = msg("blocks.or_curves", curves=", ".join(CURVES)) if name in ("down_lr_weight", "up_lr_weight") \
            else ""
        raise ConfigError(msg("blocks.numbers", name=name, text=text, curves=curves)) from None


def _lr_list(name: str, text: str, count: int, notes: list[str]) -> list[float]:
    if name != "mid_lr_weight" and "," not in text:
        try:
            float(text)
        except ValueError:
            curve = _curve(text, count)
            if curve is None:
                raise ConfigError(msg("blocks.not_curve", name=name, text=text, curves=", ".join(CURVES))) from None
            return curve
    values = _numbers(name, text)
    if len(values) > count:
        raise ConfigError(msg("blocks.too_many", name=name, count=len(values), blocks=count),
                          msg("blocks.one_per_block"))
    if len(values) < count:
        notes.append(sentence("blocks.too_few", name=name, count=len(values), blocks=count))
        values += [1.0] * (count - len(values))
    return [v if v > 0 else 0.0 for v in values]


@dataclass
class BlockPlan:
    """Per block (``block_names``): learning-rate weight, rank and alpha; conv ones where 3×3 layers train."""
    family: str
    lr_weights: list[float]
    dims: list[int]
    alphas: list[float]
    conv_dims: list[int] | None = None
    conv_alphas: list[float] | None = None
    notes: list[str] = field(default_factory=list)

    def lr_weight(self, index: int) -> float:
        return self.lr_weights[index] if 0 <= index < len(self.lr_weights) else 1.0

    def rank_alpha(self, index: int, conv3x3: bool, rank: int, alpha: float) -> tuple[int, float]:
        """(rank, alpha) of a layer in block ``index`` (outside kohya's blocks: the network's own)."""
        if not 0 <= index < len(self.dims):
            return rank, alpha
        if conv3x3 and self.conv_dims is not None:
            return self.conv_dims[index], self.conv_alphas[index]
        if conv3x3:
            return (0 if self.dims[index] == 0 else rank), alpha
        return self.dims[index], self.alphas[index]


def has_blocks(settings: dict) -> bool:
    return any(settings.get(k) for k in (*LR_KEYS, *DIM_KEYS))


def check_syntax(settings: dict) -> list[str]:
    """Problems visible without knowing the model: bad numbers, lists that fit neither layout."""
    problems = []
    for key in LR_KEYS:
        text = settings.get(key)
        if not text:
            continue
        fits = []
        for family in ("sd1", "sdxl"):
            try:
                _lr_list(key, text, lr_weight_counts(family)[LR_KEYS.index(key)], [])
                fits.append(family)
            except ConfigError as err:
                error = err.problems[0]
        if not fits:
            problems.append(error)
    for key in DIM_KEYS:
        text = settings.get(key)
        if not text:
            continue
        try:
            values = _numbers(key, text, int if key.endswith("dims") else float)
        except ConfigError as err:
            problems.extend(err.problems)
            continue
        if family_of_block_count(len(values)) is None:
            problems.append(sentence("blocks.count", setting=key, count=len(values)))
        if any(v < 0 for v in values):
            problems.append(sentence("blocks.negative", setting=key))
    if settings.get("conv_block_alphas") and not settings.get("conv_block_dims"):
        problems.append(sentence("blocks.alphas_alone"))
    return problems


def block_plan(settings: dict, family: str, network_dim: int, network_alpha: float) -> BlockPlan | None:
    """The per-block values for ``family``; None when no block setting is made. ConfigError names a list that
    does not fit the family."""
    if not has_blocks(settings):
        return None
    names = block_names(family)
    n = len(names)
    notes: list[str] = []
    counts = lr_weight_counts(family)
    lr_parts = [_lr_list(key, settings[key], counts[i], notes) if settings.get(key) else [1.0] * counts[i]
                for i, key in enumerate(LR_KEYS)]
    lr_weights = lr_parts[0] + lr_parts[1] + lr_parts[2]
    if layout(family) == "sdxl":
        lr_weights = [1.0] + lr_weights + [1.0]

    def values(key: str, default, cast):
        if not settings.get(key):
            return [default] * n
        found = _numbers(key, settings[key], cast)
        if len(found) != n:
            other = family_of_block_count(len(found))
            layouts = {"sdxl": "SDXL"}
            raise ConfigError(msg("blocks.layout", setting=key, count=len(found), layout=layouts.get(other, "SD1/SD2"),
                                  model="SDXL" if n == 23 else "SD1/SD2", blocks=n)
                              if other else msg("blocks.model", setting=key, count=len(found), blocks=n),
                              msg("blocks.one_per_block"))
        return found

    dims = values("block_dims", int(network_dim), int)
    alphas = values("block_alphas", float(network_alpha), float)
    conv_dims = conv_alphas = None
    if settings.get("conv_block_dims"):
        conv_dims = values("conv_block_dims", 0, int)
        conv_alpha = settings.get("conv_alpha")
        conv_alphas = values("conv_block_alphas", float(conv_alpha if conv_alpha is not None else 1.0), float)
    elif settings.get("conv_dim"):
        conv_dims = [int(settings["conv_dim"])] * n
        conv_alphas = [float(settings["conv_alpha"])] * n
    for i, weight in enumerate(lr_weights):
        if weight == 0:
            dims[i] = 0
            if conv_dims is not None:
                conv_dims[i] = 0
    return BlockPlan(layout(family), lr_weights, dims, alphas, conv_dims, conv_alphas, notes)
