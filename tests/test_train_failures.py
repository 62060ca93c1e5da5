"""What a user meets when a run cannot go as planned: a full disk while saving, an output folder that cannot
be written, images that cannot be trained, captions the text encoder cuts (CPU, tiny SD1, one-step epochs).

A full disk is simulated by the writer's own error (safetensors' SafetensorError).
"""
from __future__ import annotations

import errno
import os
import shutil

import pytest

torch = pytest.importorskip("torch")

from test_train import DEMO, make_config, run  # noqa: E402
from lora_trainer.cli.main import main  # noqa: E402
from lora_trainer.errors import DiskFull, OutputError  # noqa: E402
from lora_trainer.train import events as ev  # noqa: E402

# what safetensors 0.4 (the WebUIs' pin) raises when the disk is full
SafetensorError = type("SafetensorError", (Exception,), {})
SAFETENSORS_FULL = 'Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: "No space left on device" })'


def test_disk_full_while_saving_a_state_keeps_and_reports_every_file(tiny_checkpoints, small_dataset, tmp_path,
                                                                    monkeypatch):
    import safetensors.torch

    real_save, real_usage = safetensors.torch.save_file, shutil.disk_usage

    def save(tensors, filename, *args, **kwargs):
        if "-000002-state" in str(filename):
            raise SafetensorError(SAFETENSORS_FULL)
        return real_save(tensors, filename, *args, **kwargs)
    monkeypatch.setattr(safetensors.torch, "save_file", save)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: real_usage(path)._replace(free=300 << 10))
    out = tmp_path / "o"
    seen = []
    with pytest.raises(DiskFull) as err:
        run(make_config(tiny_checkpoints["sd1"], small_dataset, out, max_train_epochs=3, save_every_n_epochs=1),
            seen.append)
    run_dir = next((out / "logs").iterdir())   # states are saved in the run's folder
    assert err.value.message.startswith(f"disk full while saving 测试 lora-000002-state/ in {run_dir}; it needs about ")
    assert err.value.message.endswith(" MB and 0 MB are free")
    assert err.value.advice.startswith("free ") and "or choose another output folder (output_dir)" in err.value.advice
    written = [str(out / "测试 lora-000001.safetensors"), str(out / "测试 lora-000002.safetensors")]
    assert isinstance(seen[-1], ev.Failed) and seen[-1].files == written
    assert [(e.path, e.state_dir is None) for e in seen if isinstance(e, ev.FileSaved)] == \
        [(written[0], False), (written[1], True)]
    # nothing half-written: the state that did not fit left no folder behind
    assert sorted(os.listdir(out)) == ["logs", "测试 lora-000001.safetensors", "测试 lora-000002.safetensors"]
    assert sorted(p.name for p in run_dir.iterdir() if p.is_dir()) == ["测试 lora-000001-state"]


def test_cli_disk_full_while_saving_a_lora_file_exits_2_and_lists_the_files(tiny_checkpoints, small_dataset,
                                                                           tmp_path, monkeypatch, capsys):
    import safetensors.torch

    real_save_file = safetensors.torch.save_file

    def save_file(tensors, filename, metadata=None):
        if "-000002.safetensors" in str(filename):
            raise SafetensorError(SAFETENSORS_FULL)
        return real_save_file(tensors, filename, metadata=metadata)
    monkeypatch.setattr(safetensors.torch, "save_file", save_file)
    out = tmp_path / "o"
    code = main(["--verbose", "train", "--pretrained_model_name_or_path", tiny_checkpoints["sd1"],
                 "--train_data_dir", small_dataset, "--output_dir", str(out), "--output_name", "full",
                 "--resolution", "64", "--min_bucket_reso", "64", "--max_bucket_reso", "128", "--train_batch_size", "4",
                 "--max_train_epochs", "3", "--network_dim", "4", "--mixed_precision", "no", "--save_state", "false"])
    printed = capsys.readouterr()
    assert code == 2 and "Traceback" not in printed.err
    assert f"error: disk full while saving full-000002.safetensors in {out}; it needs about 1 MB and " in printed.err
    assert "What to do: free " in printed.err
    assert f"Files saved before it stopped:\n  {out / 'full-000001.safetensors'}\n" in printed.out
    assert sorted(os.listdir(out)) == ["full-000001.safetensors", "logs"]   # no temporary file left


def test_an_output_folder_that_cannot_be_written_fails_before_the_model_loads(tiny_checkpoints, small_dataset,
                                                                             tmp_path, monkeypatch):
    import lora_trainer.io.disk as disk
    import lora_trainer.models.loading as loading

    def load(*args, **kwargs):
        raise AssertionError("the model was loaded before the output folder was checked")

    def refuse(path, *args, **kwargs):   # what a folder of another user answers (the tests run as root)
        raise PermissionError(errno.EACCES, "Permission denied", path)
    monkeypatch.setattr(loading, "load_base_model", load)
    monkeypatch.setattr(disk, "open", refuse, raising=False)
    out = tmp_path / "o"
    seen = []
    with pytest.raises(OutputError) as err:
        run(make_config(tiny_checkpoints["sd1"], small_dataset, out), seen.append)
    assert err.value.message == f"output_dir {out} cannot be written: permission denied"
    assert "output_dir" in err.value.advice and isinstance(seen[-1], ev.Failed)
    assert os.listdir(out) == []   # the probe left nothing


@pytest.mark.parametrize("cache_latents", [False, True])
def test_images_that_cannot_be_trained_are_named_and_not_counted(cache_latents, tiny_checkpoints, tmp_path):
    from PIL import Image

    concept = tmp_path / "data" / "1_zkz"
    concept.mkdir(parents=True)
    shapes = sorted(next(DEMO.iterdir()).glob("*.png"))[:2]
    for image in shapes:
        shutil.copy(image, concept)
        shutil.copy(image.with_suffix(".txt"), concept)
    (concept / shapes[0].with_suffix(".txt").name).write_text(", ".join(f"tag {i}" for i in range(60)))
    whole = shapes[1].read_bytes()
    (concept / "03 broken.png").write_bytes(whole[: len(whole) // 2])   # its header reads, its pixels do not
    Image.new("RGBA", (64, 64), (255, 0, 0, 0)).save(concept / "04 clear.png")
    cfg = make_config(tiny_checkpoints["sd1"], str(concept.parent), tmp_path / "o", train_batch_size=1,
                      max_train_epochs=1, save_every_n_epochs=None, cache_latents=cache_latents)
    result, seen = run(cfg)
    started = next(e for e in seen if isinstance(e, ev.Started))
    assert started.total_steps == 2 and result.steps == 2   # the plan counts what trains (it said 4 before)
    assert "1_zkz" in started.plan_text and "2 ×       1 =       2" in started.plan_text
    assert any(w.startswith("skipped ") and "03 broken.png" in w and "truncated" in w for w in started.warnings)
    assert any(w.startswith("skipped ") and "04 clear.png" in w and "fully transparent" in w
               for w in started.warnings)
    assert any(w.startswith("1 of 2 captions are longer than max_token_length (75 tokens) and lose their end: "
                            f"1_zkz/{shapes[0].name} (") for w in started.warnings), "\n".join(started.warnings)


def test_a_missing_optimizer_package_stops_the_run_before_the_model_loads(tiny_checkpoints, small_dataset,
                                                                          tmp_path, monkeypatch):
    import importlib.util

    from lora_trainer.errors import MissingDependency
    from lora_trainer.models import loading

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "prodigyopt" else real_find_spec(name, *a))
    monkeypatch.setattr(loading, "load_base_model", lambda *a, **k: pytest.fail("the model was loaded"))
    cfg = make_config(tiny_checkpoints["sd1"], small_dataset, tmp_path, optimizer_type="Prodigy", learning_rate=1.0)
    with pytest.raises(MissingDependency) as caught:
        run(cfg)
    assert "prodigyopt" in str(caught.value) and "Prodigy" in str(caught.value)
    assert "pip install prodigyopt" in caught.value.advice_in("en")
    assert "Prodigy" in caught.value.message_in("zh_CN") and caught.value.message_in("zh_CN") != \
        caught.value.message_in("en")
