"""Loss analysis on synthetic curves whose plateau, drops and divergence are known (torch-free)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from lora_trainer.evaluate.loss_analysis import analyze_losses, band_check
from lora_trainer.evaluate.messages import TEMPLATES, Message


def curve(n: int, points: list[tuple[int, float]], noise: float, seed: int = 0) -> tuple[list[int], list[float]]:
    """Piecewise-linear loss through ``points`` plus Gaussian noise, steps 1…n."""
    steps = np.arange(1, n + 1)
    base = np.interp(steps, [p[0] for p in points], [p[1] for p in points])
    return steps.tolist(), (base + np.random.default_rng(seed).normal(0, noise, n)).tolist()


def epochs_of(steps, losses, per_epoch):
    out = []
    for e in range(1, len(steps) // per_epoch + 1):
        chunk = losses[(e - 1) * per_epoch: e * per_epoch]
        out.append((e, e * per_epoch, float(np.mean(chunk))))
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_three_phases_and_the_plateau_step(seed):
    steps, losses = curve(3000, [(1, 0.20), (500, 0.10), (2000, 0.07), (3000, 0.07)], noise=0.01, seed=seed)
    saved = [(e, e * 300, f"run-{e:06d}") for e in range(1, 11)]
    a = analyze_losses(steps, losses, epochs=epochs_of(steps, losses, 300), saved=saved, kind="character")
    assert [p.kind for p in a.phases] == ["steep", "slow", "plateau"]
    assert abs(a.phases[0].end_step - 500) <= 100
    assert abs(a.plateau_step - 2000) <= 150
    assert a.inflections == [] and a.divergence == [] and not a.flat
    # candidates: saved epochs up to the plateau (epoch 7 = step 2100 may be within its slack), lowest loss first
    assert set(range(1, 7)) <= {c.epoch for c in a.candidates} <= set(range(1, 8))
    assert [c.loss for c in a.candidates] == sorted(c.loss for c in a.candidates)
    assert a.candidates[-1].epoch == 1 and a.candidates[0].stem == f"run-{a.candidates[0].epoch:06d}"
    assert a.band.status in ("inside", "below") and a.band.rule_of_thumb
    keys = [m.key for m in a.messages]
    assert keys[:3] == ["loss.steep", "loss.slow", "loss.plateau"] and "loss.candidates" in keys


def test_tutorial_curve_two_large_drops_then_near_zero():
    # the tutorial's picture: a big drop near 5K and another near 20K, flat and near zero after
    steps, losses = curve(30000, [(1, 0.075), (4800, 0.065), (5200, 0.040), (19800, 0.032), (20200, 0.012),
                                  (30000, 0.010)], noise=0.01)
    saved = [(e, e * 3000, None) for e in range(1, 11)]
    a = analyze_losses(steps, losses, saved=saved, kind="style")
    assert len(a.inflections) == 2
    assert abs(a.inflections[0].step - 5000) <= 600 and abs(a.inflections[1].step - 20000) <= 600
    assert all(i.drop > 0.015 for i in a.inflections)
    assert abs(a.plateau_step - 20200) <= 900
    assert abs(a.near_zero_step - 20000) <= 900
    assert a.band.status == "below"
    # epochs after the near-zero point are no candidates
    assert {c.epoch for c in a.candidates} == set(range(1, 7))


def test_exponential_decay_flattens_where_little_fall_is_left():
    steps = np.arange(1, 2001)
    base = 0.05 + 0.1 * np.exp(-steps / 200)
    losses = base + np.random.default_rng(3).normal(0, 0.02, len(steps))
    a = analyze_losses(steps.tolist(), losses.tolist())
    assert a.phases[0].kind == "steep" and a.phases[-1].kind == "plateau"
    # by the plateau less than ~5% of the fall is left (exp(-3) ≈ 0.05 at step 600)
    assert 400 <= a.plateau_step <= 900
    assert not a.inflections and not a.divergence


def test_still_falling_has_no_plateau_and_all_epochs_are_candidates():
    steps, losses = curve(2000, [(1, 0.15), (2000, 0.08)], noise=0.005)
    saved = [(e, e * 200, None) for e in range(1, 11)]
    a = analyze_losses(steps, losses, saved=saved)
    assert a.plateau_step is None
    assert "loss.no_plateau" in [m.key for m in a.messages]
    assert len(a.candidates) == 10 and a.candidates[0].epoch == 10


def test_nan_cuts_the_curve_and_the_epochs_after_it():
    steps, losses = curve(1000, [(1, 0.15), (1000, 0.09)], noise=0.005)
    losses[700:] = [math.nan] * 300
    saved = [(e, e * 100, None) for e in range(1, 11)]
    a = analyze_losses(steps, losses, saved=saved)
    nan = a.divergence_of("nan")
    assert nan is not None and nan.step == 701
    assert max(c.epoch for c in a.candidates) == 7
    assert "loss.nan" in [m.key for m in a.messages]
    # a None (how metrics.jsonl stores NaN) and a NaN step from the log work the same
    a2 = analyze_losses(steps[:700], losses[:700], nan_step=701)
    assert a2.divergence_of("nan").step == 701


def test_rising_after_the_lowest_point_is_divergence():
    steps, losses = curve(2000, [(1, 0.15), (800, 0.08), (2000, 0.14)], noise=0.01)
    a = analyze_losses(steps, losses, saved=[(e, e * 200, None) for e in range(1, 11)])
    rising = a.divergence_of("rising")
    assert rising is not None and abs(rising.step - 800) <= 150 and rising.amount > 0.04
    assert a.plateau_step is None and not a.inflections  # the descent of a V is no large drop
    assert max(c.epoch for c in a.candidates) <= 4


def test_oscillation_is_divergence_not_inflections():
    steps = np.arange(1, 2001)
    base = 0.1 + 0.03 * np.sin(steps / 2000 * 2 * np.pi * 5)
    losses = base + np.random.default_rng(0).normal(0, 0.01, len(steps))
    a = analyze_losses(steps.tolist(), losses.tolist())
    osc = a.divergence_of("oscillating")
    assert osc is not None and 0.015 < osc.amount < 0.045
    assert a.inflections == []
    assert "loss.oscillating" in [m.key for m in a.messages]


def test_flat_curve_is_reported_as_not_learning():
    rng = np.random.default_rng(0)
    a = analyze_losses(list(range(1, 2001)), (0.4 + rng.normal(0, 0.05, 2000)).tolist(), kind="character")
    assert a.flat and a.phases[0].kind == "plateau"
    assert a.band.status == "above"
    assert [m.key for m in a.messages][:1] == ["loss.flat"]


@pytest.mark.parametrize("seed", range(4))
def test_heavy_timestep_noise_gives_no_false_alarms(seed):
    # per-step diffusion losses are heavy-tailed; a gentle fall must not look like drops or divergence
    rng = np.random.default_rng(seed)
    steps = np.arange(1, 5001)
    mean = 0.09 + 0.03 * np.exp(-steps / 800)
    losses = mean * rng.lognormal(0, 0.8, len(steps)) / math.exp(0.32)
    a = analyze_losses(steps.tolist(), losses.tolist())
    assert a.inflections == []
    assert a.divergence_of("oscillating") is None


def test_held_out_validation_that_rises_marks_over_fitting():
    steps, losses = curve(3000, [(1, 0.20), (3000, 0.08)], noise=0.005)     # training loss keeps falling
    saved = [(e, e * 300, None) for e in range(1, 11)]
    validation = [(e, e * 300, 0.15 - 0.01 * e + (0.015 * (e - 5) if e > 5 else 0)) for e in range(1, 11)]
    a = analyze_losses(steps, losses, saved=saved, validation=validation)
    assert a.validation_best == 5 and a.validation_rising
    assert max(c.epoch for c in a.candidates) == 6
    assert "loss.val_rising" in [m.key for m in a.messages]
    falling = analyze_losses(steps, losses, saved=saved, validation=[(e, e * 300, 0.2 - e / 100) for e in range(1, 11)])
    assert falling.validation_best == 10 and not falling.validation_rising and len(falling.candidates) == 10


def test_short_and_empty_logs():
    a = analyze_losses([1, 2, 3], [0.1, 0.09, 0.08], kind="character")
    assert [m.key for m in a.messages][0] == "loss.few_points" and a.final_loss == pytest.approx(0.09)
    empty = analyze_losses([], [])
    assert [m.key for m in empty.messages] == ["loss.no_data"] and empty.final_loss is None


def test_the_final_loss_is_the_last_epoch_mean_the_rest_of_the_tab_shows():
    steps, losses = curve(60, [(1, 1.2), (60, 1.0)], noise=0.05)
    epochs = epochs_of(steps, losses, 30)
    a = analyze_losses(steps, losses, epochs=epochs, kind="character")
    assert a.final_loss == epochs[-1][2]
    assert f"Final loss {epochs[-1][2]:.4f}" in " ".join(str(m) for m in a.messages)
    # after a NaN, the last epoch whose mean is from before it
    broken = analyze_losses(steps, losses[:45] + [float("nan")] * 15, epochs=epochs[:1] + [(2, 60, float("nan"))])
    assert broken.final_loss == epochs[0][2]


def test_band_check_per_kind():
    assert band_check(0.08, "character").status == "inside"
    assert band_check(0.10, "character").status == "above"
    assert band_check(0.10, "style").status == "inside"
    assert band_check(0.05, "style").status == "below"
    assert band_check(0.05, "concept").status == "none"
    assert band_check(0.08, "character", min_snr_gamma=5).weighted


def test_messages_are_templates_with_stable_keys():
    steps, losses = curve(3000, [(1, 0.20), (500, 0.10), (2000, 0.07), (3000, 0.07)], noise=0.01)
    a = analyze_losses(steps, losses, kind="character", min_snr_gamma=5.0)
    assert all(m.key in TEMPLATES for m in a.messages)
    english = a.sentences()
    assert any("flattens out from step" in s for s in english)
    assert any("min-SNR" in s for s in english)
    # a tab localizes by key with the same parameters; a missing key falls back to English
    zh = {"loss.plateau": "损失从第 {step} 步起趋于平稳(约 {loss:.4f})。"}
    localized = a.sentences(zh)
    assert any(s.startswith("损失从第") for s in localized) and len(localized) == len(english)
    assert Message("loss.nan", {"step": 5}).to_dict()["text"].startswith("The loss became NaN")


def test_chart_marks_candidates_plateau_drops_nan_and_validation():
    from xml.etree import ElementTree

    from lora_trainer.evaluate.loss_chart import loss_chart_svg

    steps, losses = curve(3000, [(1, 0.20), (500, 0.10), (2000, 0.07), (3000, 0.07)], noise=0.01)
    saved = [(e, e * 300, None) for e in range(1, 11)]
    a = analyze_losses(steps, losses, saved=saved)
    html = loss_chart_svg(a, validation=[(e, e * 300, 0.2 - e / 200 + (e > 6) * (e - 6) / 50) for e in range(1, 11)],
                          labels={"candidate": "候选 <epoch>"})
    svg = ElementTree.fromstring(html[html.index("<svg"): html.index("</svg>") + 6])   # well-formed XML
    ns = "{http://www.w3.org/2000/svg}"
    candidates = [c for c in svg.iter(f"{ns}circle") if c.get("class") == "lt-cand"]
    assert len(candidates) == len(a.candidates) >= 6
    assert any(line.get("class") == "lt-plateau" for line in svg.iter(f"{ns}line"))
    assert [p.get("class") for p in svg.iter(f"{ns}polyline")] == ["lt-raw", "lt-smooth", "lt-val"]
    assert "候选 &lt;epoch&gt;" in html and "validation loss" in html
    drops = analyze_losses(*curve(30000, [(1, 0.075), (4800, 0.065), (5200, 0.040), (19800, 0.032),
                                          (20200, 0.012), (30000, 0.010)], noise=0.01))
    assert loss_chart_svg(drops).count('class="lt-drop"') == 2
    nan_steps, nan_losses = curve(1000, [(1, 0.15), (1000, 0.09)], noise=0.005)
    assert 'class="lt-nan"' in loss_chart_svg(analyze_losses(nan_steps, nan_losses[:600] + [math.nan] * 400))
    assert loss_chart_svg(analyze_losses([], [])) == ""


def test_chart_ticks_cover_the_values_and_read_differently():
    from lora_trainer.evaluate.loss_chart import nice_ticks, tick_label

    for low, high in ((1.02, 1.05), (1.171, 1.189), (0.07, 0.16), (0.0, 1000.0), (0.1181, 0.1183)):
        ticks = nice_ticks(low, high)
        assert ticks[0] <= low and ticks[-1] >= high, (low, high, ticks)
        labels = [tick_label(t, ticks) for t in ticks]
        assert len(set(labels)) == len(labels), labels
