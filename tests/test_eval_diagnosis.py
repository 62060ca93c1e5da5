"""Diagnosis: the tutorial's symptom table and the rules checked from the run's own numbers."""
from __future__ import annotations

import json

import numpy as np

from lora_trainer.evaluate.diagnosis import SYMPTOMS, diagnose, diagnosis_table, table
from lora_trainer.evaluate.loss_analysis import analyze_losses
from lora_trainer.evaluate.messages import TEMPLATES
from lora_trainer.evaluate.recommend import GroupStats
from lora_trainer.evaluate.summary import summary_from_metadata

GOOD = {"ss_num_train_images": "30", "ss_num_epochs": "10", "ss_steps": "3000", "ss_unet_lr": "0.0001",
        "ss_text_encoder_lr": "0.00005", "ss_optimizer": "AdamW8bit", "ss_resolution": "(512, 512)",
        "ss_tag_frequency": json.dumps({"10_dreamgirl": {"dreamgirl": 30, "smile": 10, "outdoors": 6}})}


def keys(findings):
    return {f.key for f in findings}


def test_the_tutorial_table():
    rows = table()
    assert [r.symptom for r in rows] == list(SYMPTOMS)
    broken = rows[0]
    assert "Low-quality or low-resolution" in str(broken.cause) and "too few training steps" in str(broken.cause)
    assert "Under-fitting" in str(rows[1].cause) and "Over-fitting" in str(rows[2].cause)
    assert "varied images" in str(rows[2].advice)


def test_a_healthy_run_has_no_findings():
    assert diagnose(summary_from_metadata(GOOD), kind="character") == []


def test_data_rules_carry_their_numbers():
    few = summary_from_metadata({**GOOD, "ss_num_train_images": "8", "ss_num_epochs": "2", "ss_steps": "160"})
    found = {f.key: f for f in diagnose(few, kind="character")}
    assert set(found) == {"few_images", "few_repeats", "few_steps"}
    assert str(found["few_images"].message) == "8 training images for a character: the tutorials suggest 20–50."
    assert found["few_repeats"].message.params == {"seen": 20, "repeats": 10, "epochs": 2, "low": 30}
    assert found["few_steps"].symptom == "broken" and found["few_images"].symptom == "weak"
    assert all(f.rule_of_thumb for f in found.values())
    many = summary_from_metadata({**GOOD, "ss_num_train_images": "120", "ss_num_epochs": "60"})
    found = {f.key: f for f in diagnose(many, kind="character")}
    assert {"many_images", "many_repeats"} <= set(found) and found["many_repeats"].message.params["seen"] == 600
    # the image-count band is for characters only
    assert "many_images" not in keys(diagnose(many, kind="style"))


def test_learning_rate_rules():
    assert keys(diagnose(summary_from_metadata({**GOOD, "ss_unet_lr": "0.002"}))) == {"lr_high"}
    low = {**GOOD, "ss_unet_lr": "0.000001", "ss_text_encoder_lr": "0.000001"}
    assert keys(diagnose(summary_from_metadata(low))) == {"lr_low"}
    prodigy = diagnose(summary_from_metadata({**GOOD, "ss_optimizer": "Prodigy", "ss_unet_lr": "0.0001",
                                              "ss_text_encoder_lr": "0.0001"}))
    assert keys(prodigy) == {"lr_adaptive"} and prodigy[0].severity == "problem"
    te = diagnose(summary_from_metadata({**GOOD, "ss_text_encoder_lr": "0.0003"}))
    assert keys(te) == {"te_lr_high"} and te[0].symptom == "rigid"


def test_loss_rules_nan_divergence_band_and_early_plateau():
    s = summary_from_metadata(GOOD)
    steps = list(range(1, 1001))
    nan = analyze_losses(steps, [0.1] * 500 + [float("nan")] * 500)
    found = {f.key: f for f in diagnose(s, nan)}
    assert "nan" in found and found["nan"].message.params["step"] == 501
    assert "0.0001" in str(found["nan"].advice) and found["nan"].severity == "problem"
    base = np.interp(steps, [1, 300, 1000], [0.15, 0.08, 0.15])
    rising = analyze_losses(steps, (base + np.random.default_rng(0).normal(0, 0.005, 1000)).tolist())
    assert "rising" in keys(diagnose(s, rising))
    base = np.interp(steps, [1, 200, 1000], [0.2, 0.05, 0.05])
    early = analyze_losses(steps, (base + np.random.default_rng(0).normal(0, 0.004, 1000)).tolist(), kind="character")
    found = keys(diagnose(s, early, kind="character"))
    assert {"early_plateau", "loss_low"} <= found
    high = analyze_losses(steps, (0.2 + np.random.default_rng(1).normal(0, 0.01, 1000)).tolist(), kind="character")
    assert "loss_high" in keys(diagnose(s, high, kind="character"))


def test_caption_and_image_size_rules():
    fixed = summary_from_metadata({**GOOD, "ss_tag_frequency": json.dumps(
        {"10_dreamgirl": {"dreamgirl": 30, "red hair": 30, "blue eyes": 30, "smile": 3}})})
    found = {f.key: f for f in diagnose(fixed)}
    assert set(found) == {"fixed_tags"} and found["fixed_tags"].message.params["tags"] == "blue eyes, red hair"
    s = summary_from_metadata(GOOD)
    small = diagnose(s, image_sizes=[(512, 512)] * 20 + [(256, 300)] * 5)
    assert keys(small) == {"small_images"} and small[0].message.params["smallest"] == "256x300"
    assert diagnose(s, image_sizes=[(512, 512)] * 20 + [(256, 300)]) == []  # one small image is fine


def test_grid_scores_feed_the_table():
    groups = [GroupStats("x-000001", 1, w, 2, 0.0, 0.0, 0.01, None, None, None, verdict="weak") for w in (0.6, 0.8)]
    groups += [GroupStats("x-000005", 5, 1.0, 2, 1.0, 0.0, 0.5, None, None, None, verdict="broken")]
    findings = diagnose(summary_from_metadata(GOOD), groups=groups)
    assert keys(findings) == {"scores_weak", "scores_broken"}
    rows = diagnosis_table(findings, ["weak", "rigid"])
    assert [r.symptom for r in rows] == ["weak", "rigid"]
    assert [f.key for f in rows[0].findings] == ["scores_weak"] and rows[1].findings == []
    assert str(rows[0].findings[0].message) == "4 of 6 grid images show little effect of the LoRA."


def test_every_message_and_advice_has_a_template():
    s = summary_from_metadata({**GOOD, "ss_num_train_images": "3", "ss_unet_lr": "0.01", "ss_steps": "10"})
    loss = analyze_losses(list(range(1, 101)), [0.1] * 50 + [float("nan")] * 50)
    for f in diagnose(s, loss, kind="character", image_sizes=[(64, 64)] * 3):
        assert f.message.key in TEMPLATES and str(f.message)
        assert f.advice is None or (f.advice.key in TEMPLATES and str(f.advice))
