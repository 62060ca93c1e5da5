"""metrics.jsonl + TensorBoard logging; resume appends; a crash-truncated line is tolerated."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from lora_trainer.train.metrics import METRICS_FILE, MetricsLogger, read_metrics


def test_log_and_read_back(tmp_path):
    run = tmp_path / "run 1"
    with MetricsLogger(run) as logger:
        logger.log_step(1, 0, 0.25, {"unet": 1e-4, "text_encoder": 5e-5}, it_per_s=2.5, peak_mem_gb=3.25)
        logger.log_step(2, 0, 0.125, {"unet": 1e-4})
        logger.log_epoch(0, 0.1875, step=2)
        logger.log_event("saved", path=Path("out/ä lora.safetensors"), step=2, size_mb=9.5)
        # each line is on disk as soon as it is logged
        assert len((run / METRICS_FILE).read_text(encoding="utf-8").splitlines()) == 4
    records = read_metrics(run)
    assert [r["type"] for r in records] == ["step", "step", "epoch", "event"]
    first = records[0]
    assert first["step"] == 1 and first["epoch"] == 0 and first["loss"] == 0.25
    assert first["lr/unet"] == 1e-4 and first["lr/text_encoder"] == 5e-5
    assert first["it_per_s"] == 2.5 and first["peak_mem_gb"] == 3.25 and first["time"] > 0
    assert "it_per_s" not in records[1]
    assert records[2]["mean_loss"] == 0.1875 and records[2]["step"] == 2
    assert records[3]["kind"] == "saved" and records[3]["path"] == str(Path("out/ä lora.safetensors"))


def test_non_finite_loss_is_strict_json(tmp_path):
    with MetricsLogger(tmp_path, tensorboard=False) as logger:
        logger.log_step(1, 0, float("nan"), {"unet": 1e-4})
        logger.log_step(2, 0, float("inf"), {"unet": 1e-4})
    for line in (tmp_path / METRICS_FILE).read_text().splitlines():
        json.loads(line, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    assert [r["loss"] for r in read_metrics(tmp_path)] == [None, None]


def test_values_must_be_python_numbers(tmp_path):
    torch = pytest.importorskip("torch")
    with MetricsLogger(tmp_path, tensorboard=False) as logger:
        with pytest.raises(TypeError, match="item"):
            logger.log_step(1, 0, torch.tensor(0.5), {"unet": 1e-4})
        with pytest.raises(TypeError, match="unet"):
            logger.log_step(1, 0, 0.5, {"unet": torch.tensor(1e-4)})
    assert read_metrics(tmp_path) == []


def test_resume_appends_after_truncated_line(tmp_path):
    with MetricsLogger(tmp_path, tensorboard=False) as logger:
        logger.log_step(1, 0, 0.5, {"unet": 1e-4})
        logger.log_step(2, 0, 0.4, {"unet": 1e-4})
    path = tmp_path / METRICS_FILE
    with open(path, "ab") as f:  # a process killed in the middle of a line
        f.write(b'{"time": 1.0, "type": "step", "step": 3, "lo')
    assert [r["step"] for r in read_metrics(tmp_path)] == [1, 2]

    with MetricsLogger(tmp_path, tensorboard=False) as logger:  # resumed run
        logger.log_step(3, 1, 0.3, {"unet": 1e-4})
    assert [r["step"] for r in read_metrics(tmp_path)] == [1, 2, 3]
    assert path.read_bytes().endswith(b"\n")


def test_missing_file_reads_empty(tmp_path):
    assert read_metrics(tmp_path / "nothing here") == []


def test_tensorboard_scalars(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    with MetricsLogger(tmp_path) as logger:
        for step in range(1, 4):
            logger.log_step(step, 0, 1.0 / step, {"unet": 1e-4, "text_encoder": 5e-5}, it_per_s=3.0,
                            peak_mem_gb=1.5)
        logger.log_epoch(1, 0.5, step=3)
    with MetricsLogger(tmp_path) as logger:  # resume: a second event file in the same folder
        logger.log_step(4, 1, 0.2, {"unet": 1e-4})
    assert len(list(tmp_path.glob("events.out.tfevents.*"))) == 2

    acc = EventAccumulator(str(tmp_path))
    acc.Reload()
    assert set(acc.Tags()["scalars"]) == {"loss/current", "lr/unet", "lr/text_encoder", "speed/it_per_s",
                                          "memory/peak_gb", "loss/epoch"}
    loss = acc.Scalars("loss/current")
    assert [e.step for e in loss] == [1, 2, 3, 4]
    assert [e.value for e in loss] == pytest.approx([1.0, 0.5, 1 / 3, 0.2])
    assert [(e.step, e.value) for e in acc.Scalars("loss/epoch")] == [(1, 0.5)]
    assert acc.Scalars("lr/text_encoder")[0].value == pytest.approx(5e-5)
