"""End-to-end training on tiny SD1 / SD2 (v-prediction) / SDXL models, on the CPU.

Covers: the loss falls, every written file passes the kohya key/shape/metadata check, the
logs are written, the NaN guard, stop + resume equivalence, bad dataset inputs and Unicode paths.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from lora_trainer.config.schema import TrainConfig  # noqa: E402
from lora_trainer.errors import DatasetError, TrainingDiverged  # noqa: E402
from lora_trainer.lora.kohya_format import check_lora_state  # noqa: E402
from lora_trainer.train import events as ev  # noqa: E402

DEMO = Path(__file__).resolve().parents[1] / "lora_trainer" / "demo_data" / "train"


def make_config(checkpoint, data_dir, out_dir, **changes) -> TrainConfig:
    base = dict(pretrained_model_name_or_path=checkpoint, train_data_dir=data_dir, output_dir=str(out_dir),
                output_name="测试 lora", resolution="64", min_bucket_reso=64, max_bucket_reso=128,
                bucket_reso_steps=64, train_batch_size=4, max_train_epochs=4, save_every_n_epochs=2,
                network_dim=4, network_alpha=4, learning_rate=3e-3, text_encoder_lr=1e-3, lr_scheduler="constant",
                optimizer_type="AdamW", mixed_precision="no", cache_latents=True, seed=7, save_precision="float")
    base.update(changes)
    return TrainConfig(**base)


def run(cfg, listener=None):
    from lora_trainer.train.loop import train

    seen = []

    def collect(event):
        seen.append(event)
        if listener:
            listener(event)
    return train(cfg, listener=collect, log=lambda *_: None), seen


def read(path):
    from safetensors import safe_open

    with safe_open(path, framework="pt") as fh:
        return {k: fh.get_tensor(k) for k in fh.keys()}, fh.metadata()


@pytest.mark.parametrize("family,extra", [
    ("sd1", dict(min_snr_gamma=5.0, noise_offset=0.05, clip_skip=2)),
    ("sd2", dict(network_dropout=0.1, rank_dropout=0.1, module_dropout=0.1, scale_weight_norms=2.0)),
    ("sdxl", dict(conv_dim=4, conv_alpha=2, gradient_accumulation_steps=2, learning_rate=6e-3)),
])
def test_loss_falls_and_files_are_valid(family, extra, tiny_checkpoints, dataset, tmp_path):
    cfg = make_config(tiny_checkpoints[family], dataset, tmp_path / "输出", **extra)
    result, seen = run(cfg)
    first, last = result.epoch_losses[0], result.epoch_losses[-1]
    assert last < 0.9 * first, result.epoch_losses

    names = sorted(os.path.basename(p) for p in result.files)
    assert names == ["测试 lora-000002.safetensors", "测试 lora-000004.safetensors", "测试 lora.safetensors"]
    for path in result.files:
        tensors, meta = read(path)
        assert check_lora_state(tensors, meta) == []
    # the output folder holds the LoRA files (and the logs folder); the newest state is in the run's folder
    assert sorted(os.listdir(cfg.output_dir)) == sorted(names + ["logs"])
    assert os.path.dirname(result.run_dir) == os.path.join(cfg.output_dir, "logs")
    assert [n for n in os.listdir(result.run_dir) if n.endswith("-state")] == ["测试 lora-state"]
    tensors, meta = read(result.files[-1])
    prefixes = {k.split(".")[0].split("_")[1] for k in tensors}
    assert prefixes == ({"unet", "te1", "te2"} if family == "sdxl" else {"unet", "te"})
    assert meta["ss_base_model_version"] == {"sd1": "sd_v1", "sd2": "sd_v2", "sdxl": "sdxl_base_v1-0"}[family]
    assert meta["ss_v2"] == str(family == "sd2") and meta["ss_epoch"] == "4"
    assert meta["ss_v_parameterization"] == str(family == "sd2")
    assert meta["ss_num_train_images"] == "8" and meta["ss_steps"] == str(result.steps)
    assert json.loads(meta["ss_tag_frequency"])["4_zkz 形状"]["zkz"] == 8
    if family == "sdxl":
        assert any(k.startswith("lora_unet_input_blocks_") for k in tensors)   # SGM names, as kohya writes
        assert any(t.dim() == 4 and t.shape[2:] == (3, 3) for t in tensors.values())  # LoCon
    else:
        assert any(k.startswith("lora_unet_down_blocks_") for k in tensors)

    steps = [e for e in seen if isinstance(e, ev.StepEnd)]
    assert len(steps) == result.steps and all(e.loss is not None for e in steps)
    assert isinstance(seen[0], ev.Started) and "Step maths" in seen[0].plan_text
    assert isinstance(seen[-1], ev.Finished) and not seen[-1].stopped
    records = [json.loads(line) for line in open(os.path.join(result.run_dir, "metrics.jsonl"), encoding="utf-8")]
    assert sum(r["type"] == "step" for r in records) == result.steps
    assert any(name.startswith("events.out.tfevents") for name in os.listdir(result.run_dir))
    times = [r for r in records if r.get("kind") == "setup_times"]   # once, before the first step
    assert len(times) == 1 and records.index(times[0]) < next(i for i, r in enumerate(records) if r["type"] == "step")
    phases = {"dataset", "load", "to_device", "latents", "network", "optimizer", "trainer"}
    assert phases <= set(times[0]) and times[0]["total"] >= sum(times[0][k] for k in phases) - 1e-2


def test_nan_stops_training_and_keeps_saved_epochs(tiny_checkpoints, dataset, tmp_path, monkeypatch):
    import lora_trainer.train.loop as loop

    real = loop.compute_loss
    calls = {"n": 0}

    def poisoned(*args, **kwargs):
        calls["n"] += 1
        loss = real(*args, **kwargs)
        return loss * float("nan") if calls["n"] == 20 else loss   # epoch 3 (8 steps per epoch)
    monkeypatch.setattr(loop, "compute_loss", poisoned)
    cfg = make_config(tiny_checkpoints["sd1"], dataset, tmp_path / "out", save_every_n_epochs=1)
    seen = []
    with pytest.raises(TrainingDiverged) as err:
        run(cfg, seen.append)
    assert "step 20 (epoch 3)" in str(err.value) and "lower unet_lr" in err.value.advice
    files = sorted(os.listdir(tmp_path / "out"))
    assert "测试 lora-000002.safetensors" in files
    assert "测试 lora-000003.safetensors" not in files and "测试 lora.safetensors" not in files
    tensors, meta = read(str(tmp_path / "out" / "测试 lora-000002.safetensors"))
    assert check_lora_state(tensors, meta) == []
    assert isinstance(seen[-1], ev.Failed)


RESUME_EXTRA = dict(shuffle_caption=True, caption_dropout_rate=0.2, network_dropout=0.1, lr_scheduler="cosine",
                    save_every_n_epochs=1)


@pytest.fixture(scope="module")
def uninterrupted_run(tiny_checkpoints, tmp_path_factory):
    """The run both stop points are compared with, trained once: (dataset folder, result)."""
    root = tmp_path_factory.mktemp("resume")
    target = root / "训练 数据" / "4_zkz 形状"
    shutil.copytree(next(DEMO.iterdir()), target)
    data = str(target.parent)
    full, _ = run(make_config(tiny_checkpoints["sd1"], data, root / "full", **RESUME_EXTRA))
    return data, full


@pytest.mark.parametrize("stop_at_step", [8, 6])  # at an epoch boundary, and in the middle of an epoch
def test_stop_and_resume_reach_the_same_weights(stop_at_step, tiny_checkpoints, uninterrupted_run, tmp_path):
    dataset, full = uninterrupted_run
    extra = RESUME_EXTRA

    stop = ev.StopRequest()

    def stopper(event):
        if isinstance(event, ev.StepEnd) and event.step == stop_at_step:
            stop.request()
    from lora_trainer.train.loop import train
    cfg = make_config(tiny_checkpoints["sd1"], dataset, tmp_path / "part", **extra)
    part = train(cfg, listener=stopper, stop=stop, log=lambda *_: None)
    assert part.stopped and part.steps == stop_at_step
    interrupted = tmp_path / "part" / "测试 lora-interrupted.safetensors"
    state = Path(part.run_dir) / "测试 lora-interrupted-state"
    assert interrupted.is_file() and state.is_dir()

    resumed, _ = run(cfg.replace(resume=str(state)))
    assert resumed.steps == full.steps
    a, _ = read(full.files[-1])
    b, _ = read(resumed.files[-1])
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-5)


def test_previews_that_reseed_torch_leave_the_dropout_masks_alone(tiny_checkpoints, small_dataset, tmp_path):
    # A1111 renders each preview after torch.manual_seed(its seed), in the training thread: without care the
    # dropout masks after every epoch's previews repeat, and the run differs from the same run without previews
    def render(event):
        if isinstance(event, ev.SampleWanted):
            torch.manual_seed(1234)
            torch.rand(16)

    extra = dict(network_dropout=0.3, network_args=["rank_dropout=0.3"], save_every_n_epochs=1, max_train_epochs=3)
    quiet, _ = run(make_config(tiny_checkpoints["sd1"], small_dataset, tmp_path / "a", **extra))
    previewed, _ = run(make_config(tiny_checkpoints["sd1"], small_dataset, tmp_path / "b", **extra), render)
    a, _ = read(quiet.files[-1])
    b, _ = read(previewed.files[-1])
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)


def test_resume_refuses_other_settings(tiny_checkpoints, small_dataset, tmp_path):
    from lora_trainer.errors import TrainerError

    cfg = make_config(tiny_checkpoints["sd1"], small_dataset, tmp_path / "a", max_train_epochs=2)
    done, _ = run(cfg)
    with pytest.raises(TrainerError, match="network_dim: saved 4, now 8"):
        run(cfg.replace(network_dim=8, resume=os.path.join(done.run_dir, "测试 lora-state")))


@pytest.mark.parametrize("keep,left", [(2, ["测试 lora-000002-state", "测试 lora-state"]),
                                       (None, ["测试 lora-000001-state", "测试 lora-000002-state",
                                               "测试 lora-000003-state", "测试 lora-state"])])
def test_only_the_newest_states_are_kept(keep, left, tiny_checkpoints, small_dataset, tmp_path):
    """save_last_n_epochs_state (kohya's name): the final state replaces the last epoch's (the same step), and
    older ones go; empty keeps every state. Each deletion is reported with the file saved after it."""
    cfg = make_config(tiny_checkpoints["sd1"], small_dataset, tmp_path / "o", max_train_epochs=3,
                      save_every_n_epochs=1, save_last_n_epochs_state=keep)
    result, seen = run(cfg)
    assert sorted(n for n in os.listdir(result.run_dir) if n.endswith("-state")) == left
    saved = [e for e in seen if isinstance(e, ev.FileSaved)]
    removed = [os.path.basename(p) for e in saved for p in e.removed_states]
    assert removed == ([] if keep is None else ["测试 lora-000001-state", "测试 lora-000003-state"])
    assert all(os.path.isdir(e.state_dir) for e in saved if os.path.basename(e.state_dir) in left)
    assert not any(n.endswith("-state") for n in os.listdir(cfg.output_dir))


def test_broken_image_is_skipped_with_warning(tiny_checkpoints, small_dataset, tmp_path):
    dataset = small_dataset
    concept = Path(dataset) / "1_zkz"
    (concept / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
    (concept / "broken.txt").write_text("zkz", encoding="utf-8")
    result, seen = run(make_config(tiny_checkpoints["sd1"], dataset, tmp_path / "o", max_train_epochs=1))
    assert result.files
    started = seen[0]
    assert any("broken.png" in w for w in started.warnings)


def test_empty_dataset_is_explained(tiny_checkpoints, tmp_path):
    empty = tmp_path / "empty"
    (empty / "10_nothing").mkdir(parents=True)
    with pytest.raises(DatasetError) as err:
        run(make_config(tiny_checkpoints["sd1"], str(empty), tmp_path / "o"))
    assert "empty" in str(err.value) or "no usable" in str(err.value)


def test_bf16_training_on_cpu_saves_fp32_quality_state(tiny_checkpoints, dataset, tmp_path):
    from lora_trainer.train.state import load_state

    cfg = make_config(tiny_checkpoints["sd1"], dataset, tmp_path / "bf16", mixed_precision="bf16",
                      max_train_epochs=4, learning_rate=6e-3)
    result, _ = run(cfg)
    assert result.epoch_losses[-1] < 0.9 * result.epoch_losses[0], result.epoch_losses
    tensors, meta = read(result.files[-1])
    assert check_lora_state(tensors, meta) == [] and meta["ss_mixed_precision"] == "bf16"
    state = load_state(os.path.join(result.run_dir, "测试 lora-state"))
    assert all(v.dtype == torch.float32 for v in state.lora.values())


@pytest.mark.parametrize("cache_latents", [True, False])
def test_setup_puts_one_phase_at_a_time_on_the_device(cache_latents, tiny_checkpoints, dataset, tmp_path,
                                                      monkeypatch):
    """The VAE encodes the latents before the UNet and text encoders are placed (at 1024² its
    activations alone take GBs), and leaves the device afterwards unless it encodes every step."""
    from lora_trainer.data.latent_cache import LatentCache
    from lora_trainer.train import setup

    calls = []
    real_place, real_prepare, real_prompts = setup.place_models, LatentCache.prepare, setup.cache_prompts

    def place(cfg, base, device, *, vae=True):
        calls.append(("place_models", vae))
        return real_place(cfg, base, device, vae=vae)

    def prepare(self, *args, **kwargs):
        calls.append(("cache_latents", None))
        return real_prepare(self, *args, **kwargs)

    def prompts(*args, **kwargs):
        calls.append(("cache_prompts", None))
        return real_prompts(*args, **kwargs)

    monkeypatch.setattr(setup, "place_models", place)
    monkeypatch.setattr(LatentCache, "prepare", prepare)
    monkeypatch.setattr(setup, "cache_prompts", prompts)
    cfg = make_config(tiny_checkpoints["sdxl"], dataset, tmp_path / "out", cache_latents=cache_latents,
                      network_train_unet_only=True)
    run = setup.prepare_run(cfg, log=lambda *_: None)
    if cache_latents:
        assert calls == [("cache_latents", None), ("place_models", False), ("cache_prompts", None)]
    else:
        assert calls == [("place_models", True), ("cache_prompts", None)]
    assert run.step_models.prompt_cache
