"""What A1111 and Forge share: the queue lock, ``shared.state``, txt2img previews, LoRA refresh
and ``--api-auth``; their taggers are in ``webui_tagging.py``.

Host modules are looked up when used, never at import: this module is imported outside the host
too (tests, standalone), and Reload UI replaces some host objects.
"""
from __future__ import annotations

import contextlib
import importlib
import os
import shutil
import sys
import threading
from typing import Iterator, Optional

from ..config.allowed_folders import AllowedFolders
from ..text.messages import msg, normalize_language
from .base import (Checkpoint, HostAdapter, PreviewRequest, PreviewUnavailable, basic_auth_dependencies,
                   checkpoint_family, is_inside, lora_family, with_lora_tag)
from .webui_tagging import WebUITagging

ALLOWED_FOLDERS_OPTION = "lora_trainer_allowed_folders"
PREVIEW_JOB = "lora_trainer_preview"
PREVIEW_COPY_DIR = "lora_trainer_preview"   # under the LoRA folder, only while a preview renders


def host_module(name: str):
    return importlib.import_module(name)


def family_from_flags(model) -> Optional[str]:
    """The family a loaded host model says it is (``is_sdxl`` / ``is_sd2`` / ``is_sd1``)."""
    if model is None:
        return None
    for flag, family in (("is_sdxl", "sdxl"), ("is_sd2", "sd2"), ("is_sd1", "sd1")):
        if getattr(model, flag, False) is True:
            return family
    return None


class WebUIAdapter(WebUITagging, HostAdapter):
    """Common part of the A1111 and Forge adapters; subclasses say how the host model leaves the
    GPU (``_offload``) and comes back (``_bring_back``), and where the loaded checkpoint is."""

    def __init__(self) -> None:
        self._guard = threading.Lock()   # protects the flags below (the host lock is taken first)
        self._training = False           # a training job wants the GPU
        self._model_off = False          # we moved the host model off the GPU
        self._rendering = False          # one of our previews is running
        self._stop_asked = False         # a stop came for the preview that is starting or running

    # --- per host --------------------------------------------------------------------------------
    def _offload(self) -> bool:
        """Move the host model off the GPU; True when something was moved."""
        raise NotImplementedError

    def _bring_back(self) -> None:
        raise NotImplementedError

    def _raw_model(self):
        """The loaded model object without triggering a load (``shared.sd_model`` may load one)."""
        return getattr(getattr(host_module("modules.sd_models"), "model_data", None), "sd_model", None)

    # --- host objects ----------------------------------------------------------------------------
    def _lock(self):
        return host_module("modules.call_queue").queue_lock

    def _state(self):
        return host_module("modules.shared").state

    # --- checkpoints and folders -----------------------------------------------------------------
    def list_checkpoints(self, refresh: bool = False) -> list[Checkpoint]:
        sd_models = host_module("modules.sd_models")
        if refresh:
            with self._lock():
                sd_models.list_models()
        return [self._checkpoint(info) for info in list(sd_models.checkpoints_list.values())]

    def _checkpoint(self, info, model=None) -> Checkpoint:
        path = os.path.abspath(info.filename)
        family = None
        if model is not None and getattr(getattr(model, "sd_checkpoint_info", None), "filename", None) == info.filename:
            family = family_from_flags(model)
        return Checkpoint(title=str(getattr(info, "title", "") or os.path.basename(path)), path=path,
                          family=family or checkpoint_family(path))

    def lora_dir(self) -> str:
        shared = host_module("modules.shared")
        folder = getattr(getattr(shared, "cmd_opts", None), "lora_dir", None)
        if not folder:
            folder = os.path.join(host_module("modules.paths_internal").models_path, "Lora")
        return os.path.abspath(folder)

    def data_dir(self) -> str:
        """The WebUI's data folder (``--data-dir``, else its install folder)."""
        return os.path.abspath(host_module("modules.paths_internal").data_path)

    def runs_dir(self) -> str:
        """``<data>/lora_trainer/runs``: the Lora tab lists every file and sub-folder below its folder (hidden
        dot-folders included, as folder buttons), so the run folders live outside it."""
        return os.path.join(self.data_dir(), "lora_trainer", "runs")

    def jobs_dir(self) -> str:
        """``<data>/lora_trainer/jobs``: each WebUI install lists the runs it trained, not another's."""
        return os.path.join(self.data_dir(), "lora_trainer", "jobs")

    def presets_dir(self) -> str:
        """``<data>/lora_trainer/presets``: the presets saved in this install (a caller names a preset, never
        the folder)."""
        return os.path.join(self.data_dir(), "lora_trainer", "presets")

    # --- GPU memory ------------------------------------------------------------------------------
    def free_vram(self) -> None:
        with self._lock(), self._guard:
            self._training = True
            if not self._model_off:
                self._model_off = self._offload()

    def restore_vram(self) -> None:
        with self._lock(), self._guard:
            self._training = False
            if self._model_off:
                self._bring_back()
                self._model_off = False

    def before_host_generation(self) -> None:
        """Runs inside the host's lock, before one of its own generations."""
        with self._guard:
            if self._model_off and not self._rendering:
                self._bring_back()
                self._model_off = False

    def after_host_generation(self) -> None:
        """Runs inside the host's lock, after one of its own generations."""
        with self._guard:
            if self._training and not self._model_off and not self._rendering:
                self._model_off = self._offload()

    # --- previews --------------------------------------------------------------------------------
    def _listed(self, path: str) -> Optional[Checkpoint]:
        """The WebUI's checkpoint that is the file ``path`` (the base a LoRA was trained on), if it lists it."""
        if not path:
            return None
        wanted = os.path.normcase(os.path.realpath(path))
        try:
            checkpoints = self.list_checkpoints()
        except Exception:
            return None
        return next((c for c in checkpoints if os.path.normcase(os.path.realpath(c.path)) == wanted), None)

    def preview_checkpoint(self, req: PreviewRequest) -> Optional[Checkpoint]:
        """The model the LoRA was trained on when the WebUI lists it (previews switch to it), else the loaded one."""
        return self._listed(req.base_model_path) or self.loaded_checkpoint()

    def render_options(self) -> dict:
        samplers = host_module("modules.sd_samplers")
        names = samplers.visible_sampler_names() if hasattr(samplers, "visible_sampler_names") else \
            [s.name for s in getattr(samplers, "samplers", [])]
        shared = host_module("modules.shared")
        upscalers = list(getattr(shared, "latent_upscale_modes", None) or {}) + \
            [u.name for u in getattr(shared, "sd_upscalers", None) or [] if getattr(u, "name", None)]
        return {"samplers": list(names) or ["Euler a"], "schedulers": self._schedulers(),
                "upscalers": list(dict.fromkeys(upscalers))}

    def _schedulers(self) -> list[str]:
        """The "Schedule type" labels ([] on A1111 before 1.9, which has no such setting)."""
        try:
            return [s.label for s in host_module("modules.sd_schedulers").schedulers]
        except (ImportError, AttributeError):
            return []

    def _processing(self, processing, req: PreviewRequest, prompt: str, name: str, model: Optional[Checkpoint]):
        """One txt2img of ``prompt`` with every render setting said explicitly (Forge logs an "autocorrection"
        for a missing schedule type), on ``model`` for this image only (the WebUI's own choice is restored after it)."""
        fields = dict(prompt=with_lora_tag(prompt, name, req.weight, req.trigger),
                      negative_prompt=req.negative_prompt, seed=int(req.seed), sampler_name=req.sampler_name,
                      batch_size=1, n_iter=1, steps=int(req.steps), cfg_scale=float(req.cfg_scale),
                      width=int(req.width), height=int(req.height), do_not_save_samples=True, do_not_save_grid=True)
        if self._schedulers():
            fields["scheduler"] = req.scheduler
        if req.hires:
            fields.update(enable_hr=True, hr_scale=float(req.hires_scale), hr_upscaler=req.hires_upscaler,
                          hr_second_pass_steps=int(req.hires_steps), denoising_strength=float(req.denoising_strength))
        if model is not None:
            fields.update(override_settings={"sd_model_checkpoint": model.title},
                          override_settings_restore_afterwards=True)
        return processing.StableDiffusionProcessingTxt2Img(**fields)

    def generate_previews(self, req: PreviewRequest) -> list:
        loaded = self.loaded_checkpoint()
        if loaded is None:
            raise PreviewUnavailable(msg("host.no_checkpoint"), msg("host.no_checkpoint.advice"))
        base = self._listed(req.base_model_path)   # rendered on the model the LoRA was trained on
        model = base or loaded
        wanted = lora_family(req.lora_path)
        if wanted and model.family and wanted != model.family:
            raise PreviewUnavailable(msg("host.other_family", loaded=model.family.upper(), title=model.title,
                                         wanted=wanted.upper()), msg("host.other_family.advice"))
        processing = host_module("modules.processing")
        images = []
        self._stop_from_now()
        with self._visible(req.lora_path) as name, self._lock():
            state = self._state()
            with self._guard:
                self._rendering = True
                if self._model_off:
                    self._bring_back()
                    self._model_off = False
            state.begin(job=PREVIEW_JOB)
            self._stop_if_asked(state)
            try:
                state.job_count = len(req.prompts)
                for prompt in req.prompts:
                    if getattr(state, "interrupted", False):
                        break
                    p = self._processing(processing, req, prompt, name, base)
                    with contextlib.closing(p):
                        processed = processing.process_images(p)
                    if getattr(state, "interrupted", False):   # a half-sampled picture is no preview
                        break
                    if processed is not None and processed.images:
                        images.append(processed.images[0])
            finally:
                state.end()
                with self._guard:
                    self._rendering = False
                    if self._training and not self._model_off:
                        self._model_off = self._offload()
        return images

    @contextlib.contextmanager
    def _visible(self, lora_path: str) -> Iterator[str]:
        """The network name the host finds ``lora_path`` under; a file outside the LoRA folder is
        linked into it for the preview and removed afterwards."""
        name = os.path.splitext(os.path.basename(lora_path))[0]
        lora_dir = self.lora_dir()
        if is_inside(lora_path, lora_dir):
            yield name
            return
        folder = os.path.join(lora_dir, PREVIEW_COPY_DIR)
        target = os.path.join(folder, os.path.basename(lora_path))
        os.makedirs(folder, exist_ok=True)
        try:
            with contextlib.suppress(FileNotFoundError):
                os.remove(target)
            try:
                os.link(lora_path, target)
            except OSError:
                shutil.copyfile(lora_path, target)
            yield name
        finally:
            with contextlib.suppress(OSError):
                os.remove(target)
            with contextlib.suppress(OSError):
                os.rmdir(folder)

    def interrupt(self) -> None:
        with self._guard:
            self._stop_asked = True
            rendering = self._rendering
        if rendering:  # never the user's own generation
            self._state().interrupt()

    def _stop_from_now(self) -> None:
        """A preview starts: a stop asked from now on is for it (one asked earlier was for another)."""
        with self._guard:
            self._stop_asked = False

    def _stop_if_asked(self, state) -> None:
        """A stop that came while the preview waited for the queue or loaded its model: ``state.begin`` has just
        cleared the host's interrupted flag, so it is set again."""
        with self._guard:
            asked = self._stop_asked
        if asked:
            state.interrupt()

    def generate_image(self, prompt: str, negative_prompt: str, seed: int, width: int, height: int):
        """One picture of the loaded model, no LoRA (regularization images); None when interrupted."""
        if self.loaded_checkpoint() is None:
            raise PreviewUnavailable(msg("host.no_checkpoint_image"), msg("host.no_checkpoint_image.advice"))
        processing = host_module("modules.processing")
        self._stop_from_now()
        with self._lock():
            state = self._state()
            with self._guard:
                self._rendering = True
                if self._model_off:
                    self._bring_back()
                    self._model_off = False
            state.begin(job=PREVIEW_JOB)
            self._stop_if_asked(state)
            try:
                p = processing.StableDiffusionProcessingTxt2Img(
                    prompt=prompt, negative_prompt=negative_prompt, seed=int(seed), batch_size=1, n_iter=1,
                    width=int(width), height=int(height), do_not_save_samples=True, do_not_save_grid=True)
                with contextlib.closing(p):
                    processed = processing.process_images(p)
                interrupted = getattr(state, "interrupted", False)
            finally:
                state.end()
                with self._guard:
                    self._rendering = False
                    if self._training and not self._model_off:
                        self._model_off = self._offload()
        return processed.images[0] if processed is not None and processed.images and not interrupted else None

    # --- LoRA list -------------------------------------------------------------------------------
    def _networks(self):
        return sys.modules.get("networks")   # the built-in Lora extension's module, in both hosts

    def refresh_loras(self) -> None:
        networks = self._networks()
        if networks is None or not hasattr(networks, "list_available_networks"):
            return
        with self._lock():
            self._forget_cached_loras(networks)
            networks.list_available_networks()

    def _forget_cached_loras(self, networks) -> None:
        """Host caches that would keep serving an overwritten file's old weights."""

    def api_auth_dependencies(self) -> list:
        cmd_opts = getattr(host_module("modules.shared"), "cmd_opts", None)
        return basic_auth_dependencies(getattr(cmd_opts, "api_auth", None))

    # --- what a caller may name ------------------------------------------------------------------
    def language(self) -> str:
        opts = getattr(host_module("modules.shared"), "opts", None)
        return normalize_language(getattr(opts, "data", {}).get("localization") if opts is not None else "")

    def models_dir(self) -> str:
        return host_module("modules.paths_internal").models_path

    def datasets_dir(self) -> str:
        return os.path.join(host_module("modules.paths_internal").data_path, "lora_trainer", "datasets")

    def allowed_folders(self) -> AllowedFolders:
        """A WebUI that serves other computers (--listen, --share, --ngrok, --server-name) lets callers name
        only its models folder (checkpoints and the Lora folder), its ``lora_trainer`` data folder and the
        folders its owner added in Settings; a local one, any path (as the host itself does)."""
        shared = host_module("modules.shared")
        cmd_opts = getattr(shared, "cmd_opts", None)
        if not serves_other_computers(cmd_opts):
            return AllowedFolders.anywhere()
        paths = host_module("modules.paths_internal")
        extra = str(getattr(getattr(shared, "opts", None), "data", {}).get(ALLOWED_FOLDERS_OPTION) or "")
        try:   # the checkpoints the WebUI lists, also those linked into its folder from elsewhere
            listed = [info.filename for info in host_module("modules.sd_models").checkpoints_list.values()]
        except Exception:
            listed = []
        return AllowedFolders.only([self.lora_dir(), paths.models_path, getattr(cmd_opts, "ckpt_dir", None),
                                    os.path.join(paths.data_path, "lora_trainer"),
                                    *[line.strip() for line in extra.splitlines() if line.strip()]], listed)


def serves_other_computers(cmd_opts) -> bool:
    flag = getattr(cmd_opts, "webui_is_non_local", None)   # A1111 1.7+ and Forge compute it at start-up
    if flag is not None:
        return bool(flag)
    return any(getattr(cmd_opts, name, None) for name in ("share", "listen", "ngrok", "server_name"))


# read by javascript/lora_trainer.js (the WebUI's own "show_progress_in_title" decides the window title)
NOTIFY_SETTINGS = (
    ("lora_trainer_notify_browser", "Browser notification when a training run finishes or fails (while the "
                                    "page is in the background)"),
    ("lora_trainer_notify_sound", "Play the WebUI's notification sound (notification.mp3 in its folder) when a "
                                  "training run finishes or fails"),
)


def register_notification_settings() -> None:
    """Settings → LoRA Trainer: the two notifications when a run ends, each on by default."""
    shared = host_module("modules.shared")
    for key, label in NOTIFY_SETTINGS:
        shared.opts.add_option(key, shared.OptionInfo(True, label, section=("lora_trainer", "LoRA Trainer")))


def register_settings(textbox) -> None:
    """The Settings entry where the owner of a shared WebUI allows more folders. Like the host's own folder
    settings it is hidden, and cannot be changed by callers, when the WebUI runs with --hide-ui-dir-config."""
    shared = host_module("modules.shared")
    hidden = dict(getattr(shared, "hide_dirs", None) or {"visible": not getattr(shared.cmd_opts,
                                                                              "hide_ui_dir_config", False)})
    info = shared.OptionInfo("", "Folders that callers of a shared WebUI (--listen) may name in the LoRA Trainer, "
                                 "one per line (the models folder is always allowed)", textbox,
                             {"lines": 3, **hidden}, section=("lora_trainer", "LoRA Trainer"))
    shared.opts.add_option(ALLOWED_FOLDERS_OPTION, info)
