"""Fake built-in Lora extension module ``networks`` (A1111 ``Lora``, Forge ``sd_forge_lora``)."""
from __future__ import annotations

import functools
import os

from modules import _fake

available_networks: dict = {}
available_network_aliases: dict = {}


def list_available_networks() -> None:
    from modules import shared
    from modules.call_queue import queue_lock

    _fake.record(f"list_available_networks:lock={queue_lock.locked()}")
    available_networks.clear()
    available_network_aliases.clear()
    for dirpath, _, files in os.walk(shared.cmd_opts.lora_dir):
        for name in files:
            if name.endswith((".safetensors", ".pt", ".ckpt")):
                stem = os.path.splitext(name)[0]
                available_networks[stem] = available_network_aliases[stem] = os.path.join(dirpath, name)


if _fake.profile == "forge":
    @functools.lru_cache(maxsize=5)
    def _load(filename):
        return {}

    class _CachedLoader:
        """Forge caches LoRA state dicts by path."""

        def __call__(self, filename):
            return _load(filename)

        def cache_clear(self):
            _fake.record("load_lora_state_dict.cache_clear")
            _load.cache_clear()

    load_lora_state_dict = _CachedLoader()
