"""Finding runs (our log, kohya folders), epoch values, metadata summaries and loss logs (torch-free)."""
from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest

from lora_trainer.errors import TrainerError
from lora_trainer.evaluate.loss_analysis import analyze_run
from lora_trainer.evaluate.run_log import read_loss_log
from lora_trainer.evaluate.runs import (classify_stem, find_runs, open_run, resolve_epoch_value, resolve_epoch_values,
                                        split_epoch_values)
from lora_trainer.io.safetensors_header import encode_header, read_header, read_metadata
from lora_trainer.evaluate.summary import guess_trigger_words, summary_from_metadata
from lora_trainer.evaluate.tb_reader import read_scalars
from lora_trainer.io.tb_events import EventFileWriter, _key, _length_delimited, encode_event, tfrecord
from lora_trainer.train.metrics import MetricsLogger

META = {
    "ss_output_name": "dreamgirl", "ss_base_model_version": "sdxl_base_v1-0", "ss_sd_model_name": "base xl",
    "ss_network_dim": "16", "ss_network_alpha": "8", "ss_learning_rate": "0.0001", "ss_unet_lr": "0.0001",
    "ss_text_encoder_lr": "5e-05", "ss_optimizer": "AdamW8bit", "ss_lr_scheduler": "cosine",
    "ss_resolution": "(1024, 1024)", "ss_batch_size_per_device": "2", "ss_num_epochs": "10", "ss_epoch": "3",
    "ss_steps": "300", "ss_num_train_images": "24", "ss_num_reg_images": "0", "ss_min_snr_gamma": "5",
    "ss_tag_frequency": json.dumps({"10_dream girl": {"dreamgirl": 24, "1girl": 24, "smile": 5}}),
}


def write_lora(path: Path, metadata: dict | None = None, tensors: int = 2) -> Path:
    """A small valid .safetensors file written by hand (no torch needed)."""
    header: dict = {"__metadata__": dict(metadata or {})}
    data = b""
    for i in range(tensors):
        raw = np.full(4, i, dtype="<f4").tobytes()
        header[f"lora_unet_block_{i}.alpha"] = {"dtype": "F32", "shape": [4], "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode_header(header) + data)
    return path


def kohya_folder(root: Path, name="dreamgirl", epochs=(1, 2, 3), final=True) -> Path:
    for e in epochs:
        write_lora(root / f"{name}-{e:06d}.safetensors", {**META, "ss_epoch": str(e), "ss_steps": str(e * 100)})
    if final:
        write_lora(root / f"{name}.safetensors", {**META, "ss_epoch": str(max(epochs)), "ss_steps": "300"})
    return root


def our_run(root: Path, name="测试 lora", epochs=(2, 4), steps_per_epoch=50) -> Path:
    """A run as our trainer leaves it: files in root, the log in root/logs/<name>-<time>/."""
    log_dir = root / "logs" / f"{name}-20250101-120000"
    rng = np.random.default_rng(0)
    with MetricsLogger(log_dir) as logger:
        step = 0
        for epoch in range(1, max(epochs) + 1):
            losses = []
            for _ in range(steps_per_epoch):
                step += 1
                loss = 0.08 + 0.1 * np.exp(-step / 40) + rng.normal(0, 0.005)
                losses.append(loss)
                logger.log_step(step, epoch, float(loss), {"unet": 1e-4})
            logger.log_epoch(epoch, float(np.mean(losses)), step)
            if epoch in epochs:
                path = write_lora(root / f"{name}-{epoch:06d}.safetensors", {**META, "ss_output_name": name})
                logger.log_event("file_saved", path=str(path), epoch=epoch, step=step, file_kind="epoch")
        path = write_lora(root / f"{name}.safetensors", {**META, "ss_output_name": name})
        logger.log_event("file_saved", path=str(path), epoch=max(epochs), step=step, file_kind="final")
    return log_dir


# --- safetensors header --------------------------------------------------------------------------

def test_header_roundtrip_and_damaged_files(tmp_path):
    path = write_lora(tmp_path / "a.safetensors", {"ss_output_name": "a"}, tensors=3)
    header, start = read_header(path)
    assert len([k for k in header if k != "__metadata__"]) == 3 and start % 8 == 0
    assert read_metadata(path) == {"ss_output_name": "a"}
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(TrainerError, match="bytes of tensor data are missing"):
        read_header(cut)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(struct.pack("<Q", 4) + b"nope")
    with pytest.raises(TrainerError, match="not JSON") as err:
        read_metadata(junk)
    assert "another epoch" in err.value.advice
    with pytest.raises(TrainerError, match="file not found"):
        read_metadata(tmp_path / "gone.safetensors")


def test_safetensors_library_reads_our_header(tmp_path):
    safetensors = pytest.importorskip("safetensors")
    path = write_lora(tmp_path / "a.safetensors", {"k": "v"})
    with safetensors.safe_open(str(path), framework="numpy") as fh:
        assert fh.metadata() == {"k": "v"} and sorted(fh.keys()) == ["lora_unet_block_0.alpha", "lora_unet_block_1.alpha"]
        assert fh.get_tensor("lora_unet_block_1.alpha").tolist() == [1.0] * 4


# --- runs -------------------------------------------------------------------------------------------

def test_classify_stem():
    assert classify_stem("dream girl-000012") == ("dream girl", "epoch", 12)
    assert classify_stem("x-interrupted") == ("x", "interrupted", None)
    assert classify_stem("x-12") == ("x-12", "final", None)


def test_kohya_folder_runs(tmp_path):
    kohya_folder(tmp_path / "Lora")
    write_lora(tmp_path / "Lora" / "unrelated style.safetensors")  # a plain LoRA is no run
    kohya_folder(tmp_path / "Lora" / "sub", name="other", epochs=(5,), final=False)
    runs = find_runs(tmp_path / "Lora")
    assert sorted(r.name for r in runs) == ["dreamgirl", "other"]
    run = next(r for r in runs if r.name == "dreamgirl")
    assert run.source == "kohya" and run.log_dir is None
    assert [(f.kind, f.epoch) for f in run.files] == [("epoch", 1), ("epoch", 2), ("epoch", 3), ("final", None)]
    assert run.describe_saved() == "epochs 1, 2, 3, final" and run.latest.kind == "final"
    run.final.fill_from_metadata()
    assert run.final.epoch == 3 and run.final.step == 300
    assert find_runs(tmp_path / "Lora", recursive=False)[0].name == "dreamgirl"


def test_our_log_links_files_steps_and_the_final_epoch(tmp_path):
    log_dir = our_run(tmp_path)
    runs = find_runs(tmp_path)
    assert len(runs) == 1
    run = runs[0]
    assert run.name == "测试 lora" and run.source == "ours" and Path(run.log_dir) == log_dir
    assert [(f.kind, f.epoch, f.step) for f in run.files] == [("epoch", 2, 100), ("epoch", 4, 200), ("final", 4, 200)]
    assert open_run(log_dir).stems == run.stems
    assert open_run(tmp_path / "测试 lora-000002.safetensors").name == "测试 lora"
    assert open_run(tmp_path).name == "测试 lora"


def test_open_run_errors(tmp_path):
    with pytest.raises(TrainerError, match="does not exist"):
        find_runs(tmp_path / "nope")
    kohya_folder(tmp_path, "a")
    kohya_folder(tmp_path, "b")
    with pytest.raises(TrainerError, match="several runs: a, b") as err:
        open_run(tmp_path)
    assert "by name" in err.value.advice
    assert open_run(tmp_path, "b").name == "b"
    with pytest.raises(TrainerError, match="no run named 'c'"):
        open_run(tmp_path, "c")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(TrainerError, match="not a .safetensors"):
        open_run(tmp_path / "notes.txt")


# --- epoch values -------------------------------------------------------------------------------------

def test_split_epoch_values():
    assert split_epoch_values("1-3, final") == ["1", "2", "3", "final"]
    assert split_epoch_values("2-10 (+2)") == ["2", "4", "6", "8", "10"]
    assert split_epoch_values("4,6,8") == ["4", "6", "8"]
    assert split_epoch_values('"my, lora-000002", 3') == ["my, lora-000002", "3"]
    assert split_epoch_values("") == []
    with pytest.raises(TrainerError, match="backwards") as err:
        split_epoch_values("5-2")
    assert "2-5" in err.value.advice


def test_resolve_epoch_values(tmp_path):
    run = find_runs(kohya_folder(tmp_path, epochs=(2, 4, 6)))[0]
    stems = lambda files: [f.stem for f in files]  # noqa: E731
    assert stems(resolve_epoch_values(run, "2-6 (+2), final")) == [
        "dreamgirl-000002", "dreamgirl-000004", "dreamgirl-000006", "dreamgirl"]
    assert resolve_epoch_value(run, "000004").epoch == 4
    assert resolve_epoch_value(run, "epoch 6").epoch == 6
    assert resolve_epoch_value(run, "dreamgirl-000002.safetensors").epoch == 2
    assert resolve_epoch_value(run, "last").kind == "final"
    with pytest.raises(TrainerError, match=r"'3' names no saved file .* epochs 2, 4, 6, final") as err:
        resolve_epoch_values(run, "2-6")
    assert "2-10 (+2)" in err.value.advice
    with pytest.raises(TrainerError, match="'interrupted'"):
        resolve_epoch_value(run, "interrupted")


# --- summary ---------------------------------------------------------------------------------------------

def test_summary_from_metadata():
    s = summary_from_metadata(META)
    assert s.family == "sdxl" and s.sd_version == "SDXL" and s.network_dim == 16 and s.network_alpha == 8
    assert s.unet_lr == 1e-4 and s.text_encoder_lr == 5e-5 and s.resolution == (1024, 1024)
    assert s.epochs == 10 and s.epoch == 3 and s.steps == 300 and s.num_train_images == 24
    assert s.min_snr_gamma == 5 and s.repeats == 10
    assert s.concepts[0].name == "dream girl" and s.concepts[0].images == 24
    assert s.trigger_words() == ["dreamgirl"]
    lines = s.lines()
    assert lines[0] == "base model: base xl (SDXL)" and "images: 24, repeats 10" in lines
    empty = summary_from_metadata({})
    assert empty.sd_version == "Unknown" and empty.lines() == [] and empty.trigger_words() == []


def test_kohya_dataset_dirs_and_trigger_guess():
    meta = {"ss_dataset_dirs": json.dumps({"5_zkz shapes": {"n_repeats": 5, "img_count": 8}}),
            "ss_tag_frequency": json.dumps({"5_zkz shapes": {"zkz": 8, "circle": 3}}), "ss_v2": "True"}
    s = summary_from_metadata(meta)
    assert s.family == "sd2" and s.concepts[0].repeats == 5 and s.concepts[0].images == 8
    assert s.trigger_words() == ["zkz"]
    from lora_trainer.evaluate.summary import Concept
    assert guess_trigger_words([Concept("3_ohwx", "ohwx", 3, None, {})]) == ["ohwx"]


# --- loss logs ----------------------------------------------------------------------------------------------

def test_loss_log_from_our_metrics_and_analysis(tmp_path):
    our_run(tmp_path, epochs=(1, 2, 3, 4, 5, 6))
    run = find_runs(tmp_path)[0]
    log = read_loss_log(run)
    assert log.source == "metrics" and len(log.steps) == 300 and log.steps[0] == 1
    assert [e for e, _, _ in log.epochs] == [1, 2, 3, 4, 5, 6] and log.epochs[0][1] == 50
    assert log.learning_rates["unet"][0] == (1, 1e-4) and log.nan_step is None
    analysis = analyze_run(run, log, kind="character")
    assert analysis.plateau_step is not None and analysis.candidates
    assert any(m.key == "loss.band.weighted" for m in analysis.messages)  # the files say min-SNR γ 5


def test_failed_run_logs_the_nan_step(tmp_path):
    with MetricsLogger(tmp_path, tensorboard=False) as logger:
        for step in range(1, 11):
            logger.log_step(step, 1, 0.1, {"unet": 1e-4})
        logger.log_event("failed", error="the loss became nan at step 11 (epoch 1); training stopped")
    from lora_trainer.evaluate.run_log import read_metrics_log
    log = read_metrics_log(tmp_path)
    assert log.nan_step == 11 and "nan" in log.failed


def test_kohya_tensorboard_log(tmp_path):
    run = find_runs(kohya_folder(tmp_path / "Lora"))[0]
    tb = tmp_path / "kohya logs" / "20250101120000" / "network_train"
    with EventFileWriter(tb) as writer:
        for step in range(1, 101):
            writer.add_scalars({"loss/current": 0.1 - step / 2000, "lr/unet": 1e-4}, step)
        for epoch in (1, 2, 3):
            writer.add_scalar("loss/epoch", 0.1 - epoch / 100, epoch)
            writer.add_scalar("loss/validation/epoch_average", 0.12 - epoch / 200, epoch)
    log = read_loss_log(run, tmp_path / "kohya logs")
    assert log.source == "tensorboard" and len(log.steps) == 100
    assert log.losses[0] == pytest.approx(0.0995, rel=1e-5)
    # epochs get their step from the files' metadata
    assert [(e, s) for e, s, _ in log.epochs] == [(1, 100), (2, 200), (3, 300)]
    assert [(e, s) for e, s, _ in log.validation] == [(1, 100), (2, 200), (3, 300)]
    assert log.validation_source == "holdout"  # kohya validates on a split it does not train on
    assert "unet" in log.learning_rates


def test_tensorboard_tensor_values_and_truncated_file(tmp_path):
    # TF2-style scalar: Summary.Value{tag=1, tensor=8{dtype=1 (float), float_val=5}}
    tensor = _key(1, 0) + bytes([1]) + _length_delimited(5, struct.pack("<f", 0.25))
    value = _length_delimited(1, b"loss/current") + _length_delimited(8, tensor)
    event = _key(2, 0) + bytes([7]) + _length_delimited(5, _length_delimited(1, value))
    path = tmp_path / "events.out.tfevents.1.host"
    path.write_bytes(tfrecord(encode_event(0.0, 0, file_version="brain.Event:2")) + tfrecord(event)
                     + tfrecord(encode_event(1.0, 8, scalars={"loss/current": 0.5}))[:-3])  # cut short
    assert read_scalars(tmp_path) == {"loss/current": [(7, 0.25)]}
