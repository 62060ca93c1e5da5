"""Installing the trainer's libraries into a WebUI's Python without touching the WebUI's own packages.

Standard library only and torch-free: it runs under the WebUI's Python before the WebUI exists.

- ``versions``: names and versions, read from package metadata (no imports).
- ``host``: which WebUI, its requirements file and ``==`` pins, CUDA torch or not.
- ``policy``: the versions that run next to a host's packages, decided by capability.
- ``gate``: pip fenced in: constraints freezing what is installed, a dry run, then the install.
- ``status``: ``install_status.json`` and :func:`read_install_status` for the tab.
- ``run``: what ``install.py`` does at each start.
"""
from .status import read_install_status

__all__ = ["read_install_status"]
