"""Simulated WebUI Python environments for running the real install.py (tests/test_install_sim.py).

    python tests/install_sim.py wheelhouse [--python PY]   fill the wheelhouse once (needs the network)

A simulation is a virtual environment of the host's Python with the host's pins: the packages the
trainer's stack meets are installed from real wheels, every other pin and the whole torch stack are
dist-info folders holding only a name and a version (pip treats them as installed and can never
uninstall them). pip then runs offline from the wheelhouse. The wheelhouse is filled by resolving
each host's stack against the package index with the fakes in place (so no torch is downloaded),
then by asking the real install.py what it would install there.
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from lora_trainer.install.host import parse_pins  # noqa: E402
from lora_trainer.install.versions import canonical  # noqa: E402

DATA = ROOT / "tests" / "data" / "hosts"
SIM_DIR = ROOT / ".install-sim"
WHEELHOUSE = SIM_DIR / "wheelhouse"
VENVS = SIM_DIR / "venvs"
STAMP = WHEELHOUSE / "stamp.json"
SIM_VERSION = 1   # bump when the way simulations are built changes

# Pins installed from real wheels: what the trainer's own stack meets. Every other pin is faked.
REAL = {"transformers", "accelerate", "safetensors", "huggingface-hub", "numpy", "pillow", "psutil",
        "setuptools", "tqdm", "diffusers", "peft"}
# Newer than the ranges install.py chooses on A1111, and offered by the wheelhouse: pip must not take them.
DECOYS = ("diffusers==0.32.2", "peft==0.14.0")


@dataclass(frozen=True)
class Profile:
    name: str
    requirements: str            # the host's requirements file, in DATA
    launcher: str                # what its launcher installs besides, in DATA
    extra: tuple = ()            # further real pins (an older environment)
    pip: str = ""                # the pip of the host's Python (3.10.6 ships 22.2.1); "" keeps the venv's
    forge: bool = False


PROFILES = {
    "a1111": Profile("a1111", "a1111-1.10.1-requirements_versions.txt", "a1111-1.10.1-launcher.txt", pip="22.2.1"),
    "forge": Profile("forge", "forge-main-requirements_versions.txt", "forge-main-launcher.txt", forge=True),
    # An A1111 venv made before diffusers needed huggingface-hub >= 0.20: nothing fits without changing it.
    "a1111-old-hub": Profile("a1111-old-hub", "a1111-1.10.1-requirements_versions.txt",
                             "a1111-1.10.1-launcher.txt", extra=("huggingface-hub==0.16.4",), pip="22.2.1"),
}


# -- environment -----------------------------------------------------------------------------------------
def pip_env(offline: bool = True, **extra) -> dict:
    """pip without the machine's config; offline: the wheelhouse only, and any network use fails fast."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("PIP_") and k not in ("INDEX_URL", "PYTHONPATH", "REQS_FILE", "COMMANDLINE_ARGS")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    if "PIP_CERT" in os.environ:
        env["PIP_CERT"] = os.environ["PIP_CERT"]
    if offline:
        env.update(PIP_CONFIG_FILE=os.devnull, PIP_NO_INDEX="1", PIP_FIND_LINKS=str(WHEELHOUSE),
                   http_proxy="http://127.0.0.1:9", https_proxy="http://127.0.0.1:9",
                   HTTP_PROXY="http://127.0.0.1:9", HTTPS_PROXY="http://127.0.0.1:9", no_proxy="", NO_PROXY="")
    env.update(extra)
    return env


def venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def run(cmd, env=None, cwd=None, check=True, timeout=900) -> subprocess.CompletedProcess:
    done = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} failed ({done.returncode}):\n{done.stdout[-3000:]}\n"
                           f"{done.stderr[-3000:]}")
    return done


def host_pins(profile: Profile) -> tuple[dict[str, str], dict[str, str]]:
    """canonical → version and canonical → name, the requirements file first, then the launcher's."""
    pins, names = parse_pins((DATA / profile.requirements).read_text(encoding="utf-8"))
    more, more_names = parse_pins((DATA / profile.launcher).read_text(encoding="utf-8"))
    pins.update(more)
    names.update(more_names)
    return pins, names


def write_fake(site: Path, name: str, version: str) -> None:
    folder = site / f"{canonical(name).replace('-', '_')}-{version}.dist-info"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n", encoding="utf-8")
    (folder / "INSTALLER").write_text("install-sim\n", encoding="utf-8")


def site_packages(python: Path) -> Path:
    out = run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip()
    return Path(out)


def make_host_venv(python: str, venv: Path, profile: Profile, env: dict, find_links: list[str]) -> None:
    """The host's stack: fakes first (so pip sees torch & co. as installed), then the real pins."""
    run([python, "-m", "venv", venv], env=env)
    py = venv_python(venv)
    pins, names = host_pins(profile)
    site = site_packages(py)
    extra, _ = parse_pins("\n".join(profile.extra))
    for key, version in pins.items():
        if key not in REAL and key not in extra:
            write_fake(site, names[key], version)
    real = [f"{names[k]}=={v}" for k, v in pins.items() if k in REAL and k not in extra] + list(profile.extra)
    with tempfile.TemporaryDirectory() as tmp:
        constraints = Path(tmp) / "host.txt"
        constraints.write_text("\n".join(f"{names[k]}=={v}" for k, v in pins.items() if k not in extra) + "\n")
        run([py, "-m", "pip", "install", "--only-binary=:all:", *find_links, "-c", constraints, *real], env=env)
    if profile.pip:
        run([py, "-m", "pip", "install", *find_links, f"pip=={profile.pip}"], env=env)


# -- webui root and extension ----------------------------------------------------------------------------
PLACEHOLDER_LAUNCH = '"""Stands in for the WebUI\'s launch.py; this one offers no run_pip."""\n'

FAKE_LAUNCH = '''"""Stands in for the WebUI's launch module as A1111 1.10.1 has it: args, index_url, run_pip."""
import os
import subprocess
import sys
import types

args = types.SimpleNamespace(skip_install={skip_install})
index_url = os.environ.get("INDEX_URL", "")
python = sys.executable
LOG = {log!r}


def run_pip(command, desc=None, live=False):
    with open(LOG, "a", encoding="utf-8") as fh:
        fh.write(command + "\\n")
    if args.skip_install:
        return
    index_url_line = f" --index-url {{index_url}}" if index_url != "" else ""
    cmd = f'"{{python}}" -m pip {{command}} --prefer-binary{{index_url_line}}'
    print(f"Installing {{desc}}")
    result = subprocess.run(cmd, shell=True, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"Couldn't install {{desc}}.\\nCommand: {{cmd}}\\nError code: {{result.returncode}}\\n"
                           f"stdout: {{result.stdout}}\\nstderr: {{result.stderr}}")
    return result.stdout
'''

SPY = '''"""Any process started from here is recorded and refused."""
import os
import subprocess

_LOG = os.environ["INSTALL_SIM_SPY_LOG"]


class _Refused(subprocess.Popen):
    def __init__(self, args, *rest, **kwargs):
        with open(_LOG, "a", encoding="utf-8") as fh:
            fh.write(repr(args) + "\\n")
        raise RuntimeError(f"install-sim spy: a process was started: {args!r}")


subprocess.Popen = _Refused
'''


def make_webui(dest: Path, profile: Profile, launch: str | None = None) -> Path:
    """A WebUI folder with the host's requirements file, and our extension in extensions/; returns its root."""
    (dest / "modules").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(DATA / profile.requirements, dest / "requirements_versions.txt")
    (dest / "launch.py").write_text(launch or PLACEHOLDER_LAUNCH, encoding="utf-8")
    if profile.forge:
        (dest / "modules_forge").mkdir(exist_ok=True)
        (dest / "modules_forge" / "bnb_installer.py").write_text('"""placeholder"""\n', encoding="utf-8")
    ext = dest / "extensions" / "lora-trainer"
    ext.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "install.py", ext / "install.py")
    shutil.copytree(ROOT / "lora_trainer", ext / "lora_trainer", dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("__pycache__", "demo_data", "configs"))
    return dest


def extension(webui: Path) -> Path:
    return webui / "extensions" / "lora-trainer"


def fake_launch(skip_install: bool, log: Path) -> str:
    return FAKE_LAUNCH.format(skip_install=skip_install, log=str(log))


def run_install(venv: Path, webui: Path, *args, spy: Path | None = None, offline: bool = True,
                **env_extra) -> subprocess.CompletedProcess:
    """The real install.py, as the WebUI runs it: its Python, cwd = WebUI root, WebUI root on PYTHONPATH."""
    env = pip_env(offline)
    paths = [str(webui)]
    if spy is not None:
        spy_dir = spy.parent / "spy-site"
        spy_dir.mkdir(exist_ok=True)
        (spy_dir / "sitecustomize.py").write_text(SPY, encoding="utf-8")
        paths.append(str(spy_dir))
        env["INSTALL_SIM_SPY_LOG"] = str(spy)
    env["PYTHONPATH"] = os.pathsep.join(paths)
    if offline:
        env["LORA_TRAINER_PIP_ARGS"] = f'--no-index --find-links "{WHEELHOUSE}"'
    env.update(env_extra)
    return run([venv_python(venv), extension(webui) / "install.py", *args], env=env, cwd=webui, check=False)


def freeze(venv: Path) -> dict[str, str]:
    """canonical name → version, from ``pip freeze --all``."""
    out = run([venv_python(venv), "-m", "pip", "freeze", "--all"], env=pip_env()).stdout
    versions = {}
    for line in out.splitlines():
        if "==" in line:
            name, version = line.split("==", 1)
            versions[canonical(name)] = version.strip()
    return versions


# -- the cache of built simulations ----------------------------------------------------------------------
def wheelhouse_info() -> dict | None:
    try:
        return json.loads(STAMP.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _stamp(profile: Profile, info: dict) -> str:
    parts = [str(SIM_VERSION), json.dumps(asdict(profile)), json.dumps(info, sort_keys=True),
             (DATA / profile.requirements).read_text(encoding="utf-8"),
             (DATA / profile.launcher).read_text(encoding="utf-8")]
    return hashlib.sha256("\n".join(parts).encode("utf-8")).hexdigest()[:16]


@contextlib.contextmanager
def _locked(path: Path):
    """One builder at a time (two test runs may start together); no lock where fcntl is missing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        try:
            import fcntl
        except ImportError:
            yield
            return
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def sim(name: str) -> Path:
    """The cached simulation for a profile, built from the wheelhouse when missing or out of date."""
    info = wheelhouse_info()
    if info is None:
        raise FileNotFoundError("no wheelhouse")
    profile = PROFILES[name]
    venv = VENVS / name
    stamp = _stamp(profile, info)
    with _locked(VENVS / f".{name}.lock"):
        if (venv / ".sim-stamp").is_file() and (venv / ".sim-stamp").read_text() == stamp:
            return venv
        shutil.rmtree(venv, ignore_errors=True)
        make_host_venv(info["python"], venv, profile, pip_env(), ["--no-index", "--find-links", str(WHEELHOUSE)])
        (venv / ".sim-stamp").write_text(stamp)
    return venv


def _link_or_copy(src, dst):
    try:
        os.link(src, dst)     # pip only adds, renames and removes files: a hard link never changes the cache
    except OSError:
        shutil.copy2(src, dst)


def copy_sim(name: str, dest: Path) -> Path:
    """A private copy to install into (the cached one stays as built); hard links where possible."""
    shutil.copytree(sim(name), dest, symlinks=True, copy_function=_link_or_copy)
    return dest


# -- filling the wheelhouse (network) --------------------------------------------------------------------
def _download(py: Path, env: dict, specs: list[str]) -> None:
    if specs:
        run([py, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-d", WHEELHOUSE, *specs], env=env)


def fill_wheelhouse(python: str) -> None:
    WHEELHOUSE.mkdir(parents=True, exist_ok=True)
    online = pip_env(offline=False)
    version = run([python, "-c", "import platform; print(platform.python_version())"]).stdout.strip()
    for profile in PROFILES.values():
        print(f"wheelhouse: {profile.name}", flush=True)
        with tempfile.TemporaryDirectory(prefix="install-sim-") as tmp:
            tmp = Path(tmp)
            # 1. the host's stack as pip resolves it with the fakes in place: download exactly that
            probe = tmp / "probe"
            run([python, "-m", "venv", probe], env=online)
            py = venv_python(probe)
            pins, names = host_pins(profile)
            extra, _ = parse_pins("\n".join(profile.extra))
            site = site_packages(py)
            for key, version_ in pins.items():
                if key not in REAL and key not in extra:
                    write_fake(site, names[key], version_)
            real = [f"{names[k]}=={v}" for k, v in pins.items() if k in REAL and k not in extra] + list(profile.extra)
            constraints = tmp / "host.txt"
            constraints.write_text("\n".join(f"{names[k]}=={v}" for k, v in pins.items() if k not in extra) + "\n")
            report = tmp / "report.json"
            run([py, "-m", "pip", "install", "--dry-run", "--only-binary=:all:", "--report", report,
                 "-c", constraints, *real], env=online)
            plan = [f"{i['metadata']['name']}=={i['metadata']['version']}"
                    for i in json.loads(report.read_text())["install"]]
            _download(py, online, plan + ([f"pip=={profile.pip}"] if profile.pip else []))
            # 2. that stack built offline, then the real install.py asked what it would add there
            venv = tmp / "venv"
            make_host_venv(python, venv, profile, pip_env(), ["--no-index", "--find-links", str(WHEELHOUSE)])
            webui = make_webui(tmp / "webui", profile)
            status = tmp / "status.json"
            done = run_install(venv, webui, "--dry-run", "--status-file", status, offline=False)
            print("  " + done.stdout.strip(), flush=True)
            if status.is_file():
                planned = json.loads(status.read_text())["planned"]
                _download(venv_python(venv), online, [f"{n}=={v}" for n, v in planned.items()])
    _download(Path(python), online, list(DECOYS))
    STAMP.write_text(json.dumps({"python": python, "python_version": version,
                                 "profiles": sorted(PROFILES)}, indent=1))
    print(f"wheelhouse ready: {WHEELHOUSE} ({len(list(WHEELHOUSE.glob('*.whl')))} wheels)")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    fill = sub.add_parser("wheelhouse", help="download the wheels the simulations need (network)")
    fill.add_argument("--python", default=sys.executable, help="the Python the simulations use (the hosts': 3.10)")
    args = parser.parse_args(argv)
    fill_wheelhouse(str(Path(args.python)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
