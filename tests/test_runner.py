"""The runner's bookkeeping against the fake A1111, with a scripted training loop (torch-free, fast):
queue order, stop and cancel, errors with advice, previews per epoch, the Lora tab's sidecar files,
host calls in the right order, job records across restarts. Real training: test_runner_train.py.
"""
from __future__ import annotations

import json
import os
import types
from pathlib import Path

import pytest

import fake_host
from fake_host import scripted
from lora_trainer.config.schema import TrainConfig
from lora_trainer.errors import ConfigError, DatasetError
from lora_trainer.runner import PreviewSettings, Runner
from lora_trainer.runner import runner as runner_module
from lora_trainer.runner.job import Job

WAIT = 30


@pytest.fixture
def script(monkeypatch):
    return scripted.install(monkeypatch)


@pytest.fixture
def world(tmp_path):
    """A fake A1111 with an SD1 model loaded, a dataset folder, and a runner keeping records in tmp."""
    root = tmp_path / "webui"
    base = fake_host.write_checkpoint(root / "models" / "Stable-diffusion" / "base.safetensors", "sd1")
    data = tmp_path / "数据"
    (data / "3_zkz 猫").mkdir(parents=True)
    fake = fake_host.activate("a1111", root=root, loaded=base)
    from lora_trainer.hosts import detect_host
    host = detect_host()
    runner = Runner(host, state_dir=str(tmp_path / "jobs"))
    world = types.SimpleNamespace(fake=fake, host=host, runner=runner, base=str(base), data=str(data), tmp=tmp_path)
    yield world
    runner.shutdown(WAIT)
    fake_host.deactivate()


def config(world, name="cat", **changes) -> TrainConfig:
    values = dict(pretrained_model_name_or_path=world.base, train_data_dir=world.data,
                  output_dir=os.path.join(world.host.lora_dir(), name), output_name=name, resolution="64")
    values.update(changes)
    return TrainConfig(**values)


PREVIEWS = PreviewSettings(prompts=["{trigger}, sitting"], width=64, height=64, steps=2, seed=9)


def test_jobs_run_one_after_another_in_the_order_given(world, script, monkeypatch):
    for name in ("free_vram", "refresh_loras", "restore_vram"):
        real = getattr(world.host, name)
        monkeypatch.setattr(world.host, name, lambda real=real, name=name: (world.fake.record(f"adapter.{name}"),
                                                                              real())[1])
    script.pause_at = 2
    first = world.runner.submit(config(world, "first"), PREVIEWS)
    second = world.runner.submit(config(world, "second"), PREVIEWS)
    assert script.paused.wait(WAIT)
    now = world.runner.current()
    assert now.id == first.id and now.status == "training" and now.step == 2
    assert now.losses == [[1, 1.0], [2, 0.5]] and now.lr == {"unet": 1e-4, "text_encoder": 5e-5}
    assert now.it_per_s == 2.0 and now.eta_s == 1.0 and now.vram_gb == 1.5
    assert now.plan_text == "Step maths: scripted" and now.warnings == ["few images"]
    assert [j.id for j in world.runner.jobs()] == [second.id, first.id]
    assert world.runner.get(second.id).status == "queued"
    script.resume.set()
    one, two = world.runner.wait(first.id, WAIT), world.runner.wait(second.id, WAIT)
    assert (one.status, two.status) == ("finished", "finished")
    assert script.runs == ["first", "second"] and one.finished_at <= two.started_at
    # the host model leaves the GPU for the queue and comes back after the last job only
    assert world.fake.names("adapter.") == ["adapter.free_vram", "adapter.refresh_loras", "adapter.free_vram",
                                            "adapter.refresh_loras", "adapter.restore_vram"]
    assert world.fake.calls[:3] == ["adapter.free_vram", "unload_model_weights", "send_model_to_cpu"]
    assert world.fake.calls[-1] == "send_model_to_device"


def test_a_finished_job_has_previews_per_epoch_and_the_lora_tab_files(world, script):
    job = world.runner.wait(world.runner.submit(config(world), PREVIEWS).id, WAIT)
    assert job.status == "finished" and job.trigger == "zkz 猫" and job.family == "sd1"
    assert job.epoch_losses == [[1, 2, 0.5], [2, 4, 0.25]]
    out = Path(world.host.lora_dir()) / "cat"
    # previews and logs are in the run's folder, outside the Lora folder (the Lora tab lists its sub-folders)
    assert job.run_dir == os.path.join(world.host.runs_dir(), "cat-scripted")
    assert not Path(job.run_dir).is_relative_to(world.host.lora_dir())
    previews = Path(job.run_dir) / "previews"
    # one entry per picture: the final file's would repeat the last epoch's (the same weights)
    assert [p["path"] for p in job.previews] == [str(previews / "cat-000001-w1.0-0.png"),
                                                 str(previews / "cat-000002-w1.0-0.png")]
    assert [(p["epoch"], p["prompt"], os.path.basename(p["file"])) for p in job.previews] == [
        (1, "zkz 猫, sitting", "cat-000001.safetensors"), (2, "zkz 猫, sitting", "cat-000002.safetensors")]
    assert all(os.path.isfile(p["path"]) for p in job.previews)
    # the final file holds the last epoch's weights: its previews are not rendered twice
    assert [p.prompt for p in world.fake.processed] == ["zkz 猫, sitting <lora:cat-000001:1>",
                                                        "zkz 猫, sitting <lora:cat-000002:1>"]
    assert all(p.seed == 9 and p.width == 64 and p.lock_held for p in world.fake.processed)

    kinds = {f["kind"]: f["path"] for f in job.files}
    assert kinds["sidecar"] == str(out / "cat.json") and kinds["cover"] == str(out / "cat.preview.png")
    sidecar = json.loads((out / "cat.json").read_text(encoding="utf-8"))
    assert sidecar["activation text"] == "zkz 猫" and sidecar["preferred weight"] == 1.0
    assert sidecar["sd version"] == "SD1" and "base.safetensors" in sidecar["description"]
    assert "rank 32" in sidecar["notes"] and set(sidecar) == {"description", "sd version", "activation text",
                                                               "preferred weight", "notes"}
    assert (out / "cat.preview.png").read_bytes() == Path(job.previews[-1]["path"]).read_bytes()
    assert "list_available_networks:lock=True" in world.fake.calls
    record = json.loads((world.tmp / "jobs" / f"{job.id}.json").read_text(encoding="utf-8"))
    assert record["status"] == "finished" and record["losses"] == job.losses


def test_stop_a_running_job_and_cancel_a_queued_one(world, script):
    script.pause_at = 1
    running = world.runner.submit(config(world, "long"), PREVIEWS)
    queued = world.runner.submit(config(world, "later"), PREVIEWS)
    assert script.paused.wait(WAIT)
    assert world.runner.stop(queued.id) is True
    assert world.runner.get(queued.id).status == "cancelled"
    assert world.runner.remove(running.id) is False   # not while it runs
    assert world.runner.stop(running.id) is True
    assert world.runner.get(running.id).status == "stopping"
    job = world.runner.wait(running.id, WAIT)
    assert job.status == "stopped" and [f["kind"] for f in job.files] == ["interrupted"]
    assert job.files[0]["path"].endswith("long-interrupted.safetensors") and os.path.isfile(job.files[0]["path"])
    assert job.previews == [] and "process_images" not in world.fake.calls   # no previews of a stopped run
    assert world.runner.get(queued.id).started_at is None and script.runs == ["long"]
    assert world.fake.calls[-1] == "send_model_to_device"
    assert world.runner.stop(running.id) is False
    assert world.runner.remove(queued.id) and world.runner.get(queued.id) is None
    assert not (world.tmp / "jobs" / f"{queued.id}.json").exists()
    assert world.runner.remove("no-such-job") is False


@pytest.mark.parametrize("error,message,advice", [
    (DatasetError("the folder 3_zkz has no images", "add images"), "the folder 3_zkz has no images", "add images"),
    (RuntimeError("boom"), "RuntimeError: boom", "the full error is in the console window"),
    (ImportError("No module named 'diffusers'"), "could not be imported", "install status"),
])
def test_failures_become_plain_words_with_advice(error, message, advice, world, script, capsys):
    script.error = error
    job = world.runner.wait(world.runner.submit(config(world), PREVIEWS).id, WAIT)
    assert job.status == "failed" and message in job.error["message"] and advice in job.error["advice"]
    assert any(line.startswith("Failed:") for line in job.log)
    assert world.fake.calls[-1] == "send_model_to_device"   # the host gets its model back
    script.error = None
    assert world.runner.wait(world.runner.submit(config(world, "again")).id, WAIT).status == "finished"


def test_preview_problems_never_stop_training(world, script):
    def broken(p):
        raise RuntimeError("sampler exploded")
    world.fake.preview_hook = broken
    job = world.runner.wait(world.runner.submit(config(world), PREVIEWS).id, WAIT)
    assert job.status == "finished" and job.previews == []
    assert sum("Previews failed (RuntimeError: sampler exploded)" in line for line in job.log) == 1
    assert [f["kind"] for f in job.files][-1] == "sidecar"   # no card image without a preview
    assert world.fake.calls.count("state.end") == 3          # each render still ended the host's job state


def test_a_preview_out_of_memory_is_explained(world, script):
    def no_memory(p):
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
    world.fake.preview_hook = no_memory
    job = world.runner.wait(world.runner.submit(config(world), PREVIEWS).id, WAIT)
    assert job.status == "finished"
    assert sum(line.startswith("Previews ran out of GPU memory") and "smaller" in line for line in job.log) == 1


def test_a_preview_the_webuis_nan_check_stops_is_explained_without_a_traceback(world, script, capsys):
    class NansException(Exception):   # A1111's and Forge's modules.devices.NansException
        pass

    def nan(p):
        raise NansException("A tensor with NaNs was produced in Unet.")
    world.fake.preview_hook = nan
    job = world.runner.wait(world.runner.submit(config(world), PREVIEWS).id, WAIT)
    assert job.status == "finished" and job.previews == []
    saved = [os.path.basename(f["path"]) for f in job.files if f["kind"] in ("epoch", "final")]
    said = [line for line in job.log if line.startswith("No previews of")]
    assert len(said) == len(saved) and all(name in line and "lower learning rate" in line
                                           for name, line in zip(saved, said))
    assert "Traceback" not in capsys.readouterr().err


def test_previews_of_one_flat_colour_are_explained(world, script):
    def black(p):   # Forge has no NaN check: NaN comes out as a black picture
        p.fake_black = True
    world.fake.preview_hook = black
    job = world.runner.wait(world.runner.submit(config(world), PREVIEWS).id, WAIT)
    assert job.status == "finished" and job.previews   # the pictures are kept: the user sees them
    said = [line for line in job.log if line.startswith("The previews of") and "one flat colour" in line]
    rendered = {os.path.basename(p["file"]) for p in job.previews}
    assert len(said) == len(rendered) and all(any(name in line for line in said) for name in rendered)
    first = next(line for line in said if "-000001" in line)
    assert job.log.index(first) == next(i for i, line in enumerate(job.log) if line.startswith("Previews of")) + 1
    world.fake.preview_hook = None
    job = world.runner.wait(world.runner.submit(config(world, "pictures"), PREVIEWS).id, WAIT)
    assert job.previews and not any("one flat colour" in line for line in job.log)


def test_previews_render_on_the_trained_model_and_say_so(world, script):
    """The WebUI has another model loaded: previews switch to the one the LoRA is trained on (for their images
    only) and the log says which model rendered them; a base the WebUI does not list leaves the loaded model."""
    xl = fake_host.write_checkpoint(Path(world.base).with_name("xl.safetensors"), "sdxl")
    world.fake.configure("a1111", world.tmp / "webui", loaded=xl, selected=xl)
    job = world.runner.wait(world.runner.submit(config(world), PREVIEWS).id, WAIT)
    assert job.status == "finished" and len(job.previews) == 2
    assert {p.model_name for p in world.fake.processed} == {"base.safetensors"}
    assert {p["model"] for p in job.previews} == {world.host.preview_checkpoint(types.SimpleNamespace(
        base_model_path=world.base)).title}
    said = [line for line in job.log if line.startswith("Previews render on base.safetensors")]
    assert len(said) == 1 and "the model this LoRA is trained on" in said[0] and "xl.safetensors" in said[0]


def test_previews_are_skipped_when_the_webui_has_another_model_family(world, script, tmp_path):
    xl = fake_host.write_checkpoint(Path(world.base).with_name("xl.safetensors"), "sdxl")
    world.fake.configure("a1111", world.tmp / "webui", loaded=xl, selected=xl)
    unlisted = fake_host.write_checkpoint(tmp_path / "elsewhere" / "mine.safetensors", "sd1")
    job = world.runner.wait(world.runner.submit(config(world, pretrained_model_name_or_path=str(unlisted)),
                                                PREVIEWS).id, WAIT)
    assert job.status == "finished" and job.previews == []
    skipped = [line for line in job.log if line.startswith("Previews skipped")]
    assert len(skipped) == 1 and "SDXL model loaded" in skipped[0]
    said = [line for line in job.log if line.startswith("Previews render on xl.safetensors")]
    assert len(said) == 1 and "trained on mine.safetensors, which the WebUI does not list" in said[0]


def test_a_progress_update_that_fails_is_noted_and_training_goes_on(world, script, monkeypatch):
    from lora_trainer.runner import outputs

    def cannot(*args):
        raise ValueError("no such drive")
    monkeypatch.setattr(outputs, "preview_path", cannot)
    job = world.runner.wait(world.runner.submit(config(world), PREVIEWS).id, WAIT)
    assert job.status == "finished"
    assert any("could not record a progress update: no such drive" in line for line in job.log)


def test_bad_settings_are_refused_before_anything_is_queued(world, script):
    with pytest.raises(ConfigError) as err:
        world.runner.submit(config(world, resolution="100", train_data_dir=str(world.tmp / "missing")))
    assert any("multiple of 64" in p for p in err.value.problems)
    assert any(p.startswith("train_data_dir: the training images folder") for p in err.value.problems)
    script.pause_at = 0
    world.runner.submit(config(world, "same"))
    with pytest.raises(ConfigError) as err:
        world.runner.submit(config(world, "same"))
    assert "already writes same" in str(err.value) and "another output name" in err.value.advice
    assert len(world.runner.jobs()) == 1
    script.resume.set()


def test_previews_the_tab_asks_for_are_bounded_too(world, script):
    from lora_trainer.ui.actions import preview_size

    big = PreviewSettings(prompts=["{trigger}"] * 17, width=4096, height=1024, seed=2**32, steps=2)
    with pytest.raises(ConfigError) as err:
        world.runner.submit(config(world), big)
    assert err.value.problems == ["previews.width is 4096; use a multiple of 8 from 64 to 2048",
                                  "previews.seed is 4294967296; use 0 to 4294967295 (the WebUIs' seed range)",
                                  "previews.prompts holds 17 prompts; use at most 16 (each is rendered for every "
                                  "saved file)"]
    assert world.runner.jobs() == []
    # the tab's previews follow the training size, scaled down to what a preview may be
    assert preview_size(config(world, resolution="4096,1024")) == (2048, 512)
    assert preview_size(config(world, resolution="768,512")) == (768, 512)


def test_job_records_survive_a_restart(world, script):
    done = world.runner.wait(world.runner.submit(config(world), PREVIEWS).id, WAIT)
    for status in ("training", "queued"):
        (world.tmp / "jobs" / f"old-{status}.json").write_text(
            json.dumps(Job(id=f"old-{status}", output_name="old", status=status, created_at=1.0,
                           output_dir="/loras/old").to_dict()), encoding="utf-8")
    (world.tmp / "jobs" / "broken.json").write_text("{not json", encoding="utf-8")
    again = Runner(world.host, state_dir=str(world.tmp / "jobs"))
    jobs = {j.id: j for j in again.jobs()}
    assert set(jobs) == {done.id, "old-training", "old-queued"}
    assert jobs[done.id].losses == done.losses and jobs[done.id].previews == done.previews
    assert jobs["old-training"].status == "failed" and "stopped while this job was training" in \
        jobs["old-training"].error["message"] and "/loras/old" in jobs["old-training"].error["advice"]
    assert jobs["old-queued"].status == "cancelled"
    assert again.current() is None


def test_a_jobs_log_reads_in_each_language_also_after_a_restart(world, script):
    done = world.runner.wait(world.runner.submit(config(world), PREVIEWS).id, WAIT)
    english = done.in_language("en")["log"]
    assert english[0] == f"Started cat on {world.host.name}." and any(line.startswith("Epoch 1: mean loss")
                                                                      for line in english)
    chinese = done.in_language("zh_CN")
    assert chinese["log"][0] == f"已在 {world.host.name} 上开始训练 cat。" and "translations" not in chinese
    assert any(line.startswith("第 1 轮：平均损失") for line in chinese["log"])
    assert chinese["log"][-1] == f"训练完成，共 {done.step} 步。"
    again = {j.id: j for j in Runner(world.host, state_dir=str(world.tmp / "jobs")).jobs()}[done.id]
    assert again.log == done.log and again.in_language("zh_CN")["log"] == chinese["log"]


def test_shutdown_stops_the_running_job_and_cancels_the_queue(world, script):
    script.pause_at = 1
    running = world.runner.submit(config(world, "a"))
    queued = world.runner.submit(config(world, "b"))
    assert script.paused.wait(WAIT)
    world.runner.shutdown(WAIT)
    assert world.runner.get(running.id).status == "stopped"
    assert world.runner.get(queued.id).status == "cancelled"
    with pytest.raises(Exception) as err:
        world.runner.submit(config(world, "c"))
    assert "shutting down" in str(err.value)


def test_one_runner_per_process_keeps_its_host(world, monkeypatch):
    monkeypatch.setattr(runner_module, "_RUNNER", None)
    first = runner_module.get_runner(world.host)
    other_host = types.SimpleNamespace(name="other")
    assert runner_module.get_runner(other_host) is first and first.host is world.host
    assert runner_module.get_runner() is first


def test_preview_settings_from_json_name_every_problem():
    assert PreviewSettings.from_dict(None) == PreviewSettings()
    settings = PreviewSettings.from_dict({"prompts": "a\n\n b ", "weight": "0.7", "steps": 12.0, "enabled": "yes"})
    assert settings.prompts == ["a", "b"] and settings.weight == 0.7 and settings.steps == 12 and settings.enabled
    with pytest.raises(ConfigError) as err:
        PreviewSettings.from_dict({"prompts": [1], "seed": 1.5, "colour": "red", "weight": "nan"})
    assert len(err.value.problems) == 4 and any("previews.colour" in p for p in err.value.problems)
    with pytest.raises(ConfigError) as err:
        PreviewSettings.from_dict({"width": 100, "steps": 0, "prompts": []})
    assert len(err.value.problems) == 3
    hires = PreviewSettings.from_dict({"scheduler": "Karras", "hires_scale": "1.5", "hires_upscaler": "Latent",
                                       "hires_steps": 4, "denoising_strength": 0.3})
    assert (hires.scheduler, hires.hires_scale, hires.hires_steps, hires.denoising_strength) == ("Karras", 1.5, 4, 0.3)
    assert hires.hires and not PreviewSettings().hires
    with pytest.raises(ConfigError) as err:
        PreviewSettings.from_dict({"hires_scale": 9, "denoising_strength": 2, "scheduler": 3})
    assert len(err.value.problems) == 1 and "previews.scheduler" in err.value.problems[0]
    with pytest.raises(ConfigError) as err:
        PreviewSettings.from_dict({"hires_scale": 9, "denoising_strength": 2})
    assert len(err.value.problems) == 2 and "hires_scale is 9" in err.value.problems[0]


def test_a_job_is_json_ready():
    job = Job(id="x", output_name="y", epoch_losses=[(1, 2, float("nan"))], it_per_s=float("inf"))
    data = job.to_dict()
    assert data["epoch_losses"] == [[1, 2, None]] and data["it_per_s"] is None
    assert json.loads(json.dumps(data, allow_nan=False)) == data
    assert Job.from_dict(dict(data, unknown_field=1)).id == "x"


def test_each_webui_install_keeps_its_own_job_records(world, script, tmp_path, monkeypatch):
    """Records were shared by every WebUI of a user (~/.cache/lora_trainer/jobs): a Forge install listed an
    A1111 install's runs. Now a WebUI keeps them in <data>/lora_trainer/jobs, the standalone server in the cache."""
    from lora_trainer.hosts.standalone import StandaloneAdapter
    from lora_trainer.runner.history import default_dir

    monkeypatch.delenv("LORA_TRAINER_JOBS_DIR", raising=False)
    runner = Runner(world.host)
    try:
        done = runner.wait(runner.submit(config(world, "own")).id, WAIT)
    finally:
        runner.shutdown(WAIT)
    own = tmp_path / "webui" / "lora_trainer" / "jobs"
    assert (own / f"{done.id}.json").is_file()
    other = fake_host.write_checkpoint(tmp_path / "other" / "models" / "Stable-diffusion" / "b.safetensors", "sd1")
    fake_host.activate("forge", root=tmp_path / "other", loaded=other)
    from lora_trainer.hosts import detect_host
    elsewhere = Runner(detect_host())
    assert elsewhere.jobs() == [] and default_dir(detect_host()) == str(tmp_path / "other" / "lora_trainer" / "jobs")
    standalone = default_dir(StandaloneAdapter(lora_dir=str(tmp_path / "out")))
    assert standalone.endswith(os.path.join("standalone", "jobs")) and not standalone.startswith(str(tmp_path))


def test_a_long_running_webui_keeps_only_the_newest_finished_jobs_in_memory(world, script, monkeypatch):
    """As many as a restart loads (history.KEEP); the records of the older ones stay on disk."""
    from lora_trainer.runner import history

    monkeypatch.setattr(history, "KEEP", 2)
    ids = []
    for index in range(4):
        job = world.runner.submit(config(world, f"run{index}"), PreviewSettings(enabled=False))
        assert world.runner.wait(job.id, WAIT).status == "finished"
        ids.append(job.id)
    assert [j.id for j in world.runner.jobs()] == ids[:1:-1]
    assert world.runner.get(ids[0]) is None
    assert len(list((world.tmp / "jobs").glob("*.json"))) == 4
