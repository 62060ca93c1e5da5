"""The Dataset workbench over HTTP: import, check, fix, edit, undo; paths of a shared host confined."""
from __future__ import annotations

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from lora_trainer.hosts.standalone import StandaloneAdapter  # noqa: E402
from lora_trainer.runner.dataset_api import PREFIX, register_dataset_api  # noqa: E402
from test_dataset_project import textured  # noqa: E402


def client(host):
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    app = FastAPI()
    register_dataset_api(app, host, [])
    return TestClient(app)


def test_import_check_fix_edit_and_undo_over_http(tmp_path):
    src = tmp_path / "pics"
    for i in range(3):
        textured(src / f"{i}.png", seed=i * 9)
        (src / f"{i}.txt").write_text("1girl, blue hair", encoding="utf-8")
    api = client(StandaloneAdapter(lora_dir=str(tmp_path / "loras"), shared=True, allow_paths=[str(tmp_path)]))
    done = api.post(PREFIX + "/import", json={"project": str(tmp_path / "proj"), "source": str(src),
                                               "trigger": "zkz", "repeats": 5}).json()
    assert sorted(done["imported"]) == ["0.png", "1.png", "2.png"] and done["training"]["train_data_dir"]
    img = done["training"]["train_data_dir"]
    checked = api.post(PREFIX + "/check", json={"train_data_dir": img, "trigger": "zkz", "language": "zh_CN"}).json()
    keys = {f["key"]: f for f in checked["findings"]}
    assert "no_trigger" in keys and "触发词" in keys["no_trigger"]["message"] and checked["ready"]
    fixed = api.post(PREFIX + "/fix", json={"train_data_dir": img, "key": "no_trigger", "trigger": "zkz"}).json()
    assert len(fixed["done"]) == 3
    shown = api.post(PREFIX + "/edit", json={"folder": img, "operation": "fold", "trigger": "zkz",
                                              "tags": ["blue hair"]}).json()
    assert [c["after"] for c in shown["changes"]] == ["zkz, 1girl"] * 3
    applied = api.post(PREFIX + "/edit", json={"folder": img, "operation": "fold", "trigger": "zkz",
                                                "tags": ["blue hair"], "apply": True}).json()
    assert applied["written"] == 3
    undone = api.post(PREFIX + "/undo", json={"folder": img, "language": "zh_CN"}).json()
    assert undone["written"] == 3 and undone["undone"] == "把 blue hair 整合进 zkz"
    again = api.post(PREFIX + "/import", json={"project": str(tmp_path / "proj"), "source": str(src),
                                                "trigger": "zkz"}).json()
    assert {s["why"] for s in again["skipped"]} == {"already in the project"}     # English unless asked

    refused = api.post(PREFIX + "/check", json={"train_data_dir": "/etc"})
    assert refused.status_code == 400 and "outside the folders" in refused.json()["error"]
    bad = api.post(PREFIX + "/edit", json={"folder": img, "operation": "shout"})
    assert bad.status_code == 400 and "not known" in bad.json()["error"]
    assert api.post(PREFIX + "/check", content=b"[").status_code == 400
    assert api.post(PREFIX + "/undo", json={"folder": 5}).json()["error"] == '"folder" must be a str'
