"""Where the WD14 tagger comes from: a model downloaded into the WebUI's models folder (a fake hub: tests never
download) and onnxruntime installed on request through the install gate (a fake pip; nothing is installed)."""
from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest

from lora_trainer.dataset import wd14, wd14_models
from lora_trainer.errors import DatasetError, MissingDependency


# --- the model download (a fake hub: tests never download) ------------------------------------------
def fake_hub(monkeypatch, fail: Exception | None = None):
    calls = []

    def hf_hub_download(repo_id, filename, revision=None, cache_dir=None):
        calls.append((repo_id, filename))
        if fail is not None:
            raise fail
        blob = Path(cache_dir) / "blobs" / f"{len(calls)}"
        blob.parent.mkdir(parents=True, exist_ok=True)
        if filename == wd14.TAGS_FILE:
            blob.write_text("tag_id,name,category,count\n0,1girl,0,9\n", encoding="utf-8")
        else:
            blob.write_bytes(b"onnx bytes")
        link = Path(cache_dir) / "snapshots" / "main" / filename
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(blob)
        return str(link)

    monkeypatch.setitem(sys.modules, "huggingface_hub", types.SimpleNamespace(hf_hub_download=hf_hub_download))
    return calls


def test_a_model_is_downloaded_into_the_models_folder_whole_or_not_at_all(tmp_path, monkeypatch):
    models = tmp_path / "WebUI models 模型"
    calls = fake_hub(monkeypatch)
    folder = wd14_models.download_model("SmilingWolf/wd-vit-tagger-v3", models)
    assert folder == models / "wd14" / "wd-vit-tagger-v3"
    assert (folder / "model.onnx").read_bytes() == b"onnx bytes" and not (folder / "model.onnx").is_symlink()
    assert wd14_models.model_source(folder) == "SmilingWolf/wd-vit-tagger-v3"
    assert sorted(p.name for p in (models / "wd14").iterdir()) == ["wd-vit-tagger-v3"]
    assert wd14_models.download_model("SmilingWolf/wd-vit-tagger-v3", models) == folder and len(calls) == 2
    assert wd14_models.find_models(models) == [folder]

    class RepositoryNotFoundError(Exception):
        pass

    fake_hub(monkeypatch, RepositoryNotFoundError("404"))
    with pytest.raises(DatasetError, match="does not exist") as err:
        wd14_models.download_model("someone/nothing-here", models)
    assert "by hand into" in err.value.advice
    assert sorted(p.name for p in (models / "wd14").iterdir()) == ["wd-vit-tagger-v3"]   # nothing half-written
    for bad in ("", "no-slash", "a/b/c", "../x", "a/.."):
        with pytest.raises(DatasetError, match="not a Hugging Face repository"):
            wd14_models.download_model(bad, models)
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)
    with pytest.raises(MissingDependency, match="huggingface_hub"):
        wd14_models.download_model("a/b", models)


# --- onnxruntime on request, through the gate (a fake pip) ------------------------------------------
def gate_fakes(monkeypatch, *, present=False, dry=None, install_error="", change_numpy=False):
    from lora_trainer.install import gate, on_request

    seen = {}
    installed = {"numpy": ("numpy", "1.26.2"), "protobuf": ("protobuf", "3.20.0"), "torch": ("torch", "2.1.2+cu121")}
    state = {"installed": False}
    monkeypatch.setattr(on_request, "_importable", lambda module: present or state["installed"])

    def distributions():
        out = dict(installed)
        if state["installed"]:
            out["onnxruntime"] = ("onnxruntime", "1.23.2")
            if change_numpy:
                out["numpy"] = ("numpy", "2.1.0")
        return out

    def dry_run(python, specs, constraints, extra=(), index_url=None, timeout=0):
        seen["dry_constraints"] = Path(constraints).read_text(encoding="utf-8")
        seen["specs"] = specs
        return dry if dry is not None else gate.DryRun(
            plan={"onnxruntime": ("onnxruntime", "1.23.2"), "flatbuffers": ("flatbuffers", "25.12.19")},
            sources={"onnxruntime": "https://files/onnxruntime-1.23.2-cp310-cp310-manylinux.whl",
                     "flatbuffers": "https://files/flatbuffers-25.12.19-py2.py3-none-any.whl"})

    def install(python, args, index_url=None, timeout=0):
        seen["install_args"] = args
        seen["install_constraints"] = Path(args[args.index("-c") + 1]).read_text(encoding="utf-8")
        state["installed"] = not install_error
        return install_error

    monkeypatch.setattr(on_request, "installed_distributions", distributions)
    monkeypatch.setattr(gate, "dry_run", dry_run)
    monkeypatch.setattr(gate, "install_with_subprocess", install)
    return seen


def test_onnxruntime_is_installed_on_request_only_as_the_gate_allows(tmp_path, monkeypatch):
    from lora_trainer.install import gate
    from lora_trainer.install.on_request import install_on_request

    env = {"PYTHONPATH": ""}
    root = tmp_path / "ext"
    gate_fakes(monkeypatch, present=True)
    assert install_on_request("onnxruntime", env=env, extension_root=root).status == "present"

    seen = gate_fakes(monkeypatch)
    result = install_on_request("onnxruntime", env=env, extension_root=root, dry_run=True)
    assert result.status == "would install" and "onnxruntime 1.23.2" in result.message and "install_args" not in seen
    assert "numpy==1.26.2" in seen["dry_constraints"] and "torch==2.1.2+cu121" in seen["dry_constraints"]
    assert seen["specs"] == {"onnxruntime": ">=1.17,<1.24"}

    seen = gate_fakes(monkeypatch)
    result = install_on_request("onnxruntime", env=env, extension_root=root)
    assert result.ok and result.status == "installed" and "unchanged" in result.message
    assert "onnxruntime==1.23.2" in seen["install_args"] and "flatbuffers==25.12.19" in seen["install_constraints"]
    assert not any(a in gate.FORBIDDEN_ARGS for a in seen["install_args"])

    gate_fakes(monkeypatch, dry=gate.DryRun(conflict="onnxruntime 1.23.2 depends on numpy>=1.21.6",
                                            blockers=["numpy"]))
    result = install_on_request("onnxruntime", env=env, extension_root=root)
    assert result.status == "refused" and "numpy 1.26.2" in result.message and "pip install" in result.command

    gate_fakes(monkeypatch, dry=gate.DryRun(plan={"onnxruntime": ("onnxruntime", "1.23.2"),
                                                  "numpy": ("numpy", "2.1.0")}))
    result = install_on_request("onnxruntime", env=env, extension_root=root)
    assert result.status == "refused" and "would change numpy 1.26.2 to 2.1.0" in result.message

    gate_fakes(monkeypatch, dry=gate.DryRun(error="the package index could not be reached"))
    assert "could not be reached" in install_on_request("onnxruntime", env=env, extension_root=root).message

    gate_fakes(monkeypatch, install_error="no space left on device")
    result = install_on_request("onnxruntime", env=env, extension_root=root)
    assert result.status == "failed" and "no space left" in result.message

    gate_fakes(monkeypatch, change_numpy=True)
    result = install_on_request("onnxruntime", env=env, extension_root=root)
    assert result.status == "failed" and '"numpy==1.26.2"' in result.command

    with pytest.raises(ValueError):
        install_on_request("torch", env=env, extension_root=root)
    gate_fakes(monkeypatch)
    result = install_on_request("onnxruntime", env={"LORA_TRAINER_PIP_ARGS": "--upgrade"}, extension_root=root)
    assert result.status == "failed" and "--upgrade" in result.message
