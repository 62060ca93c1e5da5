"""Numeric helpers for a noisy loss curve: binning, robust smoothing and noise, a continuous
three-piece linear fit, and the swings of an oscillating series. numpy only."""
from __future__ import annotations

import math

import numpy as np


def bin_curve(steps: np.ndarray, losses: np.ndarray, max_points: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean step and mean loss of up to ``max_points`` contiguous groups."""
    if len(steps) <= max_points:
        return steps.astype(float), losses.astype(float)
    groups = np.array_split(np.arange(len(steps)), max_points)
    return (np.array([steps[g].mean() for g in groups]), np.array([losses[g].mean() for g in groups]))


def _rolling(values: np.ndarray, window: int, fn) -> np.ndarray:
    half = window // 2
    return np.array([fn(values[max(0, i - half): i + half + 1]) for i in range(len(values))])


def smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Rolling median (drops single spikes) then rolling mean (evens the rest); edges shrink."""
    return _rolling(_rolling(values, window, np.median), window, np.mean)


def noise_sigma(values: np.ndarray) -> float:
    """Point-to-point noise of a series, robust to its trend: MAD of the differences / √2."""
    if len(values) < 3:
        return 0.0
    diffs = np.diff(values)
    return float(1.4826 * np.median(np.abs(diffs - np.median(diffs))) / math.sqrt(2))


def _hinge_fit(x: np.ndarray, y: np.ndarray, b1: float, b2: float) -> tuple[float, np.ndarray]:
    basis = np.stack([np.ones_like(x), x, np.maximum(0, x - b1), np.maximum(0, x - b2)], axis=1)
    coef, *_ = np.linalg.lstsq(basis, y, rcond=None)
    fitted = basis @ coef
    return float(((y - fitted) ** 2).sum()), fitted


def fit_three_pieces(x: np.ndarray, y: np.ndarray) -> tuple[float, float, np.ndarray]:
    """Knots (b1, b2) of the least-squares continuous three-piece line through (x, y), x in [0, 1]."""
    m = len(x)
    min_gap = max(2, m // 20)
    grid = np.unique(np.linspace(min_gap, m - 1 - min_gap, min(40, m)).astype(int))
    best = (math.inf, 0, 0)
    for i, a in enumerate(grid):
        for b in grid[i + 1:]:
            if b - a < min_gap:
                continue
            sse, _ = _hinge_fit(x, y, x[a], x[b])
            if sse < best[0]:
                best = (sse, a, b)
    _, a0, b0 = best
    if a0 == b0 == 0:
        return float(x[m // 3]), float(x[2 * m // 3]), _hinge_fit(x, y, x[m // 3], x[2 * m // 3])[1]
    spacing = max(1, int(grid[1] - grid[0]) if len(grid) > 1 else 1)
    for a in range(max(1, a0 - spacing), min(m - 2, a0 + spacing) + 1):  # refine at full resolution
        for b in range(max(a + min_gap, b0 - spacing), min(m - 2, b0 + spacing) + 1):
            sse, _ = _hinge_fit(x, y, x[a], x[b])
            if sse < best[0]:
                best = (sse, a, b)
    _, a, b = best
    return float(x[a]), float(x[b]), _hinge_fit(x, y, x[a], x[b])[1]


def zigzag_rises(values: np.ndarray, threshold: float) -> list[tuple[int, float]]:
    """(index of the low point, size) of every rise larger than ``threshold`` that is followed by a fall
    larger than ``threshold``: the swings of an oscillating curve."""
    swings: list[tuple[int, float]] = []
    low_i, direction = 0, 0   # direction: -1 falling (tracking a low), +1 rising
    low, high = values[0], values[0]
    for i, v in enumerate(values[1:], start=1):
        if direction <= 0:
            if v < low:
                low, low_i = v, i
            elif v - low > threshold:
                direction, high = 1, v
        else:
            if v > high:
                high = v
            elif high - v > threshold:
                swings.append((low_i, float(high - low)))
                direction, low, low_i = -1, v, i
    return swings
