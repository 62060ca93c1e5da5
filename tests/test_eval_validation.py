"""Deterministic validation loss of saved LoRA files, on tiny SD1 / SDXL models on the CPU.

The file is applied as forward hooks; the loss must equal the loss of the same weights as a
live peft network (which checks the key mapping and the alpha/rank scale), repeat exactly,
leave the base model untouched, and differ between epochs.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from lora_trainer.config.schema import TrainConfig  # noqa: E402
from lora_trainer.errors import TrainerError  # noqa: E402
from lora_trainer.evaluate.validation import log_validation, validate_files  # noqa: E402
from lora_trainer.lora.file_hooks import lora_applied, module_table  # noqa: E402
from lora_trainer.train.validation_loss import (build_validation_set, items_from_folder,  # noqa: E402
                                                items_from_training, step_models_for, validation_loss)

DEMO = Path(__file__).resolve().parents[1] / "lora_trainer" / "demo_data" / "train"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    target = tmp_path_factory.mktemp("data") / "训练" / "4_zkz 形状"
    shutil.copytree(next(DEMO.iterdir()), target)
    return str(target.parent)


def config(checkpoint, data_dir, out_dir) -> TrainConfig:
    return TrainConfig(pretrained_model_name_or_path=checkpoint, train_data_dir=data_dir, output_dir=str(out_dir),
                       output_name="val", resolution="64", min_bucket_reso=64, max_bucket_reso=128,
                       bucket_reso_steps=64, network_dim=4, network_alpha=2)


def load(checkpoint):
    from lora_trainer.models.loading import load_base_model

    return load_base_model(checkpoint)


def random_lora(base, conv: bool = False):
    """Inject a LoRA into ``base`` (rank 4, alpha 2: scale 0.5); ``save(path, seed)`` fills it with
    random weights from ``seed`` and writes it as a kohya file (one model serves several epochs)."""
    from lora_trainer.io.atomic import save_safetensors_atomic
    from lora_trainer.lora.kohya_format import kohya_state_dict
    from lora_trainer.lora.network import ADAPTER, build_network

    network = build_network(base.family, base.unet, base.text_encoders, rank=4, alpha=2,
                            conv_rank=2 if conv else None, conv_alpha=1 if conv else None)

    def save(path, seed: int) -> Path:
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for _, _, layer in network.modules():
                for part in (layer.lora_A[ADAPTER].weight, layer.lora_B[ADAPTER].weight):
                    part.copy_(torch.randn(part.shape, generator=gen) * 0.2)
        save_safetensors_atomic(kohya_state_dict(network, base.family, "float", base.unet.config), path,
                                {"ss_output_name": "val"})
        return Path(path)
    return save


@pytest.mark.parametrize("family", ["sd1", "sdxl"])
def test_file_hooks_equal_the_live_network_and_repeat_exactly(family, tiny_checkpoints, dataset, tmp_path):
    cfg = config(tiny_checkpoints[family], dataset, tmp_path)
    items = items_from_training(cfg, max_images=3)
    assert len(items) == 3 and all(it.caption for it in items)
    clean = load(tiny_checkpoints[family])
    vset = build_validation_set(clean.vae, items, seed=0)
    assert len(vset.latents) == 3 and vset.noise[0].shape[0] == 5
    models = step_models_for(clean, torch.device("cpu"))
    plain = validation_loss(models, vset)

    live_base = load(tiny_checkpoints[family])
    save = random_lora(live_base, conv=family == "sdxl")
    path = save(tmp_path / "val-000001.safetensors", seed=1)
    live = validation_loss(step_models_for(live_base, torch.device("cpu")), vset)

    table = module_table(clean.family, clean.unet, clean.text_encoders)
    with lora_applied(table, str(path)) as unmatched:
        first = validation_loss(models, vset)
    with lora_applied(table, str(path)) as unmatched_again:
        second = validation_loss(models, vset)
    assert unmatched == unmatched_again == 0
    assert first == second                                  # deterministic
    assert first == pytest.approx(live, rel=1e-4, abs=1e-6)  # same weights, same loss as the live network
    assert abs(first - plain) > 1e-4                          # the LoRA does something
    assert validation_loss(models, vset) == plain             # hooks removed, base untouched
    with lora_applied(table, str(path), multiplier=0.0):
        assert validation_loss(models, vset) == pytest.approx(plain, abs=1e-7)

    other = save(tmp_path / "val-000002.safetensors", seed=2)
    with lora_applied(table, str(other)):
        assert abs(validation_loss(models, vset) - first) > 1e-4  # another epoch, another loss


def test_validate_files_and_log_them(tiny_checkpoints, dataset, tmp_path):
    from lora_trainer.evaluate.run_log import read_metrics_log
    from lora_trainer.evaluate.runs import RunFile

    save = random_lora(load(tiny_checkpoints["sd1"]))
    files = []
    for epoch in (1, 2):
        path = save(tmp_path / f"val-{epoch:06d}.safetensors", seed=epoch)
        files.append(RunFile(str(path), path.stem, "epoch", epoch, epoch * 10))
    cfg = config(tiny_checkpoints["sd1"], dataset, tmp_path)
    seen = []
    results = validate_files(cfg, files, max_images=2, device="cpu", progress=lambda d, t: seen.append((d, t)))
    again = validate_files(cfg, [files[1].path, files[0].path], max_images=2, device="cpu")
    assert [r.epoch for r in results] == [1, 2] and seen == [(1, 2), (2, 2)]
    assert results[0].loss != results[1].loss and all(r.unmatched_keys == 0 for r in results)
    assert again[0].loss == results[1].loss and again[1].loss == results[0].loss  # the same numbers each time
    assert again[0].epoch is None and again[0].stem == "val-000002"
    log_dir = tmp_path / "logs" / "val-1"
    log_validation(log_dir, results)
    log = read_metrics_log(log_dir)
    assert [(e, s) for e, s, _ in log.validation] == [(1, 10), (2, 20)]
    assert log.validation[0][2] == pytest.approx(results[0].loss)
    assert log.validation_source == "training" and results[0].source == "training"


def test_held_out_folder(tmp_path, make_image):
    from PIL import Image

    folder = tmp_path / "held out"
    make_image(folder / "a.png", size=(192, 64))
    (folder / "a.txt").write_text("zkz, circle", encoding="utf-8")
    make_image(folder / "b.jpg", size=(64, 64))
    Image.new("RGB", (8, 8)).save(folder / "not-an-image.gif")
    items = items_from_folder(folder, 128, default_caption="zkz")
    assert [(Path(i.path).name, i.caption) for i in items] == [("a.png", "zkz, circle"), ("b.jpg", "zkz")]
    assert items[0].bucket == (192, 64) and items[1].bucket == (128, 128)   # each at the bucket of its shape
    with pytest.raises(TrainerError, match="does not exist"):
        items_from_folder(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(TrainerError, match="no images") as err:
        items_from_folder(tmp_path / "empty")
    assert "NOT" not in err.value.advice and "images" in err.value.advice


def test_a_file_for_another_model_is_refused(tiny_checkpoints, dataset, tmp_path):
    sd1 = load(tiny_checkpoints["sd1"])
    path = random_lora(load(tiny_checkpoints["sdxl"]))(tmp_path / "xl.safetensors", seed=3)
    table = module_table(sd1.family, sd1.unet, sd1.text_encoders)
    with pytest.raises(TrainerError, match="does not fit this base model") as err:
        with lora_applied(table, str(path)):
            pass
    assert "SDXL must match" in err.value.advice
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}")
    with pytest.raises(TrainerError, match="not a readable"):
        with lora_applied(table, str(broken)):
            pass
