"""Command line: ``train`` (also under ``accelerate launch``), ``demo``, ``inspect``, ``dataset`` and ``bench``."""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from pathlib import Path

from ..config.files import add_config_flags, config_from_dict, load_config, overrides_from_args
from ..config.presets import apply_preset
from ..config.schema import TrainConfig
from ..config.validation import validate
from ..config.user_presets import presets_dir, resolve_preset
from ..errors import TrainerError
from ..text.messages import msg, sentence
from .dataset_cmd import add_dataset_parser
from .messages import error_text, said, text_in_language
from .progress import ProgressPrinter


def train_config(args: argparse.Namespace) -> tuple[TrainConfig, list[str]]:
    """The settings of ``train``: the config file, then each ``--preset`` (a built-in one or one saved in the
    Train tab), then the other flags; with the warnings about what was not used."""
    if args.config:
        cfg, warnings = load_config(args.config)
    else:
        cfg, warnings = TrainConfig(), []
    for name in args.preset or []:
        cfg = apply_preset(cfg, resolve_preset(name, presets_dir()))
    overrides = overrides_from_args(args)
    if overrides:
        cfg, more = config_from_dict(overrides, base=cfg, source=sentence("files.command_line"))
        warnings += more
    return cfg, warnings


def cmd_train(args: argparse.Namespace) -> int:
    main_process = os.environ.get("RANK", "0") == "0"   # under accelerate launch only the main process reports
    single = not _several_processes()
    writer = None
    if args.events and main_process:
        from ..train.event_records import EventWriter
        writer = EventWriter(args.events)
    try:
        return _train_command(args, main_process, single, writer)
    finally:
        if writer is not None:
            writer.close()


def _train_command(args: argparse.Namespace, main_process: bool, single: bool, writer) -> int:
    from ..train.events import Failed, StopRequest

    try:
        cfg, warnings = train_config(args)
        validate(cfg)   # its warnings come with the run's start; its errors before any library is imported
    except TrainerError as err:
        if writer is not None:
            writer(Failed(err, []))
        raise
    for warning in warnings if main_process else []:
        print(said("cli.warning", text=text_in_language(warning)))
    if main_process:   # the model's files read from disk while the libraries below are imported
        from ..models.prefetch import read_ahead
        read_ahead(cfg.pretrained_model_name_or_path)
    if not args.verbose:   # imports diffusers and transformers (seconds): after the settings' errors
        from .quiet import quiet_libraries
        quiet_libraries()
    from ..train.loop import train   # torch
    stop = StopRequest()

    def on_interrupt(signum, frame):
        # several processes agree on the batch to stop at (train/distributed.py); the launcher passes a
        # terminal's Ctrl+C on to each of them once more, so only a single process takes a second one as "now"
        if stop.requested and single:
            raise KeyboardInterrupt
        if not stop.requested and main_process:
            print(said("cli.stopping"), file=sys.stderr)
        stop.request()
    previous = signal.signal(signal.SIGINT, on_interrupt)
    printer, log = ProgressPrinter(), print
    listener = printer
    if writer is not None:   # --events: every event also as a JSON line (the WebUI's runner reads them)
        def listener(event):
            printer(event)
            writer(event)

        def log(*parts):
            print(*parts)
            writer.log(*parts)
    finished = False
    try:
        result = train(cfg, listener=listener, stop=stop, log=log)
        finished = True
    finally:
        signal.signal(signal.SIGINT, previous)
        if not single:
            from ..train.distributed import end_process_group
            end_process_group(orderly=finished)
    if not main_process:
        return 0
    if writer is not None:
        writer.result(result)
    print(said("cli.stopped" if result.stopped else "cli.done", steps=result.steps))
    for path in result.files:
        print(f"  {path}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    run_demo(args.output_dir, epochs=args.epochs)
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    from .inspect_lora import describe

    print(text_in_language(describe(args.file, show_all_metadata=args.all)))
    return 0


def run_bench(bench_args: list[str]) -> int:
    """The benchmark lives beside the package (``benchmarks/``, not shipped): run it in its own process
    with every option passed on as given."""
    root = Path(__file__).resolve().parents[2]
    if not (root / "benchmarks" / "bench.py").is_file():
        raise TrainerError(msg("cli.no_bench"), msg("cli.no_bench.advice"))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))}
    return subprocess.call([sys.executable, "-m", "benchmarks.bench", *bench_args], cwd=root, env=env)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m lora_trainer",
                                     description="Train kohya-format LoRA files for SD1.x, SD2.x and SDXL.")
    parser.add_argument("--verbose", action="store_true", help="also show the libraries' own log messages")
    sub = parser.add_subparsers(dest="command", required=True)
    p_train = sub.add_parser("train", help="train a LoRA from a config file and/or flags")
    p_train.add_argument("--config", help="TOML config (this trainer's or kohya sd-scripts')")
    p_train.add_argument("--preset", action="append", metavar="NAME",
                         help="start from a preset, over the config file and under the other flags: character, "
                              "style, concept, a graphics card tier (sd1-8gb … sdxl-24gb) or one saved in the "
                              "Train tab (in $LORA_TRAINER_PRESETS_DIR, else the standalone server's folder); "
                              "repeat for more")
    p_train.add_argument("--events", metavar="FILE",
                         help="also write the run's progress, losses, files and errors to FILE as JSON lines "
                              "(the main process's; the WebUI reads them from a run on several GPUs)")
    add_config_flags(p_train)
    p_train.set_defaults(func=cmd_train)
    p_demo = sub.add_parser("demo", help="train a tiny demo LoRA on CPU in a few minutes")
    p_demo.add_argument("--output-dir", default="demo_output")
    p_demo.add_argument("--epochs", type=int, default=10)
    p_demo.set_defaults(func=cmd_demo)
    p_inspect = sub.add_parser("inspect", help="show a LoRA file's modules, rank, alpha and metadata")
    p_inspect.add_argument("file")
    p_inspect.add_argument("--all", action="store_true", help="print every metadata field in full")
    p_inspect.set_defaults(func=cmd_inspect)
    add_dataset_parser(sub)
    sub.add_parser("bench", help="time the training step on full-size SD1.5/SDXL (CUDA); "
                                           "python -m lora_trainer bench --help lists its options",
                             add_help=False)
    return parser


def sleeping_openmp_waits() -> None:
    """Idle OpenMP threads sleep at once instead of spinning for a while (libgomp's default) — set before
    torch starts OpenMP, unless the user chose a wait policy. A spinning thread takes the core from the
    thread the others wait for whenever another process shares the CPU; a sleeping one costs a wake-up,
    small beside the operations that more than one thread is chosen for (``train/cpu_threads.py``)."""
    chosen = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")
    if "torch" not in sys.modules and not any(name in os.environ for name in chosen):
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"


def main(argv: list[str] | None = None) -> int:
    sleeping_openmp_waits()
    argv = list(sys.argv[1:] if argv is None else argv)
    first = next((i for i, a in enumerate(argv) if a != "--verbose"), None)
    if first is not None and argv[first] == "bench":   # its options are the benchmark's own
        try:
            return run_bench(argv[first + 1:])
        except TrainerError as err:
            print(error_text(err), file=sys.stderr)
            return 2
    args = build_parser().parse_args(argv)
    if not args.verbose and args.func is not cmd_train:   # train quiets them once its settings are checked
        from .quiet import quiet_libraries
        quiet_libraries()
    try:
        code = args.func(args)
    except TrainerError as err:
        print(error_text(err), file=sys.stderr)
        code = 2
    except KeyboardInterrupt:
        print(said("cli.interrupted"), file=sys.stderr)
        code = 130
    if args.func is cmd_train and _several_processes():
        _exit_without_finalizing(code)
    return code


def _several_processes() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1   # set by accelerate launch (torchrun)


def _exit_without_finalizing(code: int) -> None:
    """A process of several leaves without the interpreter's finalization, in which the distributed library's
    threads can still abort it ("terminate called without an active exception", SIGABRT) after its run ended
    and its files were written: the launcher then reports the whole run as failed."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
