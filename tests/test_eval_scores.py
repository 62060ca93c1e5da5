"""Grid scores on synthetic images (uniform, black, NaN, noise, near-copies) and the recommendation."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from lora_trainer.evaluate.loss_analysis import Candidate, LossAnalysis
from lora_trainer.evaluate.recommend import group_scores, recommend, suggest_grid
from lora_trainer.evaluate.runs import RunFile, RunInfo
from lora_trainer.evaluate.scores import (GridCell, References, broken_score, effect_size, psnr, score_cells, ssim,
                                          thumbnail, to_array)


def scene(seed: int, size=(256, 256), shift: int = 0) -> Image.Image:
    """A picture-like image: a background colour and a few ellipses (smooth, structured)."""
    r = np.random.default_rng(seed)
    img = Image.new("RGB", size, tuple(int(v) for v in r.integers(60, 200, 3)))
    draw = ImageDraw.Draw(img)
    for _ in range(8):
        x0, y0 = int(r.integers(0, size[0] - 40)) + shift, int(r.integers(0, size[1] - 40))
        draw.ellipse([x0, y0, x0 + int(r.integers(20, 120)), y0 + int(r.integers(20, 120))],
                     fill=tuple(int(v) for v in r.integers(0, 255, 3)))
    return img


def noisy(img: Image.Image, sigma: float, seed: int = 0) -> np.ndarray:
    arr = to_array(img)
    return np.clip(arr + np.random.default_rng(seed).normal(0, sigma, arr.shape), 0, 1)


@pytest.mark.parametrize("name,image,reason", [
    ("black", Image.new("RGB", (128, 128)), "score.broken.black"),
    ("nan", np.full((64, 64, 3), np.nan), "score.broken.black"),
    ("grey", Image.new("RGB", (512, 512), (120, 130, 140)), "score.broken.uniform"),
    ("noise", Image.fromarray(np.random.default_rng(0).integers(0, 256, (256, 256, 3), dtype=np.uint8)),
     "score.broken.noise"),
    ("black and white halves", np.concatenate([np.zeros((128, 64, 3)), np.ones((128, 64, 3))], axis=1),
     "score.broken.contrast"),
])
def test_broken_images_are_caught(name, image, reason):
    result = broken_score(image)
    assert result.broken and result.score == pytest.approx(1.0)
    assert reason in result.reasons, result


def test_ordinary_pictures_are_not_broken():
    for seed in range(5):
        assert broken_score(scene(seed)).score == 0.0
    # a drawing on a pure white background (the tutorials' advice for characters) is fine
    white = Image.new("RGB", (256, 256), (255, 255, 255))
    ImageDraw.Draw(white).ellipse([60, 40, 200, 230], fill=(230, 120, 90), outline=(0, 0, 0), width=4)
    assert not broken_score(white).broken


def test_ssim_and_psnr():
    a = thumbnail(scene(1))
    assert ssim(a, a) == pytest.approx(1.0) and psnr(a, a) == 100.0
    b = thumbnail(scene(2))
    assert ssim(a, b) < 0.6 and psnr(a, b) < 15
    near = thumbnail(noisy(scene(1), 0.03))
    assert ssim(a, near) > 0.9 and psnr(a, near) > 30


def test_nearest_training_image_and_overfit_flag():
    refs = References([scene(i) for i in range(5)], names=[f"{i}.png" for i in range(5)])
    copy = refs.nearest(noisy(scene(3), 0.03))
    assert copy.index == 3 and copy.name == "3.png" and copy.overfit
    other = refs.nearest(scene(42))
    assert not other.overfit and other.ssim < 0.75
    # a cell of another shape is compared with the training images cropped to that shape
    wide = refs.nearest(scene(3, size=(256, 256)).crop((0, 64, 256, 192)))
    assert wide.index == 3


def test_references_from_files(tmp_path):
    paths = []
    for i in range(3):
        path = tmp_path / f"训练 {i}.png"
        scene(i, size=(600, 400)).save(path)
        paths.append(path)
    refs = References.from_paths(paths)
    assert refs.names == ["训练 0.png", "训练 1.png", "训练 2.png"]
    assert max(refs.arrays[0].shape[:2]) == 256  # shrunk on load
    assert refs.nearest(scene(1, size=(600, 400))).index == 1


def test_effect_size_grows_with_the_change():
    base = scene(1)
    assert effect_size(base, base) == 0.0
    small = effect_size(noisy(base, 0.02), base)
    large = effect_size(scene(7), base)
    assert 0 < small < 0.1 < large <= 1.0


def _grid(epochs=(1, 2, 3, 4), weights=(0.0, 0.4, 0.6, 0.8, 1.0)):
    """A synthetic grid: epoch 1 barely changes the picture, epoch 4 at weight 1 copies a training image,
    epoch 2 at 0.4 is black; epochs 2–3 otherwise change the picture clearly."""
    training = [scene(100 + i) for i in range(3)]
    cells = []
    for e in epochs:
        for w in weights:
            for prompt in range(2):
                base = scene(prompt)
                if w == 0:
                    img = base
                elif e == 1:
                    img = noisy(base, 0.01, seed=int(w * 10))
                elif e == 2 and w == 0.4:
                    img = Image.new("RGB", (256, 256))
                elif e == 4 and w == 1.0:
                    img = noisy(training[prompt], 0.02)
                else:
                    img = scene(1000 + 10 * e + prompt + int(w * 100))
                cells.append(GridCell(img, w, epoch=e, stem=f"run-{e:06d}", prompt=prompt))
    return cells, References(training, names=["a.png", "b.png", "c.png"])


def test_group_verdicts():
    cells, refs = _grid()
    groups = {(g.epoch, g.weight): g for g in group_scores(score_cells(cells, refs))}
    assert groups[(1, 0.0)].verdict == "baseline"
    assert all(groups[(1, w)].verdict == "weak" for w in (0.4, 0.6, 0.8, 1.0))
    assert groups[(2, 0.4)].verdict == "broken" and groups[(2, 0.4)].broken_reasons == ["score.broken.black"]
    assert groups[(4, 1.0)].verdict == "overfit" and groups[(4, 1.0)].nearest in ("a.png", "b.png")
    assert groups[(3, 0.6)].verdict == "good" and groups[(3, 0.6)].effect > 0.2


def test_recommendation_prefers_the_epoch_good_at_most_weights_and_weight_06():
    cells, refs = _grid()
    rec = recommend(score_cells(cells, refs))
    assert rec.epoch == 3 and rec.key == "run-000003" and rec.weight == 0.6
    keys = [m.key for m in rec.reasons]
    assert keys[:3] == ["rec.choice", "rec.robust", "rec.weight_preferred"]
    assert {"rec.weak", "rec.broken", "rec.overfit"} <= set(keys) and keys[-1] == "rec.user_decides"
    text = " ".join(rec.sentences())
    assert "epoch 3 at weight 0.6" in text and "epoch 1 (w 0.4, 0.6, 0.8, 1)" in text
    assert "black or NaN image" in text


def test_loss_candidates_break_ties():
    cells, refs = _grid(epochs=(2, 3), weights=(0.0, 0.6, 0.8))
    loss = LossAnalysis(candidates=[Candidate(2, 200, 0.08, "run-000002"), Candidate(3, 300, 0.09, "run-000003")])
    rec = recommend(score_cells(cells, refs), loss)
    assert rec.epoch == 2 and "rec.loss_candidate" in [m.key for m in rec.reasons]


def test_nothing_good_says_so():
    cells = [GridCell(Image.new("RGB", (64, 64)), w, epoch=1, stem="x-000001") for w in (0.5, 1.0)]
    rec = recommend(score_cells(cells))
    assert rec.epoch is None and rec.weight is None
    assert [m.key for m in rec.reasons][0] == "rec.none"


def test_fallback_weight_when_06_is_not_good():
    cells = [GridCell(scene(5 + i), w, epoch=2, stem="x-000002") for i, w in enumerate((0.7, 0.9))]
    cells += [GridCell(Image.new("RGB", (64, 64)), 0.6, epoch=2, stem="x-000002")]
    rec = recommend(score_cells(cells))
    assert rec.weight == 0.7 and "rec.weight_fallback" in [m.key for m in rec.reasons]


def test_suggest_grid_uses_loss_candidates_or_the_later_epochs(tmp_path):
    files = [RunFile(str(tmp_path / f"r-{e:06d}.safetensors"), f"r-{e:06d}", "epoch", e) for e in range(1, 11)]
    files.append(RunFile(str(tmp_path / "r.safetensors"), "r", "final", 10))
    run = RunInfo("r", str(tmp_path), files)
    plan = suggest_grid(run)
    assert plan.epochs == [f"r-{e:06d}" for e in range(5, 11)] + ["r"]
    assert plan.weight_text == "0.5, 0.6, 0.7, 0.8, 0.9, 1"
    loss = LossAnalysis(candidates=[Candidate(e, e * 10, 0.1 - e / 100, f"r-{e:06d}") for e in (3, 4, 6)])
    assert suggest_grid(run, loss).epochs == ["r-000003", "r-000004", "r-000006", "r"]
