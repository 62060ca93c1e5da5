"""``inspect``: what a LoRA file holds, in a form a person can read."""
from __future__ import annotations

import json
import os

from ..errors import TrainerError
from ..io import safetensors_header  # noqa: F401  (registers io.not_found and io.not_safetensors)
from ..text.messages import Joined, msg
from . import messages  # noqa: F401  (registers the sentences)


def read_lora(path: str):
    from safetensors import safe_open

    if os.path.isdir(path):
        files = sorted(f for f in os.listdir(path) if f.lower().endswith(".safetensors"))
        raise TrainerError(msg("inspect.folder", path=path),
                           msg("inspect.folder.advice", example=os.path.join(path, files[0])) if files else
                           msg("inspect.empty_folder.advice"))
    if not os.path.isfile(path):
        raise TrainerError(msg("io.not_found", path=path), msg("inspect.not_found.advice"))
    try:
        with safe_open(path, framework="pt") as fh:
            metadata = fh.metadata() or {}
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    except Exception as err:  # safetensors raises its own error types
        raise TrainerError(msg("io.not_safetensors", path=path, why=err), msg("inspect.incomplete.advice")) from None
    return tensors, metadata


def _per_value(counts: dict, shown=str) -> Joined:
    return Joined([msg("inspect.value_modules", value=shown(v), count=n) for v, n in sorted(counts.items())], ", ")


def describe(path: str, show_all_metadata: bool = False) -> Joined:
    """The file's modules, ranks, alphas, metadata and check, one line each: English as a ``str``, another
    language through ``localized``."""
    from ..lora.kohya_format import check_lora_state, missing_metadata, summarize

    tensors, metadata = read_lora(path)
    info = summarize(tensors)
    lines: list = [f"{path}", msg("inspect.size", mib=os.path.getsize(path) / 2**20, count=len(tensors))]
    kinds: list = [" / ".join(info["kinds"]) or msg("inspect.none")]
    if info["conv3x3_modules"]:
        kinds.append(" (LoCon)")
    if info["dora_modules"]:
        kinds.append(msg("inspect.dora", count=info["dora_modules"]))
    lines.append(msg("inspect.type", kinds=Joined(kinds, "")))
    for prefix, count in sorted(info["modules"].items()):
        lines.append(msg("inspect.modules", prefix=prefix, count=count))
    lines.append(msg("inspect.rank", ranks=_per_value(info["ranks"])))
    lines.append(msg("inspect.alpha", alphas=_per_value(info["alphas"], lambda a: f"{a:g}")))
    if info["conv3x3_modules"]:
        lines.append(msg("inspect.conv", count=info["conv3x3_modules"]))
    keys = sorted(metadata) if show_all_metadata else [k for k in (
        "ss_output_name", "ss_base_model_version", "modelspec.architecture", "ss_sd_model_name", "ss_network_module",
        "ss_network_dim",
        "ss_network_alpha", "ss_network_args", "ss_resolution", "ss_num_train_images", "ss_num_reg_images",
        "ss_epoch", "ss_steps", "ss_learning_rate", "ss_unet_lr", "ss_text_encoder_lr", "ss_optimizer",
        "ss_lr_scheduler", "ss_clip_skip", "ss_training_started_at") if k in metadata]
    if keys:
        lines.append(msg("inspect.metadata"))
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
            lines.append(msg("inspect.top_tags", tags=", ".join(f"{t} ({n})" for t, n in best)))
        except ValueError:
            pass
    problems = check_lora_state(tensors)  # keys, shapes and values: what a host needs
    lines.append(msg("inspect.check_problems", lines=Joined([msg("inspect.problem", problem=p) for p in problems]))
                 if problems else msg("inspect.check_ok"))
    absent = missing_metadata(metadata)
    if absent:
        lines.append(msg("inspect.note", names=f"{', '.join(absent[:6])}{' …' if len(absent) > 6 else ''}"))
    return Joined(lines)
