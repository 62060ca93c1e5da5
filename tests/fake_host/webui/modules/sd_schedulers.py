"""Fake ``modules.sd_schedulers`` (A1111 1.9+ and Forge): the "Schedule type" choices."""
from collections import namedtuple

Scheduler = namedtuple("Scheduler", ["name", "label"])
schedulers = [Scheduler("automatic", "Automatic"), Scheduler("uniform", "Uniform"), Scheduler("karras", "Karras")]
schedulers_map = {**{s.name: s for s in schedulers}, **{s.label: s for s in schedulers}}
