"""The run's trained network, from the settings: its type (LoRA, LoHa, LoKr; DoRA), kohya's per-block ranks
and learning-rate weights, and a file to continue from (``network_weights``, ``dim_from_weights``).

Every setting that cannot apply to this model is refused before a step runs, with what differs and the
setting that fixes it.
"""
from __future__ import annotations

from typing import Callable, Optional

from ..config.blocks import block_plan
from ..config.metadata import family_from_metadata
from ..config.schema import TrainConfig
from ..errors import ConfigError
from ..lora.continue_from import (check_kind, check_parts, file_choice, fit_problems, load_into,
                                  read_network_file)
from ..lora.file_hooks import module_table
from ..lora.network import DropoutSettings, LoraNetwork, NetworkSpec, build_network
from ..lora.targets import block_index
from ..text.messages import sentence
from . import messages  # noqa: F401  (registers the sentences)


def build_run_network(cfg: TrainConfig, base) -> tuple[LoraNetwork, Optional[Callable[[str], float]]]:
    """The network injected into ``base`` (UNet and/or text encoders as the settings say), loaded from
    ``network_weights`` if set, and the per-layer learning-rate weight (None: all 1). ``network.notes`` holds
    what the user should know (layers that start fresh, short block lists)."""
    settings = cfg.network_settings()
    family = base.family
    spec = NetworkSpec(rank=cfg.network_dim, alpha=cfg.network_alpha, conv_rank=settings["conv_dim"],
                       conv_alpha=settings["conv_alpha"], algo=settings["algo"], dora=bool(settings["dora_wd"]),
                       factor=int(settings["factor"] if settings["factor"] is not None else -1))
    notes: list[str] = []
    plan = block_plan(settings, family, cfg.network_dim, cfg.network_alpha)
    if plan is not None:
        notes += plan.notes
        spec.with_conv = plan.conv_dims is not None and any(plan.conv_dims)

        def choose(key, target, plan=plan):
            index = block_index(key, family)
            return plan.rank_alpha(index, target.is_conv3x3, *spec.default_for(target))
        spec.choose = choose

    source = None
    if cfg.network_weights:
        source = read_network_file(cfg.network_weights)
        problems = check_kind(source, spec.algo, spec.dora) + check_parts(source, cfg.train_unet,
                                                                          cfg.train_text_encoder)
        if problems:
            raise ConfigError(problems)
        if cfg.dim_from_weights:
            spec.with_conv = True   # the file's layers decide; its 3×3 layers may be LoHa / LoKr factors
            spec.choose = file_choice(source, cfg.network_dim)
            if cfg.train_text_encoder and not any(not k.startswith("lora_unet_") for k in source.modules):
                notes.append(sentence("train.weights_unet_only", name=source.name))
        model_keys = set(module_table(family, base.unet, base.text_encoders))

    network = build_network(
        family, base.unet if cfg.train_unet else None, base.text_encoders if cfg.train_text_encoder else [], spec,
        DropoutSettings(cfg.network_dropout, settings["rank_dropout"], settings["module_dropout"]), seed=cfg.seed)
    if source is not None:
        problems, fresh = fit_problems(source, network, model_keys, family, family_from_metadata(source.metadata))
        if problems:
            raise ConfigError(problems)
        load_into(source, network)
        notes += fresh + [f"continuing from {source.name}: {len(source.modules)} layers loaded"]
    network.notes = notes
    block_weight = None
    if plan is not None and any(w != 1.0 for w in plan.lr_weights):
        def block_weight(key, plan=plan):
            return plan.lr_weight(block_index(key, family))
    return network, block_weight
