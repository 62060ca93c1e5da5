"""Host adapters against the fake A1111 / Forge (tests/fake_host): detection by capability,
checkpoints and folders, the order of VRAM moves, previews under the queue lock, LoRA refresh,
interrogators. Torch-free: the standalone previews with a real model are in test_hosts_standalone.py.
"""
from __future__ import annotations

import threading
from pathlib import Path

import pytest

import fake_host
from lora_trainer.errors import TrainerError
from lora_trainer.hosts import PreviewRequest, PreviewUnavailable, detect_host, host_kind


@pytest.fixture(autouse=True)
def _no_host_left_behind():
    fake_host.deactivate()
    yield
    fake_host.deactivate()


@pytest.fixture
def root(tmp_path):
    """A WebUI data folder (Unicode, spaces) with an SD1 and an SDXL checkpoint."""
    root = tmp_path / "webui 数据"
    fake_host.write_checkpoint(root / "models" / "Stable-diffusion" / "sd15 模型.safetensors", "sd1")
    fake_host.write_checkpoint(root / "models" / "Stable-diffusion" / "xl.safetensors", "sdxl")
    return root


def ckpt(root, name="sd15 模型.safetensors") -> Path:
    return root / "models" / "Stable-diffusion" / name


def request(lora, **changes) -> PreviewRequest:
    values = dict(lora_path=str(lora), prompts=["{trigger}, smiling", "{trigger} <lora:other:0.3>"], weight=0.8,
                  negative_prompt="blurry", seed=77, width=64, height=96, steps=3, cfg_scale=5.5,
                  sampler_name="DPM++ 2M", trigger="zkz")
    values.update(changes)
    return PreviewRequest(**values)


# --- detection ------------------------------------------------------------------------------------

def test_no_host_modules_means_standalone(tmp_path):
    assert host_kind() == "standalone"
    adapter = detect_host(lora_dir=str(tmp_path / "out"))
    assert adapter.name == "standalone" and adapter.lora_dir() == str(tmp_path / "out")


@pytest.mark.parametrize("profile", ["a1111", "forge"])
def test_each_host_is_detected_by_what_it_has(profile, root):
    fake_host.activate(profile, root=root, loaded=ckpt(root))
    assert host_kind() == profile
    assert detect_host().name == profile


def test_forge_is_recognised_by_its_model_alone(root):
    fake = fake_host.activate("a1111", root=root, loaded=ckpt(root))
    from modules import sd_models
    assert host_kind() == "a1111"
    sd_models.model_data.sd_model = fake.FakeSDModel(sd_models.select_checkpoint(), "sd1", forge=True)
    assert host_kind() == "forge"


# --- A1111 ----------------------------------------------------------------------------------------

def test_a1111_checkpoints_and_folders(root, tmp_path):
    fake = fake_host.activate("a1111", root=root, loaded=ckpt(root, "xl.safetensors"),
                              lora_dir=str(tmp_path / "my loras"))
    adapter = detect_host()
    loaded = adapter.loaded_checkpoint()
    assert loaded.path == str(ckpt(root, "xl.safetensors")) and loaded.family == "sdxl"
    assert loaded.title.startswith("xl.safetensors [")
    listed = {Path(c.path).name: c.family for c in adapter.list_checkpoints()}
    assert listed == {"sd15 模型.safetensors": "sd1", "xl.safetensors": "sdxl"}
    assert adapter.lora_dir() == str(tmp_path / "my loras")

    fake_host.write_checkpoint(ckpt(root, "new sd2.safetensors"), "sd2")
    assert len(adapter.list_checkpoints()) == 2
    assert {Path(c.path).name: c.family for c in adapter.list_checkpoints(refresh=True)}["new sd2.safetensors"] == "sd2"
    assert "shared.sd_model" not in fake.calls   # reading it would make A1111 load a model


def test_a1111_without_any_checkpoint(tmp_path):
    fake_host.activate("a1111", root=tmp_path / "empty")
    adapter = detect_host()
    assert adapter.loaded_checkpoint() is None
    assert adapter.lora_dir() == str(tmp_path / "empty" / "models" / "Lora")
    with pytest.raises(PreviewUnavailable) as err:
        adapter.generate_previews(request(tmp_path / "x.safetensors"))
    assert "select the model" in err.value.advice


def test_a1111_model_leaves_the_gpu_for_training_and_returns_for_previews(root):
    fake = fake_host.activate("a1111", root=root, loaded=ckpt(root))
    from modules import sd_models
    model = sd_models.model_data.sd_model
    adapter = detect_host()
    lora = fake_host.write_lora(Path(adapter.lora_dir()) / "zkz-000002.safetensors", "sd1")

    adapter.free_vram()
    assert model.device == "cpu" and fake.calls == ["unload_model_weights", "send_model_to_cpu"]
    images = adapter.generate_previews(request(lora))
    assert len(images) == 2 and images[0].size == (64, 96)
    assert model.device == "cpu"   # training goes on: off the GPU again
    adapter.restore_vram()
    assert model.device == "cuda"
    assert fake.calls == [
        "unload_model_weights", "send_model_to_cpu", "select_checkpoint",
        "send_model_to_device", "state.begin:lora_trainer_preview",
        "process_images", "reload_model_weights", "process_images", "reload_model_weights",
        "state.end", "unload_model_weights", "send_model_to_cpu",
        "send_model_to_device"]

    first, second = fake.processed
    assert first.prompt == "zkz, smiling <lora:zkz-000002:0.8>"   # no comma left behind when the tag goes
    assert second.prompt == "zkz <lora:other:0.3> <lora:zkz-000002:0.8>"
    for p in fake.processed:
        assert p.lock_held and p.model_device == "cuda" and p.state_job == "lora_trainer_preview"
        assert (p.seed, p.width, p.height, p.steps, p.cfg_scale, p.sampler_name) == (77, 64, 96, 3, 5.5, "DPM++ 2M")
        assert p.negative_prompt == "blurry" and p.do_not_save_samples and p.do_not_save_grid and p.closed
        assert p.batch_size == 1 and p.n_iter == 1 and not p.override_settings
    assert "shared.sd_model" not in fake.calls


@pytest.mark.parametrize("profile", ["a1111", "forge"])
def test_previews_name_every_render_setting_and_render_on_the_trained_model(profile, root, tmp_path):
    """The schedule type is always sent (Forge logs "Sampler Scheduler autocorrection" without one), hires fix
    when asked; the model the LoRA was trained on renders the previews when the WebUI has another one loaded,
    for those images only, and a base the WebUI does not list leaves the loaded model (the runner says so)."""
    other = fake_host.write_checkpoint(root / "models" / "Stable-diffusion" / "other.safetensors", "sd1")
    fake = fake_host.activate(profile, root=root, loaded=other)
    adapter = detect_host()
    assert adapter.render_options() == {"samplers": ["DPM++ 2M", "Euler a", "Euler", "DDIM"],
                                        "schedulers": ["Automatic", "Uniform", "Karras"],
                                        "upscalers": ["Latent", "Latent (nearest)", "None", "R-ESRGAN 4x+"]}
    lora = fake_host.write_lora(Path(adapter.lora_dir()) / "zkz-000001.safetensors", "sd1")
    req = request(lora, prompts=["a"], base_model_path=str(ckpt(root)), scheduler="Karras", hires_scale=1.5,
                  hires_upscaler="Latent (nearest)", hires_steps=4, denoising_strength=0.4)
    assert adapter.preview_checkpoint(req).path == str(ckpt(root))
    adapter.generate_previews(req)
    p = fake.processed[-1]
    assert (p.sampler_name, p.scheduler) == ("DPM++ 2M", "Karras")
    assert (p.enable_hr, p.hr_scale, p.hr_upscaler, p.hr_second_pass_steps, p.denoising_strength) == \
        (True, 1.5, "Latent (nearest)", 4, 0.4)
    assert p.model_name == "sd15 模型.safetensors" and p.override_settings_restore_afterwards
    assert p.override_settings == {"sd_model_checkpoint": adapter.preview_checkpoint(req).title}
    elsewhere = request(lora, prompts=["a"], base_model_path=str(tmp_path / "not listed.safetensors"))
    assert adapter.preview_checkpoint(elsewhere).path == adapter.loaded_checkpoint().path
    adapter.generate_previews(elsewhere)
    assert not fake.processed[-1].override_settings and not fake.processed[-1].enable_hr
    assert fake.processed[-1].scheduler == "Automatic"


def test_a1111_preview_outside_training_leaves_the_model_alone(root):
    fake = fake_host.activate("a1111", root=root, loaded=ckpt(root))
    adapter = detect_host()
    lora = fake_host.write_lora(Path(adapter.lora_dir()) / "a.safetensors", "sd1")
    adapter.generate_previews(request(lora, prompts=["x"]))
    assert not any(c.startswith(("unload", "send_model")) for c in fake.calls)


def test_a1111_own_generations_find_the_model_while_a_job_trains(root):
    fake_host.activate("a1111", root=root, loaded=ckpt(root))
    from modules import sd_models
    from modules.call_queue import queue_lock
    model = sd_models.model_data.sd_model
    adapter = detect_host()
    adapter.after_host_generation()
    assert model.device == "cuda"   # no job: nothing moves
    adapter.free_vram()
    with queue_lock:   # the host holds its lock around its own generation
        adapter.before_host_generation()
        assert model.device == "cuda"
        adapter.after_host_generation()
    assert model.device == "cpu"
    adapter.restore_vram()
    adapter.after_host_generation()
    assert model.device == "cuda"


def test_preview_is_refused_when_the_loaded_model_is_another_family(root):
    fake = fake_host.activate("a1111", root=root, loaded=ckpt(root, "xl.safetensors"))
    adapter = detect_host()
    lora = fake_host.write_lora(Path(adapter.lora_dir()) / "sd1 lora.safetensors", "sd1")
    with pytest.raises(PreviewUnavailable) as err:
        adapter.generate_previews(request(lora))
    assert "SDXL model loaded" in str(err.value) and "SD1" in str(err.value)
    assert "process_images" not in fake.calls


def test_a_lora_outside_the_lora_folder_is_visible_only_while_rendering(root, tmp_path):
    fake = fake_host.activate("a1111", root=root, loaded=ckpt(root))
    adapter = detect_host()
    lora = fake_host.write_lora(tmp_path / "elsewhere" / "mine-000001.safetensors", "sd1")
    seen = []
    fake.preview_hook = lambda p: seen.append(sorted(p.name for p in Path(adapter.lora_dir()).rglob("*.safetensors")))
    adapter.generate_previews(request(lora, prompts=["a"]))
    assert seen == [["mine-000001.safetensors"]]
    assert fake.processed[0].prompt == "a <lora:mine-000001:0.8>"
    assert list(Path(adapter.lora_dir()).rglob("*")) == [] and lora.is_file()


def test_interrupt_stops_only_our_own_preview(root):
    fake = fake_host.activate("a1111", root=root, loaded=ckpt(root))
    adapter = detect_host()
    adapter.interrupt()
    assert "state.interrupt" not in fake.calls   # the user's generation is not ours to stop
    lora = fake_host.write_lora(Path(adapter.lora_dir()) / "b.safetensors", "sd1")
    fake.preview_hook = lambda p: adapter.interrupt()
    images = adapter.generate_previews(request(lora))
    assert images == [] and len(fake.processed) == 1 and "state.interrupt" in fake.calls


def test_a_stop_while_a_preview_waits_for_the_queue_or_its_model_still_stops_it(root, monkeypatch):
    """In the real A1111 a Stop during a preview's start was lost: the host's state.begin() cleared the interrupted
    flag the stop had set (or the stop came before the preview held the queue), and all 20 steps rendered."""
    fake = fake_host.activate("a1111", root=root, loaded=ckpt(root))
    adapter = detect_host()
    lora = fake_host.write_lora(Path(adapter.lora_dir()) / "b.safetensors", "sd1")
    from modules import shared
    begin = type(shared.state).begin
    monkeypatch.setattr(type(shared.state), "begin", lambda self, job="": (adapter.interrupt(), begin(self, job))[1])
    assert adapter.generate_previews(request(lora)) == [] and len(fake.processed) <= 1
    monkeypatch.setattr(type(shared.state), "begin", begin)
    adapter.interrupt()   # between previews: not for the next one
    assert len(adapter.generate_previews(request(lora))) == 2


def test_refresh_and_interrogators_hold_the_queue_lock(root):
    fake = fake_host.activate("a1111", root=root, loaded=ckpt(root))
    from PIL import Image
    adapter = detect_host()
    fake_host.write_lora(Path(adapter.lora_dir()) / "sub" / "fresh.safetensors", "sd1")
    adapter.refresh_loras()
    import networks
    assert "fresh" in networks.available_networks
    assert "list_available_networks:lock=True" in fake.calls
    assert adapter.interrogators() == ["clip", "deepbooru"]
    image = Image.new("RGBA", (16, 16))
    assert adapter.interrogate(image, "deepbooru") == "1girl, solo, smile"
    assert adapter.interrogate(image, "clip") == "a photo of a fake thing"
    assert fake.names("interrogate") == ["interrogate:deepbooru:lock=True", "interrogate:clip:lock=True"]
    with pytest.raises(TrainerError) as err:
        adapter.interrogate(image, "wd14")
    assert "clip, deepbooru" in err.value.advice


def test_interrogators_that_cannot_load_their_models_stop_the_run_with_one_message(root, tmp_path, monkeypatch):
    """Offline the WebUI cannot download its interrogators' models. Its DeepBooru then fails on the first picture
    (IndexError) and tags every later one with the untrained network it built before failing; its CLIP
    interrogator logs the error and returns "<error>" as the caption. Seen in A1111 1.10.1: "Tagged 7 of 8" and
    "Tagged 8 of 8" with "<error>" in every caption. Both must stop before any caption is written."""
    fake_host.activate("a1111", root=root, loaded=ckpt(root))
    from PIL import Image
    import modules.deepbooru as deepbooru
    import modules.shared as shared
    from lora_trainer.dataset.autotag import tag_folder
    from lora_trainer.dataset.tagging import host_taggers

    class OfflineDeepBooru:          # modules/deepbooru.py's holder when the download failed
        model = None

        def load(self):
            if self.model is None:
                files = []           # modelloader.load_models swallows the download error
                self.model = "untrained network"
                self.weights = files[0]

        def tag(self, image):
            self.load()
            return ""

    class OfflineClip:               # modules/interrogate.py's Interrogator when the download failed
        def load(self):
            return [][0]

        def interrogate(self, image):
            return "<error>"

    monkeypatch.setattr(deepbooru, "model", OfflineDeepBooru())
    monkeypatch.setattr(shared, "interrogator", OfflineClip())
    adapter = detect_host()
    folder = tmp_path / "1_zkz"
    folder.mkdir()
    for name in ("a.png", "b.png"):
        Image.new("RGB", (16, 16)).save(folder / name)
    taggers = {t.name: t for t in host_taggers(adapter.interrogators(), adapter.interrogate,
                                               adapter.prepare_interrogator)}
    with pytest.raises(TrainerError) as err:
        tag_folder(folder, taggers["deepbooru"])
    assert "model-resnet_custom_v3.pt" in str(err.value) and "torch_deepdanbooru" in str(err.value)
    assert deepbooru.model.model is None          # the next try loads again instead of using the untrained one
    with pytest.raises(TrainerError) as err:
        tag_folder(folder, taggers["clip"])
    assert "CLIP interrogator could not load" in str(err.value) and "internet" in err.value.advice
    assert err.value.format("zh_CN").startswith("WebUI 的 CLIP 反推无法加载它的模型（")
    assert "解决方法：WebUI 会在第一次使用时下载 BLIP 和 CLIP 模型" in err.value.format("zh_CN")
    assert not list(folder.glob("*.txt"))
    with pytest.raises(TrainerError):             # a failure after loading is no caption either
        adapter.interrogate(Image.new("RGB", (16, 16)), "clip")


def test_adapter_calls_never_take_the_lock_twice(root):
    """Every adapter call from a second thread while the first renders: none may deadlock."""
    fake = fake_host.activate("a1111", root=root, loaded=ckpt(root))
    adapter = detect_host()
    lora = fake_host.write_lora(Path(adapter.lora_dir()) / "c.safetensors", "sd1")
    done = []

    def render():
        adapter.free_vram()
        adapter.generate_previews(request(lora))
        adapter.refresh_loras()
        adapter.restore_vram()
        done.append(True)
    worker = threading.Thread(target=render, daemon=True)
    worker.start()
    worker.join(20)
    assert done == [True], fake.calls


# --- Forge ----------------------------------------------------------------------------------------

def test_forge_knows_the_checkpoint_before_loading_it(root):
    fake_host.activate("forge", root=root, selected=ckpt(root, "xl.safetensors"))
    from modules import sd_models
    assert not hasattr(sd_models.model_data.sd_model, "sd_checkpoint_info")
    loaded = detect_host().loaded_checkpoint()
    assert loaded.path == str(ckpt(root, "xl.safetensors")) and loaded.family == "sdxl"


def test_forge_frees_everything_and_reloads_on_demand(root):
    fake = fake_host.activate("forge", root=root, selected=ckpt(root))
    adapter = detect_host()
    lora = fake_host.write_lora(Path(adapter.lora_dir()) / "f-000001.safetensors", "sd1")
    adapter.free_vram()
    adapter.generate_previews(request(lora, prompts=["{trigger}"]))
    adapter.restore_vram()
    assert fake.calls == ["unload_all_models", "soft_empty_cache", "state.begin:lora_trainer_preview",
                          "process_images", "forge_model_reload", "state.end", "unload_all_models",
                          "soft_empty_cache"]
    p = fake.processed[0]
    assert p.prompt == "zkz <lora:f-000001:0.8>" and p.lock_held and p.do_not_save_samples


def test_forge_refresh_forgets_cached_lora_weights(root):
    fake = fake_host.activate("forge", root=root, selected=ckpt(root))
    adapter = detect_host()
    lora = fake_host.write_lora(Path(adapter.lora_dir()) / "same name.safetensors", "sd1")
    adapter.generate_previews(request(lora, prompts=["x"]))
    from modules import sd_models
    model = sd_models.model_data.sd_model
    assert model.current_lora_hash == "[]"
    adapter.refresh_loras()
    assert fake.names("l") == ["load_lora_state_dict.cache_clear", "list_available_networks:lock=True"]
    assert model.current_lora_hash == ""


# --- API auth -------------------------------------------------------------------------------------

def test_api_auth_follows_the_host_flag(root):
    pytest.importorskip("fastapi")
    fake_host.activate("a1111", root=root, api_auth="me:secret,bot:token")
    assert len(detect_host().api_auth_dependencies()) == 1
    fake_host.activate("forge", root=root)
    assert detect_host().api_auth_dependencies() == []


# --- standalone -----------------------------------------------------------------------------------

def test_standalone_lists_named_files_and_a_models_folder(tmp_path):
    from lora_trainer.hosts.standalone import StandaloneAdapter

    named = fake_host.write_checkpoint(tmp_path / "named.safetensors", "sd2")
    models = tmp_path / "模型"
    fake_host.write_checkpoint(models / "sub" / "xl.safetensors", "sdxl")
    (models / ".hidden").mkdir(parents=True)
    fake_host.write_checkpoint(models / ".hidden" / "skip.safetensors", "sd1")
    folder = models / "diffusers sd15"
    (folder / "text_encoder").mkdir(parents=True)
    (folder / "text_encoder" / "config.json").write_text('{"hidden_act": "quick_gelu"}', encoding="utf-8")
    (folder / "model_index.json").write_text('{"_class_name": "StableDiffusionPipeline"}', encoding="utf-8")
    (models / "notes.txt").write_text("not a model", encoding="utf-8")
    adapter = StandaloneAdapter(checkpoints=[str(named), str(tmp_path / "gone.safetensors")], models_dir=str(models),
                                lora_dir=str(tmp_path / "out"))
    listed = {c.title: c.family for c in adapter.list_checkpoints()}
    assert listed == {"named.safetensors": "sd2", "diffusers sd15": "sd1", "xl.safetensors": "sdxl"}
    assert adapter.loaded_checkpoint() is None and adapter.interrogators() == []
    with pytest.raises(PreviewUnavailable):
        adapter.generate_previews(PreviewRequest(lora_path=str(tmp_path / "l.safetensors")))
    assert adapter.describe() == {"host": "standalone", "lora_dir": str(tmp_path / "out"), "loaded_checkpoint": None}


def test_the_notifications_are_settings_of_their_own(root):
    """Settings → LoRA Trainer: a browser notification and the WebUI's notification.mp3 when a run ends, each on
    by default and each off on request (javascript/lora_trainer.js reads them from the WebUI's opts)."""
    fake_host.activate("a1111", root=root, loaded=ckpt(root))
    from modules import shared

    from lora_trainer.hosts.webui import NOTIFY_SETTINGS, register_notification_settings

    register_notification_settings()
    for key, label in NOTIFY_SETTINGS:
        info = shared.opts.data_labels[key]
        assert info.default is True and info.label == label and info.section == ("lora_trainer", "LoRA Trainer")
    script = (Path(__file__).resolve().parents[1] / "javascript" / "lora_trainer.js").read_text(encoding="utf-8")
    assert all(f'"{key}"' in script for key, _ in NOTIFY_SETTINGS) and '"show_progress_in_title"' in script
