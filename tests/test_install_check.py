"""install.py: decides by capability, never runs pip, is silent when all is well (no torch needed)."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from lora_trainer.install_check import check_environment, installed_versions, parse_version, wanted_ranges

ROOT = Path(__file__).resolve().parents[1]
A1111 = {"torch": "2.1.2+cu121", "transformers": "4.30.2", "accelerate": "0.21.0", "safetensors": "0.4.2",
         "Pillow": "9.5.0", "numpy": "1.26.2", "diffusers": None, "peft": None}
FORGE = dict(A1111, torch="2.3.1+cu121", transformers="4.46.1", accelerate="0.31.0", diffusers="0.31.0",
             peft="0.13.2")


def test_versions_parse_like_releases():
    assert parse_version("2.1.2+cu121") == (2, 1, 2)
    assert parse_version("0.45.3") > parse_version("0.45") and parse_version(None) == ()


def test_a1111_without_our_packages_asks_for_the_ranges_that_run_there():
    result = check_environment(A1111)
    assert not result.ok and not result.blocked
    assert result.to_install == {"diffusers": ">=0.28,<0.32", "peft": ">=0.9,<0.14"}
    assert result.pip_command() == 'python -m pip install "diffusers>=0.28,<0.32" "peft>=0.9,<0.14"'


def test_a1111_with_the_right_versions_and_forge_as_shipped_are_fine():
    assert check_environment(dict(A1111, diffusers="0.31.0", peft="0.13.2")).ok
    assert check_environment(FORGE).ok


def test_versions_pip_accepts_but_that_fail_at_import_are_caught():
    result = check_environment(dict(A1111, diffusers="0.37.1", peft="0.21.2"))
    assert not result.ok
    assert any("diffusers 0.37.1 needs transformers ≥ 4.37" in p for p in result.problems)
    assert any("peft 0.21.2 needs accelerate ≥ 0.32.1" in p for p in result.problems)
    assert result.to_install == {"diffusers": ">=0.28,<0.32", "peft": ">=0.9,<0.14"}
    assert wanted_ranges(FORGE)["peft"] == ">=0.9,<0.15"


def test_a_too_old_webui_is_blocked_not_patched():
    old = dict(A1111, transformers="4.25.1", accelerate="0.18.0")
    result = check_environment(old)
    assert result.blocked and not result.to_install
    assert any("accelerate 0.18.0 is older than 0.21" in p for p in result.problems)
    assert check_environment(dict(A1111, torch=None)).blocked


def test_install_py_reports_this_environment(tmp_path):
    copy = tmp_path / "ext"
    shutil.copytree(ROOT / "lora_trainer", copy / "lora_trainer",
                    ignore=shutil.ignore_patterns("__pycache__", "demo_data", "configs"))
    shutil.copy(ROOT / "install.py", copy / "install.py")
    done = subprocess.run([sys.executable, str(copy / "install.py")], capture_output=True, text=True,
                          encoding="utf-8", cwd=tmp_path, env=dict(os.environ, PYTHONPATH=""), timeout=120)
    assert done.returncode == 0, done.stderr
    status = json.loads((copy / "install_status.json").read_text(encoding="utf-8"))
    expected = check_environment(installed_versions())
    assert status["status"] == ("ok" if expected.ok else "blocked" if expected.blocked else "missing")
    if expected.ok:
        assert done.stdout == ""              # the fast path prints nothing
    else:
        assert done.stdout.startswith("[LoRA Trainer] training is not available yet")
    assert "pip" not in done.stderr
