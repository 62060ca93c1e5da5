"""``inspect``: what a LoRA file holds, in a form a person can read."""
from __future__ import annotations

import json
import os

from ..errors import TrainerError


def read_lora(path: str):
    from safetensors import safe_open

    if os.path.isdir(path):
        files = sorted(f for f in os.listdir(path) if f.lower().endswith(".safetensors"))
        raise TrainerError(f"{path} is a folder, not a LoRA file",
                           f"name one of its .safetensors files, e.g. {os.path.join(path, files[0])}" if files else
                           "name a .safetensors file; this folder holds none")
    if not os.path.isfile(path):
        raise TrainerError(f"file not found: {path}", "check the path of the .safetensors file")
    try:
        with safe_open(path, framework="pt") as fh:
            metadata = fh.metadata() or {}
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    except Exception as err:  # safetensors raises its own error types
        raise TrainerError(f"{path} is not a readable .safetensors file ({err})",
                           "the file may be incomplete; use an earlier epoch or train again") from None
    return tensors, metadata


def describe(path: str, show_all_metadata: bool = False) -> str:
    from ..lora.kohya_format import check_lora_state, missing_metadata, summarize

    tensors, metadata = read_lora(path)
    info = summarize(tensors)
    lines = [f"{path}", f"  size: {os.path.getsize(path) / 2**20:.2f} MiB, {len(tensors)} tensors"]
    kinds = " / ".join(info["kinds"]) or "none"
    if info["conv3x3_modules"]:
        kinds += " (LoCon)"
    if info["dora_modules"]:
        kinds += f" + DoRA ({info['dora_modules']} modules)"
    lines.append(f"  type: {kinds}")
    for prefix, count in sorted(info["modules"].items()):
        lines.append(f"  {prefix}: {count} modules")
    lines.append("  rank: " + ", ".join(f"{r} ({n} modules)" for r, n in sorted(info["ranks"].items())))
    lines.append("  alpha: " + ", ".join(f"{a:g} ({n} modules)" for a, n in sorted(info["alphas"].items())))
    if info["conv3x3_modules"]:
        lines.append(f"  conv 3×3 (LoCon) modules: {info['conv3x3_modules']}")
    keys = sorted(metadata) if show_all_metadata else [k for k in (
        "ss_output_name", "ss_base_model_version", "modelspec.architecture", "ss_sd_model_name", "ss_network_module",
        "ss_network_dim",
        "ss_network_alpha", "ss_network_args", "ss_resolution", "ss_num_train_images", "ss_num_reg_images",
        "ss_epoch", "ss_steps", "ss_learning_rate", "ss_unet_lr", "ss_text_encoder_lr", "ss_optimizer",
        "ss_lr_scheduler", "ss_clip_skip", "ss_training_started_at") if k in metadata]
    if keys:
        lines.append("  metadata:")
        for key in keys:
            lines.append(f"    {key}: {metadata[key]}")
    if "ss_tag_frequency" in metadata and not show_all_metadata:
        try:
            freq = json.loads(metadata["ss_tag_frequency"])
            top: dict[str, int] = {}
            for tags in freq.values():
                for tag, n in tags.items():
                    top[tag] = top.get(tag, 0) + n
            best = sorted(top.items(), key=lambda kv: -kv[1])[:10]
            lines.append("    top tags: " + ", ".join(f"{t} ({n})" for t, n in best))
        except ValueError:
            pass
    problems = check_lora_state(tensors)  # keys, shapes and values: what a host needs
    lines.append("  check: OK" if not problems else "  check: PROBLEMS\n" + "\n".join(f"    - {p}" for p in problems))
    absent = missing_metadata(metadata)
    if absent:
        lines.append(f"  note: no {', '.join(absent[:6])}{' …' if len(absent) > 6 else ''} in the metadata "
                     f"(normal for files from other trainers)")
    return "\n".join(lines)
