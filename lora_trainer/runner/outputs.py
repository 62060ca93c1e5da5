"""Files a job writes besides the LoRA: preview images, and the sidecar ``<name>.json`` and
``<name>.preview.png`` the hosts' Lora tab reads (activation text, weight, model version, card image)."""
from __future__ import annotations

import json
import os
import shutil
import time
from typing import Optional

from ..config.metadata import SD_VERSION_LABEL
from ..io.atomic import atomic_write

PREVIEW_DIR = "previews"


def trigger_word(train_data_dir: str, output_name: str) -> str:
    """The first training concept's name (``10_zkz`` → ``zkz``), else the output name."""
    from ..data.folders import parse_concept_folder_name

    try:
        names = sorted(os.listdir(train_data_dir))
    except OSError:
        return output_name
    for name in names:
        parsed = parse_concept_folder_name(name)
        if parsed and parsed[1].strip() and os.path.isdir(os.path.join(train_data_dir, name)):
            return parsed[1].strip()
    return output_name


def preview_path(run_dir: str, lora_path: str, weight: float, index: int) -> str:
    """``<run folder>/previews/<lora stem>-w<weight>-<index>.png`` (beside the run's logs, not in the output
    folder: the WebUI's Lora tab would show a folder button for it)."""
    stem = os.path.splitext(os.path.basename(lora_path))[0]
    return os.path.join(run_dir, PREVIEW_DIR, f"{stem}-w{float(weight)!r}-{index}.png")


def save_image(image, path: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with atomic_write(path) as tmp:
        image.save(tmp, format="PNG")


def sidecar_paths(final_path: str) -> tuple[str, str]:
    """(user-metadata json, card image) beside a LoRA file, named as the hosts look for them."""
    stem = os.path.splitext(final_path)[0]
    return stem + ".json", stem + ".preview.png"


def write_sidecar(final_path: str, *, trigger: str, weight: float, family: Optional[str], description: str,
                  notes: str) -> str:
    path, _ = sidecar_paths(final_path)
    data = {"description": description, "sd version": SD_VERSION_LABEL.get(family or "", "Unknown"),
            "activation text": trigger, "preferred weight": float(weight), "notes": notes}
    with atomic_write(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(data, fh, ensure_ascii=False, indent=4)
    return path


def write_cover(final_path: str, image_path: str) -> str:
    _, path = sidecar_paths(final_path)
    with atomic_write(path) as tmp:
        shutil.copyfile(image_path, tmp)
    return path


def write_cards(job, cfg, weight: float, steps: int, family: Optional[str]) -> tuple[list[dict], Optional[str]]:
    """The Lora tab's card files beside a finished job's final LoRA (its description, trigger and weight, and its
    first preview as the card image): (file records for the job, a log line when they could not be written)."""
    from ..text.messages import sentence

    final = next((f["path"] for f in job.files if f["kind"] == "final"), None)
    if final is None:
        return [], None
    last_loss = job.epoch_losses[-1][2] if job.epoch_losses else None
    model = os.path.basename(cfg.pretrained_model_name_or_path)
    try:   # the card's own text stays English, like the file's ss_* metadata
        path = write_sidecar(
            final, trigger=job.trigger, weight=weight, family=family or job.family,
            description=f"{job.output_name}: LoRA trained on {model} ({steps} steps, "
                        f"{job.epochs or cfg.max_train_epochs} epochs).",
            notes=f"Trained {time.strftime('%Y-%m-%d %H:%M')} with LoRA Trainer: rank {cfg.network_dim}, "
                  f"alpha {cfg.network_alpha:g}, learning rate {cfg.learning_rate:g}, optimizer "
                  f"{cfg.optimizer_type}, resolution {cfg.resolution}"
                  + (f", final mean loss {last_loss:.4f}" if isinstance(last_loss, float) else "") + ".")
        files = [{"path": path, "epoch": job.epoch, "step": job.step, "kind": "sidecar", "state_dir": None}]
        step = next((f["step"] for f in job.files if f["path"] == final), None)
        cover = next((p["path"] for p in job.previews if p["file"] == final or p["step"] == step), None)
        if cover:
            files.append({"path": write_cover(final, cover), "epoch": job.epoch, "step": job.step,
                          "kind": "cover", "state_dir": None})
    except OSError as err:
        return [], sentence("job.no_cards", path=final, error=err)
    return files, None
