"""Run by the WebUI (A1111 / Forge) at every start, before the UI loads.

It checks that the libraries the trainer needs are present in versions that run next to
this WebUI's own pinned packages. When they are, it prints nothing and calls no pip. When
not, it records why in ``install_status.json`` (the extension reads it to explain itself),
prints one line with what to do, and changes nothing: the host's packages stay exactly as
they are.
"""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
STATUS_FILE = os.path.join(HERE, "install_status.json")
sys.path.insert(0, HERE)  # our package, which needs nothing beyond the standard library here


def write_status(data: dict) -> None:
    from lora_trainer.io.atomic import atomic_write

    with atomic_write(STATUS_FILE) as tmp:
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=1)


def main() -> int:
    from lora_trainer.install_check import check_environment, installed_versions

    versions = installed_versions()
    result = check_environment(versions)
    status = "ok" if result.ok else ("blocked" if result.blocked else "missing")
    write_status({"status": status, "problems": result.problems, "command": result.pip_command(),
                  "versions": versions, "python": sys.version.split()[0], "executable": sys.executable})
    if result.ok:
        return 0
    advice = (f"install them into the WebUI's Python with: {sys.executable} -m pip install "
              + " ".join(f'"{n}{s}"' for n, s in result.to_install.items())) if result.to_install else \
        ("these packages belong to the WebUI: run the WebUI from its own Python environment, and update "
         "the WebUI if they are too old")
    print(f"[LoRA Trainer] training is not available yet: {'; '.join(result.problems)}. To fix: {advice}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
