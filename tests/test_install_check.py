"""install_check's rules, and install.py run in this environment: silent when all fits, one line otherwise."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from lora_trainer.install.check import check_environment, installed_versions, parse_version, wanted_ranges

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


def copy_extension(dest: Path) -> Path:
    shutil.copytree(ROOT / "lora_trainer", dest / "lora_trainer",
                    ignore=shutil.ignore_patterns("__pycache__", "demo_data", "configs"))
    shutil.copy(ROOT / "install.py", dest / "install.py")
    return dest


def offline_env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_") and k != "INDEX_URL"}
    env.update(PYTHONPATH="", PIP_CONFIG_FILE=os.devnull, LORA_TRAINER_PIP_ARGS="--no-index", **extra)
    return env


def run_install(ext: Path, cwd: Path, *args):
    return subprocess.run([sys.executable, str(ext / "install.py"), *args], capture_output=True, text=True,
                          encoding="utf-8", cwd=cwd, env=offline_env(), timeout=300)


def test_install_py_in_this_environment_says_at_most_one_line_and_never_fails(tmp_path):
    ext = copy_extension(tmp_path / "ext")
    done = run_install(ext, tmp_path)                      # pip, if it runs at all, cannot reach an index
    assert done.returncode == 0 and "Traceback" not in done.stdout + done.stderr, done.stderr
    status = json.loads((ext / "install_status.json").read_text(encoding="utf-8"))
    expected = check_environment(installed_versions())
    lines = done.stdout.splitlines()
    assert len(lines) <= 1 and all(line.startswith("[LoRA Trainer] ") for line in lines)
    if status["status"] == "ok":
        assert expected.ok and done.stdout == ""          # the fast path prints nothing
    else:
        assert status["status"] in ("refused", "failed") and status["summary"] and lines
    assert status["ready"] == expected.ok or status["status"] == "ok"


def test_a_broken_check_prints_one_line_and_lets_the_webui_start(tmp_path):
    ext = copy_extension(tmp_path / "ext")
    (ext / "lora_trainer" / "install" / "run.py").write_text("raise RuntimeError('boom')\n")
    done = run_install(ext, tmp_path)
    assert done.returncode == 0 and done.stderr == ""
    assert done.stdout.startswith("[LoRA Trainer] the library check could not run (RuntimeError: boom)")
    assert len(done.stdout.splitlines()) == 1 and "--dry-run" in done.stdout


def test_dry_run_changes_nothing(tmp_path):
    ext = copy_extension(tmp_path / "ext")
    done = run_install(ext, tmp_path, "--dry-run")
    assert done.returncode == 0 and not (ext / "install_status.json").exists()
    assert done.stdout.startswith("[LoRA Trainer] ") and len(done.stdout.splitlines()) == 1
