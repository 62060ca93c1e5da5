"""Fake ``launch`` module (install.py imports it for its helpers)."""
from modules.launch_utils import args, index_url, is_installed, python, requirements_met, run_pip  # noqa: F401
