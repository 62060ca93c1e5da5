"""Fake ``modules.processing``: txt2img objects with the real field names (unknown ones are an
error, as for the real dataclass) and a ``process_images`` that returns deterministic images."""
from __future__ import annotations

import hashlib

from . import _fake

_FIELDS = {
    "sd_model": None, "outpath_samples": None, "outpath_grids": None, "prompt": "", "styles": None, "seed": -1,
    "subseed": -1, "subseed_strength": 0.0, "seed_resize_from_h": -1, "seed_resize_from_w": -1,
    "seed_enable_extras": True, "sampler_name": None, "scheduler": None, "batch_size": 1, "n_iter": 1,
    "steps": 50, "cfg_scale": 7.0, "width": 512, "height": 512, "restore_faces": None, "tiling": None,
    "do_not_save_samples": False, "do_not_save_grid": False, "extra_generation_params": None,
    "overlay_images": None, "negative_prompt": None, "eta": None, "do_not_reload_embeddings": False,
    "denoising_strength": None, "ddim_discretize": None, "s_min_uncond": None, "s_churn": None, "s_tmax": None,
    "s_tmin": None, "s_noise": None, "override_settings": None, "override_settings_restore_afterwards": True,
    "sampler_index": None, "refiner_checkpoint": None, "refiner_switch_at": None, "token_merging_ratio": 0,
    "token_merging_ratio_hr": 0, "disable_extra_networks": False, "firstpass_image": None,
    "enable_hr": False, "hr_scale": 2.0, "hr_upscaler": None, "hr_second_pass_steps": 0, "hr_resize_x": 0,
    "hr_resize_y": 0, "hr_checkpoint_name": None, "hr_sampler_name": None, "hr_scheduler": None,
    "hr_prompt": "", "hr_negative_prompt": "",
}
_FORGE_FIELDS = {"distilled_cfg_scale": 3.5, "hr_cfg": 1.0, "hr_distilled_cfg": 3.5, "hr_additional_modules": None}


class StableDiffusionProcessingTxt2Img:
    def __init__(self, **kwargs) -> None:
        fields = dict(_FIELDS, **(_FORGE_FIELDS if _fake.profile == "forge" else {}))
        unknown = sorted(set(kwargs) - set(fields))
        if unknown:
            raise TypeError(f"StableDiffusionProcessingTxt2Img got unexpected keyword argument(s) {unknown}")
        for name, default in fields.items():
            setattr(self, name, kwargs.get(name, default))
        self.scripts = None
        self.script_args = []
        self.closed = False

    def close(self) -> None:
        self.closed = True


class Processed:
    def __init__(self, p, images) -> None:
        self.images = images
        self.seed = p.seed
        self.all_seeds = [p.seed] * len(images)
        self.infotexts = [p.prompt] * len(images)
        self.info = p.prompt

    def js(self) -> str:
        return "{}"


def _image(p):
    from PIL import Image

    digest = hashlib.sha256(f"{p.prompt}|{p.seed}".encode()).digest()
    image = Image.new("RGB", (int(p.width), int(p.height)), tuple(digest[:3]))
    if getattr(p, "fake_black", False):   # set by a test's preview_hook: what NaN gives without a NaN check
        return Image.new("RGB", image.size)
    image.paste(tuple(digest[3:6]), (0, 0, int(p.width), int(p.height) // 2))   # two colours: a picture
    return image


def process_images(p) -> Processed:
    from . import call_queue, sd_models, shared

    _fake.record("process_images")
    p.lock_held = call_queue.queue_lock.locked()
    p.state_job = shared.state.job
    model = sd_models.model_data.sd_model
    wanted = sd_models.checkpoint_aliases.get((p.override_settings or {}).get("sd_model_checkpoint"))
    if wanted is not None and getattr(getattr(model, "sd_checkpoint_info", None), "filename", None) != wanted.filename:
        # both hosts: the override switches the model for this image; the setting is put back afterwards, the
        # weights stay until the next generation without an override reloads the chosen one
        from fake_host import family_of
        _fake.record(f"switch_model:{wanted.name}")
        model = sd_models.model_data.sd_model = _fake.FakeSDModel(wanted, family_of(wanted.filename),
                                                                  forge=_fake.profile == "forge")
    if _fake.profile == "forge":
        if not hasattr(model, "forge_objects"):   # loaded lazily at the first generation
            _fake.record("forge_model_reload")
            info = sd_models.model_data.forge_loading_parameters.get("checkpoint_info")
            if info is None:
                raise RuntimeError("fake Forge: no checkpoint selected")
            from fake_host import family_of
            model = sd_models.model_data.sd_model = _fake.FakeSDModel(info, family_of(info.filename), forge=True)
    elif wanted is None:
        sd_models.reload_model_weights()
        if model is None or model.device != "cuda":
            raise RuntimeError("fake A1111: the model is not on the GPU (LayerNormKernelImpl not implemented "
                               "for 'Half')")
    p.model_device = getattr(model, "device", None)
    p.model_name = getattr(getattr(model, "sd_checkpoint_info", None), "name", None)
    _fake.processed.append(p)
    if _fake.preview_hook is not None:
        _fake.preview_hook(p)
    return Processed(p, [_image(p)])   # interrupted too: A1111 decodes what was sampled so far
