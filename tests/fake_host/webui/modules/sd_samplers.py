"""Fake ``modules.sd_samplers``: the sampler names the txt2img dropdown shows."""

samplers = []


def visible_sampler_names() -> list:
    return ["DPM++ 2M", "Euler a", "Euler", "DDIM"]
