"""Fake ``modules.launch_utils`` (what install.py may use)."""
from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import sys

from . import _fake

args = argparse.Namespace(skip_install=False, skip_prepare_environment=False)
index_url = ""
python = sys.executable


def is_installed(package: str) -> bool:
    try:
        importlib.metadata.version(package)
        return True
    except importlib.metadata.PackageNotFoundError:
        return importlib.util.find_spec(package) is not None


def run_pip(command: str, desc=None, live=False) -> str:
    _fake.record(f"run_pip:{command}")
    return ""


def requirements_met(requirements_file: str) -> bool:
    return True
