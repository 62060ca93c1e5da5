"""The Dataset workbench on 1,000 pictures: scan and checks (cold: every picture decoded once; warm: from the
cache), a batch caption edit over 1,000 captions and its undo. CPU only.

Usage: python -m benchmarks.dataset_bench WORK_DIR [--images 1000] [--json RESULT.jsonl]
The pictures (512–4096 px, JPEG and PNG, six aspect ratios) are made once in WORK_DIR and reused.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import time
from pathlib import Path

SIDES = (512, 768, 1024, 1536, 2048, 3072, 4096)
RATIOS = ((1, 1), (2, 3), (3, 2), (3, 4), (4, 3), (9, 16))


def make_pictures(folder: Path, count: int) -> None:
    from PIL import Image, ImageDraw

    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(0)
    for i in range(count):
        path = folder / f"{i:04d}.{'jpg' if i % 3 else 'png'}"
        if path.exists():
            continue
        side = rng.choice(SIDES)
        rw, rh = rng.choice(RATIOS)
        size = (side, max(64, side * rh // rw)) if rw >= rh else (max(64, side * rw // rh), side)
        img = Image.new("RGB", size, (rng.randrange(256), rng.randrange(256), rng.randrange(256)))
        draw = ImageDraw.Draw(img)
        for _ in range(12):
            x, y = rng.randrange(size[0]), rng.randrange(size[1])
            draw.ellipse([x, y, x + size[0] // 5, y + size[1] // 5], fill=(rng.randrange(256), 80, 160))
        img.save(path, quality=90) if path.suffix == ".jpg" else img.save(path, compress_level=1)
        path.with_suffix(".txt").write_text(f"zkz, 1girl, tag{i % 17}, blue hair, smile", encoding="utf-8")


def timed(fn):
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.dataset_bench", description=__doc__.split("\n")[0])
    parser.add_argument("work_dir")
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    from lora_trainer.dataset.caption_edit import EditHistory, add_tags, plan_edit, read_captions
    from lora_trainer.dataset.checks import CheckSettings, check_dataset

    work = Path(args.work_dir)
    concept = work / "train" / "10_zkz"
    made, _ = timed(lambda: make_pictures(concept, args.images))
    cache = work / "cache"
    if cache.exists():
        import shutil

        shutil.rmtree(cache)
    settings = CheckSettings(resolution=1024, trigger="zkz")
    cold, findings = timed(lambda: check_dataset(work / "train", settings, cache_dir=cache))
    warm, _ = timed(lambda: check_dataset(work / "train", settings, cache_dir=cache))
    read, captions = timed(lambda: read_captions([concept]))
    history = EditHistory(work / "history")
    plan, changes = timed(lambda: plan_edit(captions, add_tags(["benchmark tag"])))
    write, applied = timed(lambda: history.apply(changes, "benchmark"))
    undo, undone = timed(history.undo)
    result = {"date": time.strftime("%Y-%m-%d"), "machine": f"{platform.processor() or platform.machine()}, "
              f"{os.cpu_count()} cores", "images": args.images, "made_s": round(made, 1),
              "check_cold_s": round(cold, 2), "check_warm_s": round(warm, 2), "findings": [f.key for f in findings],
              "read_captions_s": round(read, 3), "plan_edit_s": round(plan, 3), "apply_edit_s": round(write, 3),
              "written": len(applied.written), "undo_s": round(undo, 3), "undone": len(undone.written)}
    print(json.dumps(result))
    if args.json:
        with open(args.json, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
