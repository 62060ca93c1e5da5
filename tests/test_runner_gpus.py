"""Which GPUs a job trains on: the choice checked against the GPUs the WebUI sees, where it trains, and the
devices its own processes get."""
from __future__ import annotations

import sys

import pytest

from lora_trainer.errors import ConfigError
from lora_trainer.runner import gpus, processes


def test_a_choice_is_checked_against_the_gpus_seen():
    assert gpus.chosen_gpus(None, ["0", "1"]) == () and gpus.chosen_gpus([], ["0", "1"]) == ()
    assert gpus.chosen_gpus([1, "0", 1], ["0", "1"]) == ("0", "1")
    assert gpus.chosen_gpus(["1 · GPU B, 24 GB"], ["0", "1"]) == ("1",)   # the tab's labels
    with pytest.raises(ConfigError) as err:
        gpus.chosen_gpus([3], ["0", "1"])
    assert err.value.message == "there is no GPU 3 here (this WebUI sees: 0, 1)"
    assert err.value.format("zh_CN").startswith("这里没有 GPU 3")
    with pytest.raises(ConfigError, match="this WebUI sees: none"):
        gpus.chosen_gpus([0], [])
    for bad in ("0,1", 1, {"gpu": 0}):
        with pytest.raises(ConfigError, match="must be a list of GPU numbers"):
            gpus.chosen_gpus(bad, ["0"])
    with pytest.raises(ConfigError):
        gpus.chosen_gpus([True], ["0", "1"])


def test_the_webuis_own_gpu_trains_here_others_in_processes_of_their_own():
    assert gpus.trains_here((), own="0") and gpus.trains_here(("0",), own="0")
    assert not gpus.trains_here(("1",), own="0") and not gpus.trains_here(("0", "1"), own="0")
    pytest.importorskip("torch")   # the in-process trainer is the training loop
    assert processes.trainer_for(()).__name__ == "train"
    assert processes.trainer_for(("0", "1")).func is processes.train_in_processes


def test_processes_get_the_physical_devices_and_one_process_no_multi_gpu_flag():
    assert gpus.physical_ids(["0", "1"], "2,3") == ["2", "3"]
    assert gpus.physical_ids(["1"], "") == ["1"] and gpus.physical_ids(["1"], "5") == ["1"]
    one = processes.launch_command(1, python=sys.executable)
    assert "--multi_gpu" not in one and one[one.index("--num_processes") + 1] == "1"
    assert "--multi_gpu" in processes.launch_command(2, python=sys.executable)


def test_without_torch_loaded_or_cuda_no_gpu_is_seen(monkeypatch):
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    assert gpus.visible_gpus() == [] and gpus.own_gpu() is None


def test_the_api_refuses_a_gpu_it_does_not_see_in_the_callers_language(monkeypatch):
    import types

    from conftest import api_client

    monkeypatch.setattr(gpus, "visible_gpus", lambda: [("0", "0 · GPU A, 24 GB")])
    asked = []
    client = api_client(types.SimpleNamespace(host=types.SimpleNamespace(name="stub"), get=lambda job_id: None,
                                              submit=lambda cfg, previews, notes=(), gpus=(): asked.append(gpus)))
    from lora_trainer.runner.api import PREFIX
    body = {"config": {"network_dim": 4}, "gpus": [0, 2]}
    answer = client.post(f"{PREFIX}/jobs", json=body)
    assert answer.status_code == 400 and answer.json()["error"] == "there is no GPU 2 here (this WebUI sees: 0)"
    assert client.post(f"{PREFIX}/jobs", json={**body, "language": "zh_CN"}).json()["error"].startswith("这里没有")
    assert asked == []


def test_an_api_job_previews_at_its_trained_size_unless_it_says_otherwise():
    import types

    from conftest import api_client
    from lora_trainer.runner.job import Job

    got = []

    def submit(cfg, previews, notes=(), gpus=()):
        got.append(previews)
        return Job(id="x", output_name=cfg.output_name)

    client = api_client(types.SimpleNamespace(host=types.SimpleNamespace(name="stub"), get=lambda job_id: None,
                                              submit=submit))
    from lora_trainer.runner.api import PREFIX

    for previews in (None, {"seed": 3}, {"width": 128, "steps": 4}):
        body = {"config": {"resolution": "64,96"}} | ({"previews": previews} if previews is not None else {})
        assert client.post(f"{PREFIX}/jobs", json=body).status_code == 201
    assert [(p.width, p.height, p.steps) for p in got] == [(64, 96, 20), (64, 96, 20), (128, 96, 4)]
