"""The install policy's pure parts: host pins, ranges by capability, the pip gate, the status (no pip runs)."""
import json
import time
from pathlib import Path

import pytest

from lora_trainer.install import gate, status
from lora_trainer.install.host import detect_host, find_webui_root, parse_pins, requirements_file, torch_cuda
from lora_trainer.install.policy import NEVER_REQUESTED, bitsandbytes_range, decide
from lora_trainer.install.versions import canonical, is_pep440

HOSTS = Path(__file__).parent / "data" / "hosts"
PY310 = (3, 10, 6)

A1111 = {"torch": "2.1.2+cu121", "torchvision": "0.16.2+cu121", "transformers": "4.30.2", "accelerate": "0.21.0",
         "safetensors": "0.4.2", "Pillow": "9.5.0", "numpy": "1.26.2", "huggingface-hub": "0.36.2",
         "gradio": "3.41.2", "diffusers": None, "peft": None, "bitsandbytes": None, "tomli": None}
FORGE = dict(A1111, torch="2.3.1+cu121", transformers="4.46.1", accelerate="0.31.0", diffusers="0.31.0",
             peft="0.13.2", bitsandbytes="0.45.3", gradio="4.40.0", **{"huggingface-hub": "0.26.2"})
REFORGE = dict(A1111, torch="2.9.0+cu128", transformers="4.48.1", accelerate="0.21.0", safetensors="0.5.2",
               diffusers="0.32.2", **{"huggingface-hub": "0.25.0"})
CLASSIC = dict(A1111, torch="2.6.0+cu126", diffusers="0.31.0", **{"huggingface-hub": "0.26.5"})
NEO = dict(A1111, torch="2.8.0+cu128", transformers="4.57.6", accelerate="1.14.0", safetensors="0.8.0",
           diffusers="0.37.1", gradio="4.40.0")


def pins_of(name):
    return parse_pins((HOSTS / name).read_text(encoding="utf-8"))[0]


# -- host pins ---------------------------------------------------------------------------------------------
def test_pins_are_read_like_the_webuis_requirements_met():
    text = ("setuptools==69.5.1  # temp fix\r\n\r\n# a comment line\r\ntorch\r\nhuggingface_hub==0.26.2\r\n"
            "torch==2.1.2+cu121\r\n--extra-index-url https://example.invalid\r\n"
            "audioop-lts;python_version>=\"3.13\"\r\nPillow == 9.5.0\r\nname[extra]==1.0\r\nnumpy==1.0\nnumpy==1.26.2")
    pins, names = parse_pins(text)
    assert pins == {"setuptools": "69.5.1", "huggingface-hub": "0.26.2", "torch": "2.1.2+cu121",
                    "pillow": "9.5.0", "numpy": "1.26.2"}
    assert names["huggingface-hub"] == "huggingface_hub" and names["pillow"] == "Pillow"


def test_the_stored_host_files_hold_the_pins_the_policy_is_about():
    a1111, forge = pins_of("a1111-1.10.1-requirements_versions.txt"), pins_of("forge-main-requirements_versions.txt")
    assert (HOSTS / "a1111-1.10.1-requirements_versions.txt").read_bytes().count(b"\r\n") > 30  # as upstream
    assert {k: a1111[k] for k in ("transformers", "accelerate", "safetensors", "numpy", "pillow", "gradio")} == \
        {"transformers": "4.30.2", "accelerate": "0.21.0", "safetensors": "0.4.2", "numpy": "1.26.2",
         "pillow": "9.5.0", "gradio": "3.41.2"}
    assert "diffusers" not in a1111 and "peft" not in a1111 and "torch" not in a1111
    assert {k: forge[k] for k in ("diffusers", "peft", "transformers", "accelerate", "huggingface-hub", "gradio")} == \
        {"diffusers": "0.31.0", "peft": "0.13.2", "transformers": "4.46.1", "accelerate": "0.31.0",
         "huggingface-hub": "0.26.2", "gradio": "4.40.0"}


def make_root(path: Path, reqs: str | None = "requirements_versions.txt", forge=False) -> Path:
    (path / "modules").mkdir(parents=True)
    (path / "launch.py").write_text("")
    if reqs:
        (path / reqs).write_text("transformers==4.30.2\r\n")
    if forge:
        (path / "modules_forge").mkdir()
        (path / "modules_forge" / "bnb_installer.py").write_text("")
    return path


def test_the_webui_folder_and_its_requirements_file_are_found_as_the_webui_finds_them(tmp_path):
    root = make_root(tmp_path / "webui")
    ext = root / "extensions" / "lora-trainer"
    ext.mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert find_webui_root(ext, cwd=str(elsewhere), pythonpath=str(root)) == root.resolve()   # PYTHONPATH
    assert find_webui_root(None, cwd=str(root), pythonpath="") == root.resolve()             # working dir
    assert find_webui_root(ext, cwd=str(elsewhere), pythonpath="") == root.resolve()          # two levels up
    assert find_webui_root(None, cwd=str(elsewhere), pythonpath="") is None
    assert requirements_file(root, cwd=str(root), env={}) == root / "requirements_versions.txt"
    (elsewhere / "mine.txt").write_text("x==1")
    assert requirements_file(root, cwd=str(elsewhere), env={"REQS_FILE": "mine.txt"}) == elsewhere / "mine.txt"
    assert requirements_file(root, cwd=str(elsewhere), env={"REQS_FILE": "gone.txt"}) is None
    classic = make_root(tmp_path / "classic", reqs="requirements.txt")
    assert requirements_file(classic, cwd=str(classic), env={}) == classic / "requirements.txt"


def test_host_kind_and_who_manages_bitsandbytes(tmp_path):
    a1111 = detect_host(cwd=str(make_root(tmp_path / "a")), env={"PYTHONPATH": ""})
    assert (a1111.kind, a1111.bnb_managed, a1111.pins) == ("a1111", False, {"transformers": "4.30.2"})
    forge = detect_host(cwd=str(make_root(tmp_path / "f", forge=True)), env={"PYTHONPATH": ""})
    assert (forge.kind, forge.bnb_managed) == ("forge", True)
    neo = make_root(tmp_path / "n")
    (neo / "modules" / "launch_utils.py").write_text("bnb_package = os.environ.get('BNB_PACKAGE', 'bitsandbytes==0.48.1')")
    assert detect_host(cwd=str(neo), env={"PYTHONPATH": ""}).bnb_managed
    assert detect_host(cwd=str(tmp_path), env={"PYTHONPATH": ""}).kind == "none"


def test_cuda_is_read_from_torchs_version_without_importing_it():
    assert torch_cuda("2.1.2+cu121") == "12.1" and torch_cuda("2.8.0+cu128") == "12.8"
    assert torch_cuda("2.13.0+cpu") is None and torch_cuda("2.3.1+rocm6.0") is None and torch_cuda(None) is None


# -- ranges by capability ----------------------------------------------------------------------------------
def test_a1111_gets_the_ranges_that_import_with_transformers_4_30():
    d = decide(A1111, pins_of("a1111-1.10.1-requirements_versions.txt"), python=PY310, cuda="12.1")
    assert d.status == "install" and not d.ready
    assert d.required == {"diffusers": ">=0.28,<0.32", "peft": ">=0.9,<0.14"}
    assert d.optional == {"bitsandbytes": ">=0.43,<0.46", "tomli": ">=1.1"}
    without_cuda = decide(A1111, {}, python=(3, 11, 9), cuda=None)
    assert without_cuda.optional == {}


def test_forge_as_shipped_needs_nothing_and_its_pins_are_never_replaced():
    forge_pins = pins_of("forge-main-requirements_versions.txt")
    d = decide(dict(FORGE, tomli="2.0.1"), forge_pins, python=PY310, cuda="12.1", bnb_managed=True)
    assert d.status == "ok" and d.ready and not d.specs()
    missing = decide(dict(FORGE, diffusers=None, tomli="2.0.1"), forge_pins, python=PY310, cuda="12.1",
                     bnb_managed=True)
    assert missing.status == "refused" and "diffusers" not in missing.specs()
    assert "pins diffusers==0.31.0" in missing.problems[0]
    assert "without --skip-install" in missing.advice[0]


@pytest.mark.parametrize("versions, pins, required, bnb", [
    (REFORGE, {"diffusers": "0.32.2"}, {"peft": ">=0.9,<0.15"}, ">=0.43,<0.51"),          # old accelerate
    (CLASSIC, {"diffusers": "0.31.0"}, {"peft": ">=0.9,<0.14"}, ">=0.43,<0.51"),          # transformers 4.30
    (NEO, {"diffusers": "0.37.1"}, {"peft": ">=0.9,<0.22"}, ">=0.43,<0.51"),
    (dict(FORGE, diffusers=None, peft=None), {}, {"diffusers": ">=0.28,<0.38", "peft": ">=0.9,<0.15"},
     ">=0.43,<0.50"),                                                                      # torch 2.3
])
def test_the_forks_get_what_was_probed_there(versions, pins, required, bnb):
    d = decide(dict(versions, bitsandbytes=None), pins, python=(3, 11, 9), cuda="12.8")
    assert d.required == required
    assert d.optional.get("bitsandbytes") == bnb


def test_bitsandbytes_follows_torch():
    assert [bitsandbytes_range(t) for t in ("1.13.1", "2.1.2+cu121", "2.2.2", "2.3.1", "2.4.0", "2.9.0")] == \
        [None, ">=0.43,<0.46", ">=0.43,<0.48", ">=0.43,<0.50", ">=0.43,<0.51", ">=0.43,<0.51"]
    someone_elses = decide(dict(A1111, bitsandbytes="0.50.2", tomli="2"), {}, python=PY310, cuda="12.1")
    assert "bitsandbytes" not in someone_elses.specs()                      # left alone, only reported
    assert any("bitsandbytes 0.50.2 needs torch ≥ 2.4" in p for p in someone_elses.problems)


def test_versions_of_ours_that_break_at_import_are_replaced_but_a_too_old_webui_is_refused():
    broken = decide(dict(A1111, diffusers="0.37.1", peft="0.21.2"), {}, python=PY310)
    assert broken.required == {"diffusers": ">=0.28,<0.32", "peft": ">=0.9,<0.14"}
    old = decide(dict(A1111, transformers="4.25.1", accelerate="0.18.0", gradio="3.32.0"), {}, python=PY310)
    assert old.status == "refused" and not old.specs()
    assert "update the WebUI" in old.advice[0] and "gradio ≥ 3.41" in old.advice[0]
    assert decide(A1111, {}, python=(3, 9, 18)).status == "refused"
    assert decide(dict(A1111, torch=None), {}, python=PY310).status == "refused"


@pytest.mark.parametrize("versions", [A1111, FORGE, REFORGE, CLASSIC, NEO,
                                      dict(A1111, diffusers="0.37.1", peft="0.21.2", transformers="4.36.0")])
def test_no_decision_ever_names_a_package_the_host_owns(versions):
    specs = decide(versions, {}, python=PY310, cuda="12.1").specs()
    assert not {canonical(n) for n in specs} & {canonical(n) for n in NEVER_REQUESTED}


# -- the pip gate ------------------------------------------------------------------------------------------
def test_constraints_freeze_everything_installed_and_the_pins_that_are_not():
    installed = {"torch": ("torch", "2.1.2+cu121"), "diffusers": ("diffusers", "0.37.1"),
                 "weird": ("weird", "1.0-local build"), "huggingface-hub": ("huggingface_hub", "0.36.2")}
    text = gate.constraints_text(installed, {"psutil": "5.9.5", "torch": "2.0.0"}, {"diffusers"},
                                 {"psutil": "psutil"}, extra={"zipp": "3.20.0"})
    lines = [line for line in text.splitlines() if not line.startswith("#")]
    assert lines == ["huggingface_hub==0.36.2", "torch==2.1.2+cu121", "psutil==5.9.5", "zipp==3.20.0"]
    assert "# weird 1.0-local build: not a PEP 440 version" in text
    assert is_pep440("0.0.23.post1") and is_pep440("2.1.2+cu121") and not is_pep440("1.0-local build")


def test_pip_is_never_asked_for_host_packages_or_to_upgrade():
    with pytest.raises(ValueError):
        gate.requested({"transformers": ">=4.37"})
    with pytest.raises(gate.PipArgsError):
        gate.extra_pip_args({"LORA_TRAINER_PIP_ARGS": "--no-index -U"})
    with pytest.raises(gate.PipArgsError):
        gate.extra_pip_args({"LORA_TRAINER_PIP_ARGS": "--upgrade-strategy=eager"})
    assert gate.extra_pip_args({"LORA_TRAINER_PIP_ARGS": '--no-index --find-links "/a b"'}) == \
        ["--no-index", "--find-links", "/a b"]
    args = gate.install_args({"diffusers": "==0.31.0"}, Path("c.txt"), ["--no-index"])
    assert not set(args) & set(gate.FORBIDDEN_ARGS) and args[-1] == "diffusers==0.31.0"


def test_pips_report_and_its_would_install_line_give_the_same_plan():
    report = {"version": "1", "install": [
        {"metadata": {"name": "diffusers", "version": "0.31.0"}, "download_info": {"url": "https://x/diffusers-0.31.0-py3-none-any.whl"}},
        {"metadata": {"name": "importlib_metadata", "version": "9.0.1"}, "download_info": {"url": "file:///w/i.tar.gz"}}]}
    plan, sources = gate.parse_report(report)
    assert plan == {"diffusers": ("diffusers", "0.31.0"), "importlib-metadata": ("importlib_metadata", "9.0.1")}
    assert gate.parse_would_install("Collecting x\nWould install diffusers-0.31.0 importlib_metadata-9.0.1\n") == plan
    assert gate.parse_would_install("Would install nvidia-cublas-13.1.1.3")["nvidia-cublas"] == ("nvidia-cublas", "13.1.1.3")
    assert gate.check_plan(plan, {}, {}, {"diffusers"}, sources) == ["pip would build importlib_metadata 9.0.1 from source"]


def test_the_plan_may_only_add_packages_that_are_neither_pinned_nor_the_hosts():
    installed = {"transformers": ("transformers", "4.30.2")}
    plan = {"diffusers": ("diffusers", "0.31.0"), "zipp": ("zipp", "3.20.0"),
            "transformers": ("transformers", "5.20.2"), "psutil": ("psutil", "5.9.5"),
            "torch": ("torch", "2.14.1"), "nvidia-cublas": ("nvidia-cublas", "13.1.1.3")}
    problems = gate.check_plan(plan, installed, {"psutil": "5.9.5"}, {"diffusers"})
    assert problems == ["pip would install nvidia-cublas 13.1.1.3, which belongs to the WebUI's own stack",
                        "pip would install psutil 5.9.5, which this WebUI pins (5.9.5) and installs itself",
                        "pip would install torch 2.14.1, which belongs to the WebUI's own stack",
                        "pip would change transformers 4.30.2 to 5.20.2"]


CONFLICT = """ERROR: Cannot install diffusers<0.32 and >=0.28 because these package versions have conflicting dependencies.

The conflict is caused by:
    The user requested (constraint) huggingface-hub==0.16.4
    diffusers 0.31.0 depends on huggingface-hub>=0.23.2

To fix this you could try to:
1. loosen the range of package versions you've specified
ERROR: ResolutionImpossible: for help visit https://pip.pypa.io/en/latest/topics/dependency-resolution/
"""


def test_pip_failures_are_told_apart():
    error, conflict, blockers = gate.classify_failure(CONFLICT)
    assert (error, conflict, blockers) == ("", "diffusers 0.31.0 depends on huggingface-hub>=0.23.2", ["huggingface-hub"])
    offline = ("WARNING: Retrying ... NewConnectionError\nERROR: Could not find a version that satisfies the "
               "requirement diffusers<0.32,>=0.28 (from versions: none)\nERROR: No matching distribution found for x")
    assert gate.classify_failure(offline)[0].startswith("the package index could not be reached")
    assert gate.classify_failure("/usr/bin/python: No module named pip")[0] == "this Python has no pip"
    assert "22.2" in gate.classify_failure("Usage: ...\nno such option: --dry-run")[0]


# -- the status the tab reads ------------------------------------------------------------------------------
def make(kind, **kw):
    from lora_trainer.install.host import Host

    base = dict(ready=False, problems=["diffusers is missing"], command='"py" -m pip install "diffusers==0.31.0"',
                versions={"diffusers": None}, host=Host())
    base.update(kw)
    return status.make_status(kind, **base)


def test_each_status_has_a_summary_in_plain_words():
    assert make("ok", ready=True, problems=[], command="", versions={"diffusers": "0.31.0", "peft": "0.13.2"})[
        "summary"] == "Ready: diffusers 0.31.0 and peft 0.13.2 run next to this WebUI's packages."
    assert make("installed", ready=True, problems=[], planned={"peft": "0.13.2"})["summary"].startswith(
        "Ready: installed peft 0.13.2 at the last WebUI start")
    refused = make("refused", advice="update the WebUI", command="")["summary"]
    assert "would change packages the WebUI itself uses" in refused and refused.endswith("To fix: update the WebUI.")
    assert all("pip install" not in make(kind)["summary"] for kind in status.STATUSES)  # the command stands apart
    assert "--skip-install" in make("skipped")["summary"]
    assert make("failed")["summary"].endswith("Restart the WebUI to try again or run the install command by hand.")
    assert "Restart the WebUI" in make("missing")["summary"]
    data = make("ok", ready=True, problems=[])
    assert set(data) >= {"status", "problems", "command", "versions", "host", "python", "checked_at", "summary"}
    json.dumps(data)


def test_the_summary_reads_in_the_tabs_language_from_the_file(tmp_path):
    from lora_trainer.install.messages import names
    from lora_trainer.text.messages import sentence

    problem = sentence("install.absent_many", names=names(["diffusers", "peft"]))
    path = tmp_path / status.STATUS_FILE
    status.write_status(path, make("missing", problems=[problem]))
    data = status.load_status(path)
    assert data["summary"] == status.summarize(data) == (
        "Training is not available yet: diffusers and peft are not installed in this Python environment. Restart "
        "the WebUI (without --skip-install) so that it installs them or run the install command by hand.")
    chinese = status.summarize(data, "zh_CN")
    assert chinese.startswith("暂时无法训练：") and "diffusers" in chinese and "手动运行安装命令" in chinese
    assert status.said(data, "problems", "zh_CN") == [problem.in_language("zh_CN")] != data["problems"]
    refused = make("refused", advice=sentence("install.python.advice"), command="")
    assert status.summarize(refused, "zh_CN").startswith("无法训练：") and \
        status.said(refused, "advice", "zh_CN") == sentence("install.python.advice").in_language("zh_CN")
    assert status.said({"problems": ["old file"]}, "problems", "zh_CN") == ["old file"]   # a file from before


def test_the_status_file_is_rewritten_only_when_something_changed(tmp_path):
    path = tmp_path / status.STATUS_FILE
    assert status.write_status(path, make("ok", ready=True, problems=[]))
    first = path.stat().st_mtime_ns
    time.sleep(0.01)
    assert not status.write_status(path, make("ok", ready=True, problems=[]))
    assert path.stat().st_mtime_ns == first
    assert status.write_status(path, make("missing"))
    assert status.write_status(path, make("missing"), force=True)          # a new attempt's time is kept


def test_the_tab_rechecks_when_the_file_is_missing_stale_or_from_another_python(tmp_path):
    fresh = status.read_install_status(tmp_path)                 # no file: the same rules, in-process
    assert fresh["source"] == "recheck" and fresh["status"] in status.STATUSES and fresh["summary"]
    fresh["source"] = "install.py"
    path = tmp_path / status.STATUS_FILE
    path.write_text(json.dumps(fresh))
    assert status.read_install_status(tmp_path)["source"] == "install.py"
    path.write_text(json.dumps(dict(fresh, executable="/elsewhere/python")))
    assert status.read_install_status(tmp_path)["source"] == "recheck"
    path.write_text(json.dumps(dict(fresh, versions=dict(fresh["versions"], peft="0.0.1"))))
    assert status.read_install_status(tmp_path)["source"] == "recheck"
    path.write_text("{ half a file")
    assert status.read_install_status(tmp_path)["source"] == "recheck"


def test_a_failed_attempt_is_retried_after_an_hour_a_refusal_only_when_something_changes(tmp_path, capsys):
    from lora_trainer.install.policy import Decision
    from lora_trainer.install.run import Installer

    path = tmp_path / status.STATUS_FILE
    installer = Installer(tmp_path, dry_run=False, status_file=path)
    needed = Decision(required={"diffusers": ">=0.28,<0.32"}, problems=["diffusers is missing"])

    def age_it():
        data = json.loads(path.read_text())
        path.write_text(json.dumps(dict(data, checked_at="2000-01-01T00:00:00+00:00")))

    installer.record("failed", ready=False, problems=["offline"], message="[LoRA Trainer] failed line")
    assert installer.repeat_previous(needed) and capsys.readouterr().out == "[LoRA Trainer] failed line\n"
    age_it()
    assert not installer.repeat_previous(needed)                              # an hour later: pip again
    assert installer.repeat_previous(Decision(optional={"tomli": ">=1.1"}))   # extras only: not again
    assert capsys.readouterr().out == ""
    installer.record("refused", ready=False, problems=["conflict"], message="[LoRA Trainer] refused line")
    age_it()
    assert installer.repeat_previous(needed) and capsys.readouterr().out == "[LoRA Trainer] refused line\n"
    installer.versions = dict(installer.versions, peft="0.0.1")               # something changed
    assert not installer.repeat_previous(needed)
