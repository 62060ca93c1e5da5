"""Command line: ``train`` (also under ``accelerate launch``), ``demo``, ``inspect`` and ``bench``."""
from __future__ import annotations

import argparse
import os
import signal
import sys

from .bench_args import add_arguments as add_bench_arguments
from .config_io import add_config_flags, config_from_dict, load_config, overrides_from_args
from .errors import TrainerError


class ProgressPrinter:
    """Turns training events into a tqdm bar and a few plain lines."""

    def __init__(self) -> None:
        self.bar = None

    def __call__(self, event) -> None:
        from tqdm.auto import tqdm

        from .train import events as ev
        if isinstance(event, ev.Started):
            print(event.plan_text)
            for warning in event.warnings:
                print(f"warning: {warning}")
            self.bar = tqdm(total=event.total_steps, initial=event.start_step, unit="step", dynamic_ncols=True)
        elif isinstance(event, ev.StepEnd) and self.bar is not None:
            self.bar.update(event.step - self.bar.n)
            if event.loss is not None:
                self.bar.set_postfix(epoch=event.epoch, loss=f"{event.loss:.4f}", refresh=False)
        elif isinstance(event, ev.EpochEnd) and self.bar is not None:
            self.bar.write(f"epoch {event.epoch}: mean loss {event.mean_loss:.4f} (step {event.step})")
        elif isinstance(event, ev.Validated) and self.bar is not None:
            what = "held-out" if event.source == "holdout" else "training"
            self.bar.write(f"epoch {event.epoch}: validation loss {event.loss:.4f} ({event.images} {what} images)")
        elif isinstance(event, ev.FileSaved) and self.bar is not None:
            self.bar.write(f"saved {event.path}")
        elif isinstance(event, (ev.Finished, ev.Failed)) and self.bar is not None:
            self.bar.close()


def cmd_train(args: argparse.Namespace) -> int:
    from .train.events import StopRequest
    from .train.loop import train

    overrides = overrides_from_args(args)
    if args.config:
        cfg, warnings = load_config(args.config, overrides)
    else:
        cfg, warnings = config_from_dict(overrides, source="command line")
    for warning in warnings:
        print(f"warning: {warning}")
    stop = StopRequest()
    previous = None
    if int(os.environ.get("WORLD_SIZE", "1")) == 1:  # several processes must stop together: not via Ctrl+C
        def on_interrupt(signum, frame):
            if stop.requested:
                raise KeyboardInterrupt
            stop.request()
            print("\nStopping: the -interrupted file and state are saved next (Ctrl+C again to quit now).",
                  file=sys.stderr)
        previous = signal.signal(signal.SIGINT, on_interrupt)
    try:
        result = train(cfg, listener=ProgressPrinter(), stop=stop)
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    if os.environ.get("RANK", "0") != "0":  # under accelerate launch only the main process reports
        return 0
    print(("Stopped. " if result.stopped else "Done. ") + f"{result.steps} steps; files:")
    for path in result.files:
        print(f"  {path}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    run_demo(args.output_dir, epochs=args.epochs)
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    from .inspect_lora import describe

    print(describe(args.file, show_all_metadata=args.all))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from .bench import main as bench_main

    return bench_main(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m lora_trainer",
                                     description="Train kohya-format LoRA files for SD1.x, SD2.x and SDXL.")
    parser.add_argument("--verbose", action="store_true", help="also show the libraries' own log messages")
    sub = parser.add_subparsers(dest="command", required=True)
    p_train = sub.add_parser("train", help="train a LoRA from a config file and/or flags")
    p_train.add_argument("--config", help="TOML config (this trainer's or kohya sd-scripts')")
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
    p_bench = sub.add_parser("bench", help="time the training step on full-size SD1.5/SDXL (CUDA)")
    add_bench_arguments(p_bench)
    p_bench.set_defaults(func=cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not args.verbose:
        from .quiet import quiet_libraries
        quiet_libraries()
    try:
        return args.func(args)
    except TrainerError as err:
        print(f"\nerror: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
