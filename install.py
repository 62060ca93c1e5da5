"""Run by the WebUI (A1111 / Forge) at every start, before the UI loads.

When the libraries the trainer needs are installed in versions that run next to this WebUI's
own packages, it prints nothing and starts no process. Otherwise it chooses versions by what
runs with the WebUI's transformers/accelerate/torch, asks pip for a dry run under constraints
that freeze every installed package, installs only if nothing of the WebUI's would change, and
prints one line saying what happened and the command to run by hand. The outcome goes to
``install_status.json``, which the trainer's tab shows. It never fails the WebUI's start.

    python install.py [--dry-run] [--status-file PATH]
    LORA_TRAINER_PIP_ARGS="--no-index --find-links DIR"   extra pip options
    INDEX_URL (as for the WebUI's own installs), --skip-install (nothing is installed, the command is shown)
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def main() -> int:
    try:
        if HERE not in sys.path:
            sys.path.insert(0, HERE)  # our package: standard library only at this point
        from lora_trainer.install.run import main as run

        return run(sys.argv[1:], extension_root=HERE)
    except KeyboardInterrupt:
        return 0
    except BaseException as exc:  # noqa: BLE001 - a broken check must not stop the WebUI or print a traceback
        if isinstance(exc, SystemExit) and exc.code in (0, None):
            return 0
        print(f"[LoRA Trainer] the library check could not run ({type(exc).__name__}: {exc}); the WebUI starts "
              f"without it. To see why: \"{sys.executable}\" \"{os.path.join(HERE, 'install.py')}\" --dry-run")
        return 0


if __name__ == "__main__":
    main()
    sys.exit(0)
