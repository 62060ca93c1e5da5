"""The real install.py in simulated WebUI environments (A1111 1.10.1 and Forge pin sets, fake torch).

pip runs offline from the wheelhouse that `make wheelhouse` fills once; the simulated environments are
built from it on first use and cached (tests/install_sim.py). These run in one test environment only,
the current stack's (`make test-current`): the simulations are separate environments anyway.
"""
import importlib.util
import json
import os
import shutil
from pathlib import Path

import pytest

import install_sim as sim
from lora_trainer.install.policy import PROTECTED
from lora_trainer.install.versions import canonical

INFO = sim.wheelhouse_info()
pytestmark = [
    pytest.mark.skipif(bool(os.environ.get("LORA_TRAINER_STACK")) or importlib.util.find_spec("torch") is None,
                       reason="the install.py simulations run once, in the current-stack environment"),
    pytest.mark.skipif(INFO is None, reason="no wheelhouse for the install.py simulations: "
                                            "run `make wheelhouse` once (it needs the network)"),
    pytest.mark.skipif(INFO is not None and shutil.which(INFO.get("python", "")) is None
                       and not Path(INFO.get("python", "")).is_file(),
                       reason="the Python the wheelhouse was filled for is gone: run `make wheelhouse`"),
]
FORBIDDEN = ("-U", "--upgrade", "--force-reinstall", "-I", "--ignore-installed", "--no-deps", "--upgrade-strategy")


def host_names(profile: str) -> set[str]:
    return set(sim.host_pins(sim.PROFILES[profile])[0])


def one_line(done, host_says: str = "") -> str:
    """Our single line; ``host_says``: a line the host's own run_pip prints before it."""
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stdout + done.stderr, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    if host_says:
        assert lines and lines[0] == host_says, done.stdout
        lines = lines[1:]
    assert len(lines) == 1 and lines[0].startswith("[LoRA Trainer] "), done.stdout
    return lines[0]


def status_of(webui: Path) -> dict:
    return json.loads((sim.extension(webui) / "install_status.json").read_text(encoding="utf-8"))


def unchanged(before: dict, after: dict) -> dict:
    """Packages that were there before and are not identical now (should be none)."""
    return {k: (v, after.get(k)) for k, v in before.items() if after.get(k) != v}


@pytest.fixture(scope="module")
def a1111():
    return sim.sim("a1111")


@pytest.fixture
def copy_of(tmp_path):
    """copy_of(profile) -> a private copy of that simulation to install into; removed afterwards (~250 MB)."""
    made = []

    def _copy(name):
        made.append(sim.copy_sim(name, tmp_path / f"venv-{name}"))
        return made[-1]

    yield _copy
    for path in made:
        shutil.rmtree(path, ignore_errors=True)


def test_the_spy_sees_any_process(tmp_path, a1111):
    spy = tmp_path / "spy.log"
    env = dict(sim.pip_env(), INSTALL_SIM_SPY_LOG=str(spy))
    (tmp_path / "spy-site").mkdir()
    (tmp_path / "spy-site" / "sitecustomize.py").write_text(sim.SPY)
    env["PYTHONPATH"] = str(tmp_path / "spy-site")
    done = sim.run([sim.venv_python(a1111), "-c", "import subprocess; subprocess.run(['true'])"], env=env, check=False)
    assert done.returncode != 0 and "true" in spy.read_text()


def test_a1111_dry_run_plans_the_versions_that_import_there_and_changes_nothing(tmp_path, a1111):
    webui = sim.make_webui(tmp_path / "webui", sim.PROFILES["a1111"])
    before = sim.freeze(a1111)
    assert before["transformers"] == "4.30.2" and before["torch"] == "2.1.2+cu121" and before["pip"] == "22.2.1"
    status_file = tmp_path / "status.json"
    line = one_line(sim.run_install(a1111, webui, "--dry-run", "--status-file", status_file))
    assert line.startswith("[LoRA Trainer] would install diffusers 0.31.0, peft 0.13.2, bitsandbytes 0.45.")
    planned = {canonical(k): v for k, v in json.loads(status_file.read_text())["planned"].items()}
    assert planned["diffusers"].startswith("0.31.") and planned["peft"].startswith("0.13.")
    assert planned["bitsandbytes"].startswith("0.45.")          # CUDA torch 2.1.2: below 0.46
    assert not set(planned) & set(before), "the plan would change something installed"
    assert not set(planned) & host_names("a1111"), "the plan would install something the host pins"
    assert not set(planned) & ({canonical(n) for n in PROTECTED} - {"bitsandbytes"})
    assert sim.freeze(a1111) == before
    assert not (sim.extension(webui) / "install_status.json").exists()


def test_a1111_install_adds_only_our_packages_and_the_next_start_is_silent(tmp_path, copy_of):
    venv = copy_of("a1111")
    webui = sim.make_webui(tmp_path / "webui", sim.PROFILES["a1111"])
    before = sim.freeze(venv)
    line = one_line(sim.run_install(venv, webui))
    assert line.startswith("[LoRA Trainer] installed diffusers 0.31.0, peft 0.13.2")
    assert line.endswith("the WebUI's own packages are unchanged")
    after = sim.freeze(venv)
    assert unchanged(before, after) == {}
    status = status_of(webui)
    assert (status["status"], status["ready"]) == ("installed", True)
    assert set(after) - set(before) == {canonical(n) for n in status["planned"]}

    spy = tmp_path / "spy.log"                                   # the next start: no process, no output
    again = sim.run_install(venv, webui, spy=spy)
    assert (again.returncode, again.stdout, again.stderr) == (0, "", "") and not spy.exists()
    assert status_of(webui)["status"] == "ok" and sim.freeze(venv) == after


def test_through_the_webuis_launch_module_pip_gets_constraints_and_no_upgrade_flags(tmp_path, copy_of):
    venv = copy_of("a1111")
    log = tmp_path / "run_pip.log"
    webui = sim.make_webui(tmp_path / "webui", sim.PROFILES["a1111"], sim.fake_launch(False, log))
    before = sim.freeze(venv)
    line = one_line(sim.run_install(venv, webui), host_says="Installing LoRA Trainer requirements")
    assert line.startswith("[LoRA Trainer] installed diffusers 0.31.0, peft 0.13.2"), line
    (command,) = log.read_text().splitlines()                   # one run_pip call: the install itself
    words = command.split()
    assert words[0] == "install" and "-c" in words and "diffusers==0.31.0" in [w.strip('"') for w in words]
    assert not set(words) & set(FORBIDDEN) and not any(w.startswith("--upgrade") for w in words)
    assert not any(w.strip('"').startswith(("torch", "transformers", "gradio", "xformers")) for w in words)
    assert unchanged(before, sim.freeze(venv)) == {}


def test_skip_install_is_honoured_and_says_what_to_run(tmp_path, a1111):
    log, spy = tmp_path / "run_pip.log", tmp_path / "spy.log"
    webui = sim.make_webui(tmp_path / "webui", sim.PROFILES["a1111"], sim.fake_launch(True, log))
    before = sim.freeze(a1111)
    line = one_line(sim.run_install(a1111, webui, spy=spy))
    assert "--skip-install, so nothing was installed. To install: " in line and '"diffusers>=0.28,<0.32"' in line
    assert not spy.exists() and not log.exists()
    assert status_of(webui)["status"] == "skipped" and sim.freeze(a1111) == before


def test_forge_installs_nothing_of_diffusers_or_peft_and_then_stays_silent(tmp_path, copy_of):
    venv = copy_of("forge")
    webui = sim.make_webui(tmp_path / "webui", sim.PROFILES["forge"])
    before = sim.freeze(venv)
    assert (before["diffusers"], before["peft"], before["bitsandbytes"]) == ("0.31.0", "0.13.2", "0.45.3")
    first = sim.run_install(venv, webui)
    assert first.returncode == 0 and "Traceback" not in first.stdout + first.stderr
    status = status_of(webui)
    assert status["ready"] and not {"diffusers", "peft", "bitsandbytes"} & {canonical(n) for n in status["planned"]}
    assert set(status["planned"]) <= {"tomli"}                  # Python 3.10 only: for reading TOML configs
    if status["planned"]:
        assert one_line(first).endswith("(for reading TOML config files); the WebUI's own packages are unchanged")
    else:
        assert first.stdout == ""
    assert unchanged(before, sim.freeze(venv)) == {}
    spy = tmp_path / "spy.log"
    again = sim.run_install(venv, webui, spy=spy)
    assert (again.returncode, again.stdout) == (0, "") and not spy.exists()
    assert status_of(webui)["status"] == "ok"


def test_refused_when_only_changing_a_webui_package_would_do_and_not_retried(tmp_path, copy_of):
    venv = copy_of("a1111-old-hub")
    webui = sim.make_webui(tmp_path / "webui", sim.PROFILES["a1111-old-hub"])
    before = sim.freeze(venv)
    assert before["huggingface-hub"] == "0.16.4"
    line = one_line(sim.run_install(venv, webui))
    assert line.startswith("[LoRA Trainer] training is not available: diffusers and peft were not installed, because "
                           "pip finds no version that fits without changing huggingface")
    assert "0.16.4" in line and "To install anyway (changing them): " in line
    status = status_of(webui)
    assert (status["status"], status["ready"]) == ("refused", False) and status["command"]
    assert sim.freeze(venv) == before
    spy = tmp_path / "spy.log"                                   # same environment: said again, pip not rerun
    assert one_line(sim.run_install(venv, webui, spy=spy)) == line and not spy.exists()


def test_refused_when_the_report_would_install_a_package_the_webui_pins(tmp_path, copy_of):
    venv = copy_of("a1111")
    sim.run([sim.venv_python(venv), "-m", "pip", "uninstall", "-y", "psutil"], env=sim.pip_env())
    webui = sim.make_webui(tmp_path / "webui", sim.PROFILES["a1111"])
    before = sim.freeze(venv)
    line = one_line(sim.run_install(venv, webui))
    assert "pip would install psutil 5.9.5, which this WebUI pins (5.9.5) and installs itself" in line
    assert status_of(webui)["status"] == "refused" and sim.freeze(venv) == before
