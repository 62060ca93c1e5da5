"""Keeping an epoch under a final name: atomic byte copy, alias metadata, sidecar JSON, preview,
never overwriting by accident, and deleting only the run's other files after confirmation."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lora_trainer.errors import TrainerError
from lora_trainer.evaluate.keep import delete_files, deletion_plan, keep_epoch, validate_name
from lora_trainer.evaluate.runs import RunInfo, find_runs
from lora_trainer.io.safetensors_header import encode_header, read_header, read_metadata

META = {"ss_output_name": "run3", "modelspec.title": "run3", "ss_base_model_version": "sd_v1",
        "ss_sd_model_name": "v1-5", "ss_network_dim": "8", "ss_network_alpha": "4", "ss_epoch": "6",
        "ss_steps": "600", "ss_num_epochs": "10", "ss_num_train_images": "20", "ss_unet_lr": "0.0001",
        "ss_optimizer": "AdamW", "ss_tag_frequency": json.dumps({"10_dreamgirl": {"dreamgirl": 20, "smile": 4}})}


def write_lora(path: Path, metadata: dict, seed: int = 0) -> Path:
    header: dict = {"__metadata__": dict(metadata)}
    data = b""
    rng = np.random.default_rng(seed)
    for i in range(3):
        raw = rng.standard_normal(16).astype("<f4").tobytes()
        header[f"lora_unet_block_{i}.lora_down.weight"] = {"dtype": "F32", "shape": [4, 4],
                                                           "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode_header(header) + data)
    return path


@pytest.fixture
def run(tmp_path):
    lora = tmp_path / "Lora" / "训练"
    for e in range(1, 7):
        write_lora(lora / f"run3-{e:06d}.safetensors", {**META, "ss_epoch": str(e)}, seed=e)
        (lora / f"run3-{e:06d}-state").mkdir()
        (lora / f"run3-{e:06d}-state" / "state.pt").write_bytes(b"x")
    write_lora(lora / "run3.safetensors", META, seed=99)
    Image.new("RGB", (8, 8)).save(lora / "run3-000002.png")
    return find_runs(tmp_path / "Lora")[0]


def tensor_bytes(path) -> bytes:
    _, start = read_header(path)
    return Path(path).read_bytes()[start:]


def test_validate_name():
    assert validate_name(" dreamgirl.safetensors ") == "dreamgirl"
    assert validate_name("梦 女孩 v2") == "梦 女孩 v2"
    for bad in ("", "a:b", "a>b", "a<b", "x=1", "a/b", "a\\b", "CON", "."):
        with pytest.raises(TrainerError) as err:
            validate_name(bad)
        assert err.value.advice


def test_keep_copies_bytes_sets_alias_and_writes_sidecar_and_preview(run, tmp_path):
    epoch6 = run.file_by_stem("run3-000006")
    preview = Image.new("RGB", (1024, 512), (200, 30, 30))
    result = keep_epoch(epoch6, "dreamgirl", notes="loss flattened at step 500", preview=preview)
    folder = Path(epoch6.path).parent
    assert Path(result.path) == folder / "dreamgirl.safetensors" and result.copied
    assert tensor_bytes(result.path) == tensor_bytes(epoch6.path)          # the weights are untouched
    meta = read_metadata(result.path)
    assert meta["ss_output_name"] == "dreamgirl" and meta["modelspec.title"] == "dreamgirl"  # the host's alias
    assert meta["ss_epoch"] == "6" and read_metadata(epoch6.path)["ss_output_name"] == "run3"
    sidecar = json.loads(Path(result.sidecar).read_text(encoding="utf-8"))
    assert sidecar["activation text"] == "dreamgirl" and sidecar["preferred weight"] == 0.6
    assert sidecar["sd version"] == "SD1" and set(sidecar) >= {"description", "negative text", "notes"}
    assert sidecar["notes"].startswith("kept from run3-000006 (epoch 6)")
    assert "rank 8, alpha 4" in sidecar["notes"] and sidecar["notes"].endswith("loss flattened at step 500")
    assert Path(result.preview) == folder / "dreamgirl.preview.png"
    assert max(Image.open(result.preview).size) == 768
    assert result.prompt_tag == "dreamgirl <lora:dreamgirl:0.6>"
    assert not [n for n in os.listdir(folder) if ".tmp-" in n]  # no temp file left behind


def test_kept_file_loads_in_safetensors(run):
    safetensors = pytest.importorskip("safetensors")
    result = keep_epoch(run.file_by_stem("run3-000003"), "kept")
    with safetensors.safe_open(result.path, framework="numpy") as new, \
            safetensors.safe_open(run.file_by_stem("run3-000003").path, framework="numpy") as old:
        assert new.metadata()["ss_output_name"] == "kept"
        for key in old.keys():
            assert np.array_equal(new.get_tensor(key), old.get_tensor(key))


def test_keep_a_torch_written_file(tmp_path):
    torch = pytest.importorskip("torch")
    from lora_trainer.io.atomic import save_safetensors_atomic
    from safetensors.torch import load_file

    src = tmp_path / "x-000001.safetensors"
    tensors = {"lora_unet_a.lora_down.weight": torch.randn(4, 8, dtype=torch.float16),
               "lora_unet_a.alpha": torch.tensor(4.0, dtype=torch.float16)}
    save_safetensors_atomic(tensors, src, {"ss_output_name": "x"})
    result = keep_epoch(str(src), "final one")
    loaded = load_file(result.path)
    assert all(torch.equal(loaded[k], tensors[k]) for k in tensors)
    assert read_metadata(result.path)["ss_output_name"] == "final one"


def test_never_overwrites_without_the_flag(run, tmp_path):
    keep_epoch(run.file_by_stem("run3-000004"), "dreamgirl")
    before = Path(run.folder, "dreamgirl.safetensors").read_bytes()
    with pytest.raises(TrainerError, match="already used") as err:
        keep_epoch(run.file_by_stem("run3-000005"), "dreamgirl")
    assert "overwrite" in err.value.advice
    assert Path(run.folder, "dreamgirl.safetensors").read_bytes() == before
    result = keep_epoch(run.file_by_stem("run3-000005"), "dreamgirl", overwrite=True)
    assert tensor_bytes(result.path) == tensor_bytes(run.file_by_stem("run3-000005").path)
    assert result.warnings and "old weights" in result.warnings[0]


def test_a_name_used_elsewhere_in_the_lora_folder_is_taken(run, tmp_path):
    write_lora(tmp_path / "Lora" / "styles" / "dreamgirl.safetensors", {})
    with pytest.raises(TrainerError, match="already used"):
        keep_epoch(run.file_by_stem("run3-000004"), "dreamgirl", lora_root=str(tmp_path / "Lora"))


def test_keeping_the_final_file_under_its_own_name_writes_only_the_sidecar(run):
    final = run.final
    before = Path(final.path).read_bytes()
    result = keep_epoch(final, "run3", activation_text="dreamgirl, red hair", preferred_weight=0.7)
    assert not result.copied and Path(final.path).read_bytes() == before
    data = json.loads(Path(result.sidecar).read_text(encoding="utf-8"))
    assert data["activation text"] == "dreamgirl, red hair" and data["preferred weight"] == 0.7


def test_user_edits_in_the_sidecar_are_kept(run):
    Path(run.folder, "mine.json").write_text(json.dumps({"description": "my words", "extra": 1}), encoding="utf-8")
    result = keep_epoch(run.file_by_stem("run3-000002"), "mine")
    data = json.loads(Path(result.sidecar).read_text(encoding="utf-8"))
    assert data["description"] == "my words" and data["extra"] == 1 and data["activation text"] == "dreamgirl"


def test_missing_source(run, tmp_path):
    with pytest.raises(TrainerError, match="no longer exists"):
        keep_epoch(str(tmp_path / "gone.safetensors"), "x")


def test_delete_other_epochs_in_two_steps(run):
    result = keep_epoch(run.file_by_stem("run3-000006"), "dreamgirl")
    plan = deletion_plan(run, [result.path])
    names = sorted(os.path.basename(p) for p in plan)
    assert names == sorted([f"run3-{e:06d}.safetensors" for e in range(1, 7)] + ["run3.safetensors", "run3-000002.png"])
    assert not any("dreamgirl" in n or n.endswith("-state") for n in names)
    with pytest.raises(TrainerError, match="needs a confirmation"):
        delete_files(run, plan, confirm=False, keep=[result.path])
    assert all(os.path.exists(p) for p in plan)
    with pytest.raises(TrainerError, match="not other epochs"):
        delete_files(run, plan + [result.path], confirm=True, keep=[result.path])
    deleted = delete_files(run, plan, confirm=True, keep=[result.path])
    assert sorted(deleted) == sorted(plan) and not any(os.path.exists(p) for p in plan)
    assert os.path.exists(result.path) and os.path.isdir(Path(run.folder, "run3-000001-state"))
    assert run.files == []


def test_delete_with_states(run):
    plan = deletion_plan(run, [run.final.path], include_states=True)
    assert Path(run.folder, "run3-000003-state").as_posix() in [Path(p).as_posix() for p in plan]
    assert run.final.path not in plan
    delete_files(run, plan, confirm=True, keep=[run.final.path], include_states=True)
    assert not Path(run.folder, "run3-000003-state").exists() and os.path.exists(run.final.path)


def test_delete_with_states_finds_them_in_the_runs_log_folder(tmp_path):
    """Our runs keep their states in the run's folder beside the logs (outside the Lora folder)."""
    lora, log = tmp_path / "Lora" / "cat", tmp_path / "runs" / "cat-20260101-000000"
    for e in (1, 2):
        write_lora(lora / f"cat-{e:06d}.safetensors", {**META, "ss_epoch": str(e)}, seed=e)
    write_lora(lora / "cat.safetensors", META, seed=9)
    (log / "cat-000001-state").mkdir(parents=True)
    (log / "cat-state").mkdir()
    run = RunInfo("cat", str(lora), find_runs(lora)[0].files, log_dir=str(log), source="ours")
    plan = [Path(p).name for p in deletion_plan(run, [run.final.path], include_states=True)]
    assert sorted(plan) == ["cat-000001-state", "cat-000001.safetensors", "cat-000002.safetensors"]
