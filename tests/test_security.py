"""A WebUI that serves other computers: what a caller sends reaches no file outside the allowed folders, two
jobs never write the same files, and the standalone server asks for its credentials on every route."""
from __future__ import annotations

import json
import os
import stat
import types
import urllib.error
import urllib.request
from base64 import b64encode
from pathlib import Path

import pytest

import fake_host
from fake_host import scripted
from lora_trainer.config.allowed_folders import AllowedFolders, same_output
from lora_trainer.config.schema import TrainConfig
from lora_trainer.errors import ConfigError
from lora_trainer.runner import Runner

WAIT = 30


def test_paths_are_compared_after_resolving_dots_links_and_relative_parts(tmp_path, monkeypatch):
    allowed = tmp_path / "allowed"
    (allowed / "sub").mkdir(parents=True)
    (tmp_path / "secret").mkdir()
    os.symlink(tmp_path / "secret", allowed / "link")
    folders = AllowedFolders.only([str(allowed)])
    assert folders.check(str(allowed / "sub" / ".." / "sub"), "output_dir") == str(allowed / "sub")
    for bad in (allowed / ".." / "secret", allowed / "link" / "x", Path("/etc/x"), "../../tmp/escape"):
        with pytest.raises(ConfigError) as err:
            folders.check(str(bad), "output_dir")
        assert "output_dir" in err.value.message and str(allowed) in err.value.advice
    monkeypatch.chdir(allowed)
    assert folders.check("sub", "train_data_dir") == str(allowed / "sub")   # relative: against the working folder
    assert AllowedFolders.anywhere().check("/etc/x", "output_dir") == "/etc/x"   # a local WebUI: any path


def test_every_path_setting_is_confined_and_named():
    cfg = TrainConfig(pretrained_model_name_or_path="/etc/model.safetensors", train_data_dir="/etc",
                      reg_data_dir="/root", output_dir="/etc/x", resume="/tmp/evil-state", logging_dir="/var/log",
                      validation_data_dir="/etc/v")
    with pytest.raises(ConfigError) as err:
        AllowedFolders.only(["/nonexistent/allowed"]).check_config(cfg)
    named = " ".join(err.value.problems)
    for setting in ("pretrained_model_name_or_path", "train_data_dir", "reg_data_dir", "output_dir", "resume",
                    "logging_dir", "validation_data_dir"):
        assert setting in named
    assert "Settings → LoRA Trainer" in err.value.advice   # how the owner allows more folders


def test_the_same_output_compares_resolved_paths(tmp_path):
    (tmp_path / "out").mkdir()
    assert same_output(str(tmp_path / "out" / "." / "same"), "a", str(tmp_path / "out" / "same"), "a")
    assert same_output(str(tmp_path / "x" / ".." / "out"), "a", str(tmp_path / "out"), "a")
    assert not same_output(str(tmp_path / "out"), "a", str(tmp_path / "out"), "b")


@pytest.fixture
def shared_webui(tmp_path, monkeypatch):
    """The fake A1111 started with --listen, a dataset inside its data folder and one outside."""
    root = tmp_path / "webui"
    base = fake_host.write_checkpoint(root / "models" / "Stable-diffusion" / "base.safetensors", "sd1")
    inside = root / "lora_trainer" / "data" / "3_zkz"
    inside.mkdir(parents=True)
    (tmp_path / "elsewhere" / "3_zkz").mkdir(parents=True)
    fake = fake_host.activate("a1111", root=root, loaded=base)
    from modules import shared

    shared.cmd_opts.listen = True
    from lora_trainer.hosts import detect_host

    host = detect_host()
    runner = Runner(host, state_dir=str(tmp_path / "jobs"))
    script = scripted.install(monkeypatch)
    yield types.SimpleNamespace(fake=fake, host=host, runner=runner, base=str(base), tmp=tmp_path, root=root,
                                data=str(inside.parent), script=script, shared=shared)
    runner.shutdown(WAIT)
    fake_host.deactivate()


def job_config(world, **changes) -> TrainConfig:
    values = dict(pretrained_model_name_or_path=world.base, train_data_dir=world.data,
                  output_dir=os.path.join(world.host.lora_dir(), "cat"), output_name="cat", resolution="64")
    values.update(changes)
    return TrainConfig(**values)


def test_a_shared_webui_refuses_paths_outside_its_folders_and_says_nothing_of_them(shared_webui):
    world = shared_webui
    outside = world.tmp / "elsewhere"
    refused = [dict(output_dir="/etc/x"), dict(output_dir=str(world.root / ".." / "escape")),
               dict(train_data_dir="/etc"), dict(logging_dir=str(outside)), dict(resume=str(outside)),
               dict(pretrained_model_name_or_path=str(outside / "missing.safetensors")),
               dict(pretrained_model_name_or_path="/etc/hostname")]
    messages = []
    for changes in refused:
        with pytest.raises(ConfigError) as err:
            world.runner.submit(job_config(world, **changes))
        setting = next(iter(changes))
        assert setting in str(err.value) and "outside the folders" in str(err.value)
        assert "not found" not in str(err.value) and "passwd" not in str(err.value)
        messages.append(str(err.value).replace(next(iter(changes.values())), "PATH"))
    assert messages[-1] == messages[-2]   # a missing and an existing file answer alike
    assert world.runner.jobs() == []
    world.script.pause_at = 0
    assert world.runner.submit(job_config(world)).status == "queued"   # inside: accepted
    world.script.resume.set()


def test_the_owner_allows_more_folders_in_settings(shared_webui):
    world = shared_webui
    from lora_trainer.hosts.webui import ALLOWED_FOLDERS_OPTION, register_settings

    register_settings(lambda **kw: None)
    elsewhere = str(world.tmp / "elsewhere")
    assert not world.host.allowed_folders().allows(elsewhere)
    world.shared.opts.set(ALLOWED_FOLDERS_OPTION, elsewhere + "\n")
    assert world.host.allowed_folders().allows(elsewhere)
    world.shared.cmd_opts.listen = False
    assert world.host.allowed_folders().allows("/anything")   # a local WebUI allows any path


def test_a_checkpoint_the_webui_lists_through_a_symbolic_link_is_allowed(shared_webui):
    """A models folder often links checkpoints kept elsewhere (one copy for several WebUIs): in a shared A1111
    the Train tab refused the loaded checkpoint, models/Stable-diffusion/x.safetensors, because the link
    resolves outside the allowed folders. The files the WebUI lists are allowed; their neighbours are not."""
    world = shared_webui
    elsewhere = world.tmp / "one copy for all"
    target = fake_host.write_checkpoint(elsewhere / "linked.safetensors", "sd1")
    fake_host.write_checkpoint(elsewhere / "not listed.safetensors", "sd1")
    link = world.root / "models" / "Stable-diffusion" / "linked.safetensors"
    link.symlink_to(target)
    assert not world.host.allowed_folders().allows(str(link))     # not listed yet
    world.host.list_checkpoints(refresh=True)
    allowed = world.host.allowed_folders()
    assert allowed.allows(str(link)) and allowed.allows(str(target))
    assert allowed.check(str(link), "pretrained_model_name_or_path") == os.path.realpath(target)
    assert not allowed.allows(str(elsewhere / "not listed.safetensors")) and not allowed.allows(str(elsewhere))
    world.script.pause_at = 0
    assert world.runner.submit(job_config(world, pretrained_model_name_or_path=str(link))).status == "queued"
    world.script.resume.set()


def test_a_job_never_writes_where_a_running_job_writes(shared_webui):
    world = shared_webui
    world.shared.cmd_opts.listen = False
    world.script.pause_at = 0
    out = os.path.join(world.host.lora_dir(), "same")
    world.runner.submit(job_config(world, output_dir=out, output_name="same"))
    dotted = os.path.join(world.host.lora_dir(), ".", "same")
    with pytest.raises(ConfigError, match="already writes same"):
        world.runner.submit(job_config(world, output_dir=dotted, output_name="same"))
    world.script.resume.set()


def test_evaluate_refuses_a_run_outside_the_allowed_folders(shared_webui):
    from lora_trainer.ui.evaluate import actions as ea
    from lora_trainer.ui.evaluate import validation as evl

    world = shared_webui
    shown = ea.analyse("", str(world.tmp / "elsewhere"), "", world.host, world.runner)
    assert shown.report is None and "outside the folders" in shown.message
    report = types.SimpleNamespace(run=types.SimpleNamespace(name="x", files=[]))
    refused = evl.compute_validation(report, "/etc", "", "", world.host, world.runner, validate=lambda *a, **k: [])
    assert "outside the folders" in refused.message


def test_stale_temp_files_and_state_folders_of_killed_saves_go_at_the_next_run(tmp_path):
    from lora_trainer.io.atomic import cleanup_stale_temps

    dead = 2 ** 22 + 12345   # above the usual pid range: no such process
    stale_file = tmp_path / f".a.safetensors.tmp-{dead}-0a1b"
    stale_file.write_bytes(b"half")
    stale_state = tmp_path / f".a-000001-state.tmp-{dead}-cc"
    stale_state.mkdir()
    (stale_state / "state.json").write_text("{")
    live = tmp_path / f".b.safetensors.tmp-{os.getpid()}-0a1b"
    live.write_bytes(b"being written")
    mine = tmp_path / "notes.txt"
    mine.write_text("the user's")
    removed = cleanup_stale_temps(tmp_path)
    assert sorted(removed) == sorted([stale_file, stale_state])
    assert live.exists() and mine.exists()


def test_files_get_the_users_usual_mode(tmp_path):
    torch = pytest.importorskip("torch")
    pytest.importorskip("safetensors")
    from lora_trainer.io.atomic import atomic_write, save_safetensors_atomic

    old = os.umask(0o022)
    try:
        save_safetensors_atomic({"x": torch.zeros(1)}, tmp_path / "a.safetensors", {"k": "v"})
        with atomic_write(tmp_path / "b.json") as tmp:
            tmp.write_text("{}")
    finally:
        os.umask(old)
    for name in ("a.safetensors", "b.json"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644


# --- the standalone server with --listen --api-auth ---------------------------------------------------------

def request(url, method="GET", body=None, auth=None):
    headers = {"Content-Type": "application/json"}
    if auth:
        headers["Authorization"] = "Basic " + b64encode(auth.encode()).decode()
    data = json.dumps(body).encode() if body is not None else None
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data, method=method, headers=headers),
                                    timeout=30) as res:
            return res.status, res.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode("utf-8", "replace")


def test_the_standalone_server_asks_for_its_credentials_everywhere(tmp_path):
    pytest.importorskip("gradio")
    from test_browser import standalone_server

    base = fake_host.write_checkpoint(tmp_path / "models" / "base.safetensors", "sd1")
    data = tmp_path / "data" / "2_zkz"
    data.mkdir(parents=True)
    extra = ["--listen", "--api-auth", "me:secret", "--allow-path", str(tmp_path / "data")]
    with standalone_server(tmp_path, str(base), str(tmp_path / "loras"), extra) as (url, _log):
        status, page = request(url + "/")
        assert "lora_trainer_start" not in page   # the login page, not the tab
        for path in ("/config", "/info", "/file=" + str(base)):
            assert request(url + path)[0] == 401, path
        for path in ("/run/predict", "/api/predict", "/queue/join"):   # gradio's own API (3.41, 4.40)
            assert request(url + path, "POST", {"fn_index": 0, "data": []})[0] in (401, 404, 405), path
        assert request(url + "/lora-trainer/v1/jobs", "POST", {"config": {}})[0] == 401
        assert request(url + "/lora-trainer/v1/jobs")[0] == 401

        job = {"pretrained_model_name_or_path": str(base), "train_data_dir": str(data.parent),
               "output_dir": str(tmp_path / "loras" / "x"), "output_name": "x", "resolution": "64"}
        for changes in ({"output_dir": "/etc/x"}, {"train_data_dir": "/etc"}, {"logging_dir": "/tmp"},
                        {"resume": str(tmp_path)}, {"output_dir": "../../tmp/escape"}):
            status, text = request(url + "/lora-trainer/v1/jobs", "POST", {"config": {**job, **changes}},
                                   auth="me:secret")
            answer = json.loads(text)
            assert status == 400 and next(iter(changes)) in answer["error"], (changes, text)
            assert "passwd" not in text and "outside the folders" in answer["error"]
        assert request(url + "/config", auth=None)[0] == 401


def test_the_tab_checks_the_form_before_it_scans_or_starts(tmp_path):
    pytest.importorskip("gradio")
    from lora_trainer.hosts.standalone import StandaloneAdapter
    from lora_trainer.ui.dataset_tab import step_maths
    from lora_trainer.ui.tab import TabContext

    host = StandaloneAdapter(lora_dir=str(tmp_path / "loras"), shared=True)
    form = types.SimpleNamespace(to_config=lambda values, base: (base.replace(train_data_dir="/etc"), []))
    ctx = TabContext(None, host, None, TrainConfig(output_dir=str(tmp_path / "loras")), form, None)
    summary, plan = step_maths(ctx)
    assert "train_data_dir" in summary and "outside the folders" in summary and "passwd" not in summary
