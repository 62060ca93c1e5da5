"""A job's preview pictures: which model renders them (and what to tell the user about it), and the pictures
saved in the run's folder as the job's preview records. The runner renders them between training steps."""
from __future__ import annotations

import os
from typing import Any, Optional

from ..hosts.base import MAX_RENDER_SIDE, MIN_RENDER_SIDE, PreviewUnavailable
from ..text.messages import Sentence, sentence
from . import outputs


def same_path(a: str, b: str) -> bool:
    try:
        return os.path.normcase(os.path.realpath(a)) == os.path.normcase(os.path.realpath(b))
    except (OSError, ValueError):
        return False


def preview_model(host: Any, req: Any) -> tuple[Optional[str], Optional[str]]:
    """(title of the model the previews render on, a note for the job's log when it is not the WebUI's own
    choice — previews switch to the model the LoRA was trained on — or not the trained one, unlisted)."""
    try:
        model = host.preview_checkpoint(req)
        loaded = host.loaded_checkpoint()
    except Exception:   # a host that cannot say
        return None, None
    if model is None:
        return None, None
    if not same_path(model.path, req.base_model_path):
        return model.title, sentence("job.previews_other_model", model=model.title,
                                     base=os.path.basename(req.base_model_path))
    if loaded is not None and not same_path(loaded.path, model.path):
        return model.title, sentence("job.previews_trained_model", model=model.title, loaded=loaded.title)
    return model.title, None


def save_previews(images: list, run_dir: str, event: Any, settings: Any, trigger: str, model: Optional[str],
                  seconds: float) -> tuple[list[dict], Optional[str]]:
    """The pictures saved in ``<run_dir>/previews`` as preview records (with the model that rendered them and
    the seconds each took, for the grid's time estimate); (records, a note when saving failed)."""
    records = []
    for index, image in enumerate(images):
        path = outputs.preview_path(run_dir, event.lora_path, settings.weight, index)
        try:
            outputs.save_image(image, path)
        except OSError as err:
            return records, sentence("job.previews_unsaved", folder=os.path.dirname(path), error=err)
        prompt = settings.prompts[index] if index < len(settings.prompts) else ""
        records.append({"epoch": event.epoch, "step": event.step, "weight": settings.weight,
                        "prompt": prompt.replace("{trigger}", trigger), "path": path, "file": event.lora_path,
                        "model": model, "seconds": round(seconds / max(1, len(images)), 2)})
    return records, None


def preview_size(cfg) -> tuple[int, int]:
    """The training size, scaled down to what a preview may be (at most 2048 per side, multiples of 8): what a
    job's previews render at unless it says otherwise."""
    from ..config.schema import parse_resolution
    from ..errors import ConfigError

    try:
        width, height = parse_resolution(cfg.resolution)
    except ConfigError:
        return 512, 512
    scale = min(1.0, MAX_RENDER_SIDE / max(width, height, 1))
    return tuple(max(MIN_RENDER_SIDE, int(side * scale) // 8 * 8) for side in (width, height))


def preview_failure(err: BaseException, lora_name: str) -> Sentence:
    """The job's log line when a preview could not be rendered (training goes on)."""
    if overflowed(err):
        return sentence("job.previews_nan", name=lora_name)
    if isinstance(err, PreviewUnavailable):
        return sentence("job.previews_skipped_advice", message=err.message, advice=err.advice) if err.advice \
            else sentence("job.previews_skipped", message=err.message)
    if "out of memory" in str(err).lower():
        return sentence("job.previews_oom")
    return sentence("job.previews_failed", kind=type(err).__name__, error=err)


def overflowed(err: BaseException) -> bool:
    """A1111's and Forge's NaN check stopped the picture (``modules.devices.NansException``): the model with the
    LoRA gave NaN, a known outcome said in plain words rather than a traceback."""
    return type(err).__name__ == "NansException"


def one_colour(images: list) -> bool:
    """Every picture is a single flat colour: how NaN shows where no NaN check stops the picture (Forge has
    none; A1111 with --disable-nan-check), and the black pictures of a VAE in half precision."""
    def flat(image) -> bool:
        try:
            extrema = image.getextrema()
        except Exception:   # not a picture we can read: say nothing
            return False
        bands = extrema if isinstance(extrema[0], tuple) else (extrema,)
        return all(low == high for low, high in bands)
    return bool(images) and all(flat(image) for image in images)
