"""The HTTP API through FastAPI's TestClient (fastapi 0.94 + pydantic 1 on the A1111 stack, 0.104 +
pydantic 2 on Forge's), over a runner with the fake A1111 and the scripted training loop."""
from __future__ import annotations

import os
import time
import types

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

import fake_host  # noqa: E402
from fake_host import scripted  # noqa: E402
from lora_trainer.hosts.base import basic_auth_dependencies  # noqa: E402
from lora_trainer.runner import Runner  # noqa: E402
from lora_trainer.runner.api import PREFIX, register_api  # noqa: E402

WAIT = 30


@pytest.fixture
def world(tmp_path, monkeypatch):
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from lora_trainer.hosts import detect_host

    root = tmp_path / "webui"
    base = fake_host.write_checkpoint(root / "models" / "Stable-diffusion" / "base.safetensors", "sd1")
    (tmp_path / "data" / "5_zkz").mkdir(parents=True)
    fake = fake_host.activate("a1111", root=root, loaded=base, api_auth="me:secret")
    host = detect_host()
    runner = Runner(host, state_dir=str(tmp_path / "jobs"))
    script = scripted.install(monkeypatch)

    def client(dependencies=()):
        app = FastAPI()
        register_api(app, runner, list(dependencies))
        try:
            return TestClient(app)
        except TypeError:   # starlette < 0.28's TestClient with httpx 0.28 (Forge itself pins httpx 0.24)
            return AsgiClient(app)
    yield types.SimpleNamespace(fake=fake, host=host, runner=runner, script=script, client=client, base=str(base),
                                data=str(tmp_path / "data"), out=os.path.join(host.lora_dir(), "api"))
    runner.shutdown(WAIT)
    fake_host.deactivate()


class AsgiClient:
    """The few TestClient calls used here, over httpx's ASGI transport."""

    def __init__(self, app) -> None:
        self.app = app

    def request(self, method, url, **kwargs):
        import asyncio

        import httpx

        async def send():
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app),
                                         base_url="http://testserver") as client:
                return await client.request(method, url, **kwargs)
        return asyncio.run(send())

    def get(self, url, **kwargs):
        return self.request("GET", url, **kwargs)

    def post(self, url, **kwargs):
        return self.request("POST", url, **kwargs)


def settings(world, **changes) -> dict:
    values = {"pretrained_model_name_or_path": world.base, "train_data_dir": world.data, "output_dir": world.out,
              "output_name": "api lora", "resolution": 64, "network_dim": 8}
    values.update(changes)
    return values


def wait_done(client, job_id):
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        job = client.get(f"{PREFIX}/jobs/{job_id}").json()
        if job["status"] in ("finished", "stopped", "failed", "cancelled"):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not end: {job}")


def test_start_list_and_read_the_files_of_a_job(world):
    client = world.client()
    answer = client.post(f"{PREFIX}/jobs", json={"config": settings(world),
                                                 "previews": {"prompts": ["{trigger} on a table"], "width": 64,
                                                              "height": 64, "steps": 2}})
    assert answer.status_code == 201, answer.text
    job = answer.json()
    assert job["output_name"] == "api lora" and job["config"]["network_dim"] == 8 and job["trigger"] == "zkz"
    done = wait_done(client, job["id"])
    assert done["status"] == "finished" and done["error"] is None

    listed = client.get(f"{PREFIX}/jobs").json()
    assert [j["id"] for j in listed] == [job["id"]]
    assert listed[0]["losses"] == [[1, 1.0], [2, 0.5], [3, 1 / 3], [4, 0.25]]
    assert listed[0]["epoch_losses"] == [[1, 2, 0.5], [2, 4, 0.25]]

    files = client.get(f"{PREFIX}/jobs/{job['id']}/files").json()
    assert files["output_dir"] == world.out
    assert [(os.path.basename(f["path"]), f["kind"]) for f in files["files"]] == [
        ("api lora-000001.safetensors", "epoch"), ("api lora-000002.safetensors", "epoch"),
        ("api lora.safetensors", "final"), ("api lora.json", "sidecar"), ("api lora.preview.png", "cover")]
    assert all(f["exists"] and f["size"] > 0 for f in files["files"] + files["previews"])
    assert files["previews"][0]["prompt"] == "zkz on a table"


def test_settings_as_toml_text_and_their_warnings(world):
    client = world.client()
    toml = (f'[model]\npretrained_model_name_or_path = "{world.base}"\n[data]\ntrain_data_dir = "{world.data}"\n'
            f'resolution = "64"\nxformers = true\nmy_own_flag = 3\n[output]\noutput_dir = "{world.out}"\n'
            'output_name = "from toml"\n')
    answer = client.post(f"{PREFIX}/jobs", json={"toml": toml, "previews": {"enabled": False}})
    assert answer.status_code == 201, answer.text
    job = wait_done(client, answer.json()["id"])
    assert job["status"] == "finished" and job["output_name"] == "from toml" and job["previews"] == []
    assert any("ignored setting(s) this trainer does not use: my_own_flag" in line for line in job["log"])


def test_stop_a_running_job(world):
    client = world.client()
    world.script.pause_at = 1
    job_id = client.post(f"{PREFIX}/jobs", json={"config": settings(world)}).json()["id"]
    assert world.script.paused.wait(WAIT)
    answer = client.post(f"{PREFIX}/jobs/{job_id}/stop")
    assert answer.status_code == 200 and answer.json()["status"] == "stopping"
    job = wait_done(client, job_id)
    assert job["status"] == "stopped" and job["files"][0]["path"].endswith("api lora-interrupted.safetensors")
    again = client.post(f"{PREFIX}/jobs/{job_id}/stop")
    assert again.status_code == 409 and again.json()["error"] == f"job {job_id} is already stopped"
    missing = client.post(f"{PREFIX}/jobs/nope/stop")
    assert missing.status_code == 404 and "GET /lora-trainer/v1/jobs" in missing.json()["advice"]
    assert client.get(f"{PREFIX}/jobs/nope").status_code == 404
    assert client.get(f"{PREFIX}/jobs/nope/files").status_code == 404


@pytest.mark.parametrize("body,error,advice", [
    ("{not json", "not valid JSON", '{"config"'),
    ({"config": {}, "toml": ""}, "exactly one of", '{"config"'),
    ({"settings": {}}, "exactly one of", '{"config"'),
    ({"config": {"network_dim": "lots"}}, "network_dim = 'lots' is not a whole number", "correct the settings"),
    ({"toml": "resolution = [unclosed"}, "is not valid TOML", "check quotes"),
    ({"config": "train please"}, "must be an object", '{"config"'),
])
def test_bad_requests_answer_400_with_advice(body, error, advice, world):
    client = world.client()
    if isinstance(body, str):
        answer = client.post(f"{PREFIX}/jobs", content=body.encode(), headers={"Content-Type": "application/json"})
    else:
        answer = client.post(f"{PREFIX}/jobs", json=body)
    assert answer.status_code == 400
    assert error in answer.json()["error"] and advice in answer.json()["advice"]
    assert world.runner.jobs() == []


def test_settings_the_trainer_refuses_answer_400(world):
    client = world.client()
    answer = client.post(f"{PREFIX}/jobs", json={"config": settings(world, resolution=100, train_data_dir="/nowhere")})
    assert answer.status_code == 400
    assert "resolution 100 is not a multiple of 64" in answer.json()["error"]
    assert "train_data_dir: the training images folder /nowhere was not found" in answer.json()["error"]
    assert answer.json()["advice"]
    bad_previews = client.post(f"{PREFIX}/jobs", json={"config": settings(world), "previews": {"steps": 0}})
    assert bad_previews.status_code == 400 and "previews.steps" in bad_previews.json()["error"]


def test_api_auth_from_the_host_flag(world):
    client = world.client(world.host.api_auth_dependencies())
    assert client.get(f"{PREFIX}/jobs").status_code == 401
    assert client.get(f"{PREFIX}/status", auth=("me", "wrong")).status_code == 401
    assert client.post(f"{PREFIX}/jobs", json={"config": settings(world)}).status_code == 401
    assert world.runner.jobs() == []
    assert client.get(f"{PREFIX}/jobs", auth=("me", "secret")).status_code == 200
    other = world.client(basic_auth_dependencies("a:1, b:2"))
    assert other.get(f"{PREFIX}/jobs", auth=("b", "2")).status_code == 200
    assert other.get(f"{PREFIX}/jobs", auth=("a", "2")).status_code == 401


def test_status_names_the_host_and_the_loaded_model(world):
    status = world.client().get(f"{PREFIX}/status").json()
    assert status["host"] == "a1111" and status["lora_dir"] == world.host.lora_dir()
    assert status["loaded_checkpoint"]["path"] == world.base and status["loaded_checkpoint"]["family"] == "sd1"
    assert set(status["install"]) == {"ok", "problems", "command"}
    assert status["current_job"] is None and status["queued"] == 0


def test_unknown_routes_and_methods_answer_with_error_and_advice(world):
    from fastapi import FastAPI

    client = world.client()
    missing = client.get(f"{PREFIX}/jobz")
    assert missing.status_code == 404
    assert missing.json()["error"] == f"there is no route GET {PREFIX}/jobz"
    assert f"POST {PREFIX}/jobs" in missing.json()["advice"] and "detail" not in missing.json()
    assert client.get(PREFIX).status_code == 404 and "error" in client.get(PREFIX).json()
    wrong = client.request("DELETE", f"{PREFIX}/jobs")
    assert wrong.status_code == 405 and wrong.headers["allow"] == "GET, POST"
    assert wrong.json() == {"error": f"{PREFIX}/jobs does not answer DELETE", "advice": f"use GET or POST for {PREFIX}/jobs",
                            "key": "api.wrong_method"}
    assert client.get(f"{PREFIX}/jobs/x/stop").status_code == 405
    # a route that other code adds under the prefix afterwards still answers
    app = FastAPI()
    register_api(app, world.runner)
    app.add_api_route(f"{PREFIX}/later", lambda: {"later": True}, methods=["GET"])
    from fastapi.testclient import TestClient
    try:
        later = TestClient(app)
    except TypeError:
        later = AsgiClient(app)
    assert later.get(f"{PREFIX}/later").json() == {"later": True}
    assert later.post(f"{PREFIX}/later").status_code == 405 and later.get("/elsewhere").json() == {"detail": "Not Found"}


def test_sizes_seeds_and_prompt_counts_are_bounded(world):
    client = world.client()
    cases = [({"config": settings(world, resolution=1048576)}, "resolution 1048576 is too large; use at most 4096"),
             ({"config": settings(world, max_train_epochs=100_000)}, "max_train_epochs is 100000, but it cannot be "
                                                                       "above 10000"),
             ({"config": settings(world, seed=2**64)}, "seed is 18446744073709551616, but it cannot be above 4294967295"),
             ({"config": settings(world), "previews": {"width": 100_000}},
              "previews.width is 100000; use a multiple of 8 from 64 to 2048"),
             ({"config": settings(world), "previews": {"height": 4096}}, "previews.height is 4096"),
             ({"config": settings(world), "previews": {"seed": 2**32}},
              "previews.seed is 4294967296; use 0 to 4294967295"),
             ({"config": settings(world), "previews": {"seed": 10**400}}, "previews.seed = 1000"),
             ({"config": settings(world), "previews": {"prompts": ["{trigger}"] * 17}},
              "previews.prompts holds 17 prompts; use at most 16")]
    for body, error in cases:
        answer = client.post(f"{PREFIX}/jobs", json=body)
        assert answer.status_code == 400 and error in answer.json()["error"], (body, answer.json())
    assert world.runner.jobs() == []


@pytest.mark.parametrize("changes,error", [
    ({"output_name": "a\u0000b"}, "holds control characters"), ({"output_name": "x" * 300}, "300 bytes long"),
    ({"output_name": ["a"]}, "output_name = ['a'] is not text"), ({"output_dir": 5}, "output_dir = 5 is not text"),
    ({"network_dim": {"a": 1}}, "network_dim = {'a': 1} is not a whole number"),
    ({"max_train_epochs": True}, "max_train_epochs = True is not a whole number"),
    ({"learning_rate": float("inf")}, "learning_rate = inf is not a finite number")],
    ids=["nul", "300 letters", "list name", "number folder", "object rank", "true epochs", "infinite rate"])
def test_names_and_values_no_run_could_use_answer_400(world, changes, error):
    answer = world.client().post(f"{PREFIX}/jobs", json={"config": settings(world, **changes)})
    assert answer.status_code == 400 and error in answer.json()["error"], answer.json()
    assert world.runner.jobs() == []
