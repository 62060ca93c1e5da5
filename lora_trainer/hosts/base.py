"""What the trainer asks of the program it runs in (A1111, Forge, or none), in one interface.

Torch-free and host-free: the adapters in ``a1111.py`` / ``forge.py`` are the only modules
that import ``modules.*``, ``modules_forge`` or ``backend``.
"""
from __future__ import annotations

import dataclasses
import os
import threading
from dataclasses import dataclass, field
from typing import Optional

from ..config.allowed_folders import AllowedFolders
from ..config.metadata import family_from_metadata
from ..errors import TrainerError
from ..io.safetensors_header import read_metadata, tensor_names
from ..text.messages import msg, normalize_language, register, sentence

register({
    "render.side": "{name} is {value}; use a multiple of 8 from {low} to {high}",
    "render.steps": "{name} is {value}; use 1 to 150",
    "render.seed": "{name} is {value}; use 0 to {high} (the WebUIs' seed range)",
    "render.no_prompts": "{name} is empty; give at least one prompt, e.g. \"{{trigger}}\"",
    "render.many_prompts": "{name} holds {count} prompts; use at most {high} (each is rendered for every saved file)",
    "render.hires_scale": "{name} is {value}; use 1 (off) to 4",
    "render.hires_steps": "{name} is {value}; use 0 (as many as steps) to 150",
    "render.denoising": "{name} is {value}; use 0 to 1",
    "host.no_previews": "this host cannot render previews",
    "host.generate_outside": "images can only be generated inside the WebUI, with its loaded model",
    "host.generate_outside.advice": "generate the regularization images in the WebUI, or import a folder of them",
    "host.no_tagger": "the tagging helper '{name}' is not available here",
    "host.no_tagger.advice": "choose one of: {names}",
    "host.no_tagger.none": "none (tag by hand)",
    "host.no_checkpoint": "no checkpoint is selected in the WebUI, so previews cannot be rendered",
    "host.no_checkpoint.advice": "select the model the LoRA was trained on in the checkpoint list",
    "host.other_family": "the WebUI has a {loaded} model loaded ({title}) but the LoRA is for {wanted}; previews "
                         "were skipped",
    "host.other_family.advice": "select a checkpoint of the family the LoRA was trained on to see previews",
    "host.no_checkpoint_image": "no checkpoint is selected in the WebUI, so no image can be generated",
    "host.no_checkpoint_image.advice": "select the base model you will train on in the checkpoint list",
    "host.clip_failed": "the WebUI's CLIP interrogator failed (its console shows the error)",
    "host.clip_load": "the WebUI's CLIP interrogator could not load its models ({error})",
    "host.clip.advice": "the WebUI downloads its BLIP and CLIP models on first use: connect to the internet once (or "
                        "put them in models/BLIP and models/clip-interrogator by hand); or tag with another tagger or "
                        "by hand",
    "host.deepbooru_load": "the WebUI's DeepBooru could not load its model ({error}): {file} is not in {folder}, and "
                           "the WebUI downloads it on first use",
    "host.deepbooru_load.advice": "connect to the internet once, or put {file} (AUTOMATIC1111/TorchDeepDanbooru's "
                                  "releases) in {folder}; or tag with another tagger or by hand",
})


@dataclass
class Checkpoint:
    title: str            # what the host shows ("v1-5-pruned-emaonly.safetensors [6ce0161689]")
    path: str             # absolute file path
    family: Optional[str] = None   # "sd1" | "sd2" | "sdxl" | None (unknown until read)

    def to_dict(self) -> dict:
        return {"title": self.title, "path": self.path, "family": self.family}


MIN_RENDER_SIDE, MAX_RENDER_SIDE = 64, 2048   # pixels per side of a preview or grid image
MAX_RENDER_SEED = 2**32 - 1                    # the WebUIs' seed range
MAX_RENDER_PROMPTS = 16


@dataclass
class RenderSettings:
    """How images of a LoRA are rendered: the one set of render fields and limits, extended by the runner's
    per-epoch previews, the Evaluate tab's grid and the adapter's requests."""
    prompts: list = field(default_factory=lambda: ["{trigger}"])  # {trigger} is replaced by the trigger word
    weight: float = 1.0
    negative_prompt: str = ""
    seed: int = 1234
    width: int = 512
    height: int = 512
    steps: int = 20
    cfg_scale: float = 7.0
    sampler_name: str = "Euler a"
    scheduler: str = "Automatic"     # the WebUI's "Schedule type", always sent (Forge corrects a missing one aloud)
    hires_scale: float = 1.0         # hires fix: a second pass at this many times the size; 1 = off
    hires_upscaler: str = "Latent"
    hires_steps: int = 0             # steps of the second pass; 0 = as many as the first
    denoising_strength: float = 0.5  # of the second pass

    @property
    def hires(self) -> bool:
        return self.hires_scale > 1.0

    def render_fields(self) -> dict:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(RenderSettings)}

    def render_problems(self, prefix: str = "") -> list[str]:
        """Sizes, steps, seed and prompts a host cannot render, each named with ``prefix`` (e.g. "previews.")."""
        problems = []
        for side in ("width", "height"):
            value = getattr(self, side)
            if not MIN_RENDER_SIDE <= value <= MAX_RENDER_SIDE or value % 8:
                problems.append(sentence("render.side", name=prefix + side, value=value, low=MIN_RENDER_SIDE,
                                         high=MAX_RENDER_SIDE))
        if not 1 <= self.steps <= 150:
            problems.append(sentence("render.steps", name=prefix + "steps", value=self.steps))
        if not 0 <= self.seed <= MAX_RENDER_SEED:
            problems.append(sentence("render.seed", name=prefix + "seed", value=self.seed, high=MAX_RENDER_SEED))
        if not self.prompts:
            problems.append(sentence("render.no_prompts", name=prefix + "prompts"))
        elif len(self.prompts) > MAX_RENDER_PROMPTS:
            problems.append(sentence("render.many_prompts", name=prefix + "prompts", count=len(self.prompts),
                                     high=MAX_RENDER_PROMPTS))
        if not 1.0 <= self.hires_scale <= 4.0:
            problems.append(sentence("render.hires_scale", name=prefix + "hires_scale", value=f"{self.hires_scale:g}"))
        if not 0 <= self.hires_steps <= 150:
            problems.append(sentence("render.hires_steps", name=prefix + "hires_steps", value=self.hires_steps))
        if not 0.0 <= self.denoising_strength <= 1.0:
            problems.append(sentence("render.denoising", name=prefix + "denoising_strength",
                                     value=f"{self.denoising_strength:g}"))
        return problems


IMAGE_OVERHEAD_STEPS = 4   # what an image costs besides its steps (prompt encoding, VAE decode), in steps


def render_work(settings: RenderSettings) -> float:
    """What one image of ``settings`` costs, in megapixel-steps (the hires pass counted at its own size; each pass
    also pays a few steps' worth for encoding the prompt and decoding the picture, whatever its steps)."""
    work = settings.width * settings.height * (settings.steps + IMAGE_OVERHEAD_STEPS)
    if settings.hires:
        scale = settings.hires_scale
        work += settings.width * settings.height * scale * scale * (
            (settings.hires_steps or settings.steps) + IMAGE_OVERHEAD_STEPS)
    return work / 1e6


class RenderClock:
    """How fast a host renders, from its recent renders (previews, grid cells): seconds per megapixel-step,
    the lower median of the last ``keep`` measurements (a render that also loaded a model does not swing it)."""

    def __init__(self, keep: int = 15) -> None:
        self._rates: list[float] = []
        self._lock = threading.Lock()
        self.keep = keep

    def record(self, settings: RenderSettings, images: int, seconds: float) -> None:
        work = render_work(settings) * images
        if images > 0 and work > 0 and seconds > 0:
            with self._lock:
                self._rates = (self._rates + [seconds / work])[-self.keep:]

    def rate(self) -> Optional[float]:
        with self._lock:
            rates = sorted(self._rates)
        return rates[(len(rates) - 1) // 2] if rates else None

    def estimate(self, settings: RenderSettings, images: int) -> Optional[float]:
        """Seconds for ``images`` images of ``settings``; None before the first measurement."""
        rate = self.rate()
        return None if rate is None else rate * render_work(settings) * images


@dataclass
class PreviewRequest(RenderSettings):
    lora_path: str = ""            # the saved .safetensors
    base_model_path: str = ""      # the checkpoint the LoRA was trained on
    trigger: str = ""              # activation text put where a prompt says {trigger}

    def __post_init__(self) -> None:
        if not self.lora_path:
            raise ValueError("a preview request needs lora_path")  # internal: the runner and the tab always set it


class PreviewUnavailable(TrainerError):
    """Previews cannot be rendered now (no model loaded, another model family); training goes on."""


class HostAdapter:
    """The host as the trainer sees it. Defaults suit a host that has nothing to offer."""

    name = "none"

    @property
    def render_clock(self) -> RenderClock:
        """This host's render speed, measured on its renders (created at first use)."""
        clock = self.__dict__.get("_render_clock")
        if clock is None:
            clock = self.__dict__.setdefault("_render_clock", RenderClock())
        return clock

    def loaded_checkpoint(self) -> Optional[Checkpoint]:
        return None

    def list_checkpoints(self, refresh: bool = False) -> list[Checkpoint]:
        return []

    def lora_dir(self) -> str:
        raise NotImplementedError

    def runs_dir(self) -> str:
        """Where runs keep their folders (logs, training states, previews, grids) when the settings do not
        say: "" for beside the output (``<output_dir>/logs``). A WebUI keeps them out of its Lora folder."""
        return ""

    def jobs_dir(self) -> str:
        """Where this host keeps its job records ("" for the trainer's cache folder)."""
        return ""

    def presets_dir(self) -> str:
        """Where this host keeps the presets its users save ("" for the trainer's cache folder)."""
        return ""

    def free_vram(self) -> None:
        """Before training: the host's model leaves the GPU."""

    def restore_vram(self) -> None:
        """After training (no-op where the host reloads on demand)."""

    def generate_previews(self, req: PreviewRequest) -> list:
        raise PreviewUnavailable(msg("host.no_previews"))

    def generate_image(self, prompt: str, negative_prompt: str, seed: int, width: int, height: int):
        """One picture of the host's loaded model without any LoRA (regularization images)."""
        raise PreviewUnavailable(msg("host.generate_outside"), msg("host.generate_outside.advice"))
    def preview_checkpoint(self, req: PreviewRequest) -> Optional[Checkpoint]:
        """The model ``generate_previews`` renders ``req`` with (None when unknown)."""
        return None

    def render_options(self) -> dict:
        """The samplers, schedule types and hires-fix upscalers this host renders with."""
        return {"samplers": [RenderSettings.sampler_name], "schedulers": [RenderSettings.scheduler], "upscalers": []}

    def interrupt(self) -> None:
        """Stop a preview that is being rendered."""

    def refresh_loras(self) -> None:
        """Make a new LoRA file show in the host's Lora tab."""

    def interrogators(self) -> list[str]:
        return []

    def interrogate(self, image, name: str) -> str:
        raise TrainerError(msg("host.no_tagger", name=name),
                           msg("host.no_tagger.advice",
                               names=", ".join(self.interrogators()) or msg("host.no_tagger.none")))

    def prepare_interrogator(self, name: str) -> None:
        """Load ``name``'s model before a run tags anything; ``TrainerError`` saying why it cannot run (the
        WebUI downloads the models on first use, which fails offline)."""
        if name not in self.interrogators():
            self.interrogate(None, name)

    def allowed_folders(self) -> AllowedFolders:
        """Where a caller may name files and folders: anywhere, unless the host serves other computers."""
        return AllowedFolders.anywhere()

    def language(self) -> str:
        """The language the user reads: "zh_CN" or "en" (for sentences with numbers; fixed texts are
        translated by the WebUI's own localization)."""
        return normalize_language(os.environ.get("LORA_TRAINER_LANGUAGE") or os.environ.get("LANG", ""))

    def models_dir(self) -> str:
        """Where models the workbench downloads on request go (the WD14 tagger: ``<models>/wd14``)."""
        return self.datasets_dir()

    def datasets_dir(self) -> str:
        """Where the Dataset workbench puts new projects (a caller of a shared host may write there)."""
        return os.path.join(os.path.dirname(os.path.abspath(self.lora_dir())), "lora_trainer_datasets")

    def api_auth_dependencies(self) -> list:
        return []

    # Called around the host's own generations (an always-on script's before_process / postprocess)
    # so that they find the host model on the GPU while a training job has moved it off.
    def before_host_generation(self) -> None:
        pass

    def after_host_generation(self) -> None:
        pass

    def describe(self) -> dict:
        loaded = self.loaded_checkpoint()
        return {"host": self.name, "lora_dir": self.lora_dir(),
                "loaded_checkpoint": loaded.to_dict() if loaded else None}


# --- helpers shared by the adapters ---------------------------------------------------------------

def with_lora_tag(prompt: str, network_name: str, weight: float, trigger: str = "") -> str:
    """``prompt`` with ``{trigger}`` filled in and ``<lora:NAME:W>`` appended unless it names the LoRA.

    The tag follows a space, as the WebUI's own Lora cards and our X/Y/Z axes add it: the host takes the tag
    out of the text, and a comma before it would stay behind as a token that changes the picture."""
    text = prompt.replace("{trigger}", trigger).strip()
    if f"<lora:{network_name}:" in text or f"<lora:{network_name}>" in text:
        return text
    tag = f"<lora:{network_name}:{weight:g}>"
    return f"{text} {tag}" if text else tag


_family_cache: dict[tuple, Optional[str]] = {}
_family_lock = threading.Lock()


def checkpoint_family(path: str) -> Optional[str]:
    """"sd1" / "sd2" / "sdxl" from a checkpoint's key names (header read only), None if unknown.

    Only ``.safetensors`` files and diffusers folders are read: a ``.ckpt`` would have to be
    unpickled, which is too slow for a listing.
    """
    from ..models.family import detect_diffusers_folder, detect_family

    try:
        stat = os.stat(path)
    except OSError:
        return None
    key = (os.path.abspath(path), stat.st_mtime_ns, stat.st_size)
    with _family_lock:
        if key in _family_cache:
            return _family_cache[key]
    family = None
    try:
        if os.path.isdir(path):
            family = detect_diffusers_folder(path)
        elif path.lower().endswith(".safetensors"):
            keys = tensor_names(path)
            family = detect_family(keys, source=path)
    except (TrainerError, OSError, ValueError):
        family = None
    with _family_lock:
        _family_cache[key] = family
    return family


def lora_family(path: str) -> Optional[str]:
    """The family a kohya LoRA file was trained for, from its metadata (None when not said)."""
    try:
        return family_from_metadata(read_metadata(path))
    except TrainerError:
        return None


def is_inside(path: str, folder: str) -> bool:
    try:
        path, folder = os.path.realpath(path), os.path.realpath(folder)
        return os.path.commonpath([path, folder]) == folder
    except ValueError:  # different drives on Windows
        return False


def parse_credentials(text: Optional[str]) -> list[tuple[str, str]]:
    """``"user:pass,user2:pass2"`` (the WebUI's --api-auth form) → [(user, pass), ...]."""
    pairs = []
    for item in (text or "").split(","):
        user, sep, password = item.strip().partition(":")
        if sep:
            pairs.append((user, password))
    return pairs


def basic_auth_dependencies(credentials: Optional[str]) -> list:
    """FastAPI dependencies requiring HTTP Basic auth with one of ``"user:pass,user2:pass2"``.

    The hosts' ``--api-auth`` covers only their own routes, so extension routes check it themselves.
    """
    pairs = parse_credentials(credentials)
    if not pairs:
        return []
    import secrets

    from fastapi import Depends, HTTPException
    from fastapi.security import HTTPBasic

    security = HTTPBasic()

    # ``creds`` is an HTTPBasicCredentials; unannotated because FastAPI cannot resolve a postponed
    # annotation naming a class imported inside this function
    def check(creds=Depends(security)) -> None:
        given_user, given_password = creds.username.encode(), creds.password.encode()
        for user, password in pairs:
            if secrets.compare_digest(given_user, user.encode()) and \
                    secrets.compare_digest(given_password, password.encode()):
                return
        raise HTTPException(status_code=401, detail="Incorrect username or password",
                            headers={"WWW-Authenticate": "Basic"})

    return [Depends(check)]

