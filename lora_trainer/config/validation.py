"""A TrainConfig checked as a whole: types, ranges, choices, resolution and buckets, paths and the options'
own checks (``option_checks``); every bad value listed in plain words, the rest returned as warnings."""
from __future__ import annotations

import dataclasses
import os
import typing

from ..errors import ConfigError
from ..text.messages import sentence
from . import messages  # noqa: F401  (registers the sentences)
from .checks import output_name_problems, path_problems, resolution_problems, round_to, type_problem
from .option_checks import check_options, options_problems
from .schema import TrainConfig, parse_resolution


def field_type(f: dataclasses.Field) -> tuple[type, bool]:
    """(base type, optional) of a config field."""
    hint = typing.get_type_hints(TrainConfig)[f.name]
    optional = False
    if typing.get_origin(hint) is typing.Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        optional = True
        hint = args[0]
    if hint is list or typing.get_origin(hint) is list:
        return list, optional
    return hint, optional


def validate(cfg: TrainConfig, *, need_paths: bool = True) -> list[str]:
    """Return warnings; raise ConfigError listing every bad value in plain words."""
    problems: list[str] = []
    warnings: list[str] = []
    wrong_types = [problem for f in dataclasses.fields(cfg)
                   if (problem := type_problem(f.name, *field_type(f), getattr(cfg, f.name)))]
    if wrong_types:   # the checks below compare values, which needs their types
        raise ConfigError(wrong_types)
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if value is None or isinstance(value, (bool, str, list)):
            continue
        lo, hi = f.metadata.get("minimum"), f.metadata.get("maximum")
        if lo is not None and value < lo:
            problems.append(sentence("config.below_minimum", name=f.name, value=value, limit=lo))
        if hi is not None and value > hi:
            problems.append(sentence("config.above_maximum", name=f.name, value=value, limit=hi))
    for name in ("optimizer_type", "lr_scheduler", "mixed_precision", "save_precision"):
        choices = next(f for f in dataclasses.fields(cfg) if f.name == name).metadata["choices"]
        value = getattr(cfg, name)
        if isinstance(value, str) and value.lower() not in [c.lower() for c in choices]:
            problems.append(sentence("config.unknown_choice", name=name, value=value, choices=", ".join(choices)))

    try:
        width, height = parse_resolution(cfg.resolution)
    except ConfigError as err:
        problems.extend(err.problems)
    else:
        problems += resolution_problems((width, height))
    if cfg.enable_bucket:
        if cfg.min_bucket_reso > cfg.max_bucket_reso:
            problems.append(sentence("config.bucket_order", low=cfg.min_bucket_reso, high=cfg.max_bucket_reso))
        for name in ("min_bucket_reso", "max_bucket_reso"):
            value = getattr(cfg, name)
            if value % cfg.bucket_reso_steps:
                problems.append(sentence("config.bucket_multiple", name=name, value=value, step=cfg.bucket_reso_steps,
                                         fixed=round_to(value, cfg.bucket_reso_steps)))
        if cfg.bucket_reso_steps % 8:
            problems.append(sentence("config.bucket_step", value=cfg.bucket_reso_steps))

    if cfg.max_train_epochs is None and cfg.max_train_steps is None:
        problems.append(sentence("config.no_length"))
    if cfg.network_train_unet_only and cfg.network_train_text_encoder_only:
        problems.append(sentence("config.nothing_trained"))
    if cfg.network_alpha > cfg.network_dim:
        warnings.append(sentence("config.alpha_above_dim", alpha=f"{cfg.network_alpha:g}", dim=cfg.network_dim))
    problems += options_problems(cfg, warnings)
    if cfg.lr_warmup_steps and cfg.lr_scheduler == "constant":
        warnings.append(sentence("config.warmup_constant"))
    if cfg.keep_tokens and not (cfg.shuffle_caption or cfg.caption_tag_dropout_rate):
        warnings.append(sentence("config.keep_tokens_unused"))
    if cfg.optimizer_type.lower() in ("prodigy", "dadaptadam", "dadaptation", "dadaptlion") \
            and cfg.effective_unet_lr < 0.1:
        warnings.append(sentence("config.adaptive_lr", optimizer=cfg.optimizer_type, lr=f"{cfg.effective_unet_lr:g}"))
    problems += output_name_problems(cfg.output_name)

    if need_paths:
        problems += path_problems(cfg)
        if cfg.network_weights and not os.path.isfile(cfg.network_weights):
            problems.append(sentence("config.no_network_weights", path=cfg.network_weights))
    check_options(cfg, problems, warnings, need_paths=need_paths)
    if problems:
        raise ConfigError(problems)
    return warnings
