"""kohya's ``network_args`` strings and the network fields they duplicate, read as one set of settings.

A kohya or LyCORIS TOML carries LoCon, LyCORIS, DoRA and per-block settings as ``network_args``
(``["conv_dim=4", "algo=loha", "dora_wd=True", "down_lr_weight=1,1,0.5"]``); this trainer has a
``TrainConfig`` field for each. ``network_settings`` merges both: a field left at its default takes the
string's value, a field set to another value than the string is refused, and a key this trainer does
not use is refused by name with the reason. ``metadata_args`` is what ``ss_network_args`` records (the
settings a run used, as kohya writes them: strings), ``module_name`` the ``ss_network_module``.
Torch-free.
"""
from __future__ import annotations

from typing import Any

from ..errors import ConfigError
from ..text.messages import msg, sentence
from . import messages  # noqa: F401  (registers the sentences)

ALGOS = ("lora", "loha", "lokr")
ALGO_NAMES = {"lora": "LoRA", "loha": "LoHa", "lokr": "LoKr"}
_ALGO_ALIASES = {"lora": "lora", "locon": "lora", "loha": "loha", "lokr": "lokr"}
LYCORIS_MODULE = "lycoris.kohya"
KOHYA_MODULE = "networks.lora"
BLOCK_KEYS = ("down_lr_weight", "mid_lr_weight", "up_lr_weight", "block_dims", "block_alphas", "conv_block_dims",
              "conv_block_alphas")
# network_args keys with a field of the same name, and how the string is read
_READERS = {"conv_dim": lambda t: int(float(t)), "conv_alpha": float, "rank_dropout": float,
            "module_dropout": float, "algo": lambda t: _algo(t), "dora_wd": lambda t: _bool(t),
            "factor": lambda t: int(float(t)), **{k: lambda t: t.strip() for k in BLOCK_KEYS}}
FIELD_DEFAULTS = {"conv_dim": None, "conv_alpha": None, "rank_dropout": None, "module_dropout": None,
                  "algo": "lora", "dora_wd": False, "factor": -1, **{k: "" for k in BLOCK_KEYS}}
# LyCORIS presets whose UNet layers are kohya's: attn-mlp exactly; full also the ResNets (with conv_dim)
PRESETS_TRAINED = ("attn-mlp", "attn_mlp", "full")
# LyCORIS and kohya network_args this trainer does not use, and why
UNSUPPORTED = {
    "preset": msg("net.why.preset"),
    "use_tucker": msg("net.why.tucker"), "use_cp": msg("net.why.see_tucker"),
    "use_scalar": msg("net.why.scalar"),
    "decompose_both": msg("net.why.decompose_both"),
    "rank_dropout_scale": msg("net.why.rank_dropout_scale"),
    "train_norm": msg("net.why.train_norm"),
    "bypass_mode": msg("net.why.bypass"),
    "wd_on_out": msg("net.why.wd_on_out"),
    "block_lr_zero_threshold": msg("net.why.lr_zero"),
    "loraplus_lr_ratio": msg("net.why.loraplus"), "loraplus_unet_lr_ratio": msg("net.why.loraplus"),
    "loraplus_text_encoder_lr_ratio": msg("net.why.loraplus"),
}


def _algo(text: str) -> str:
    key = str(text).strip().lower()
    if key not in _ALGO_ALIASES:
        raise ValueError(sentence("net.algo", text=text, algos=", ".join(ALGOS)))
    return _ALGO_ALIASES[key]


def _bool(text: str) -> bool:
    key = str(text).strip().lower()
    if key in ("true", "1", "yes", "on"):
        return True
    if key in ("false", "0", "no", "off"):
        return False
    raise ValueError(sentence("net.not_bool", text=text))


def parse_network_args(args: list) -> tuple[dict[str, Any], list[str]]:
    """``["key=value", ...]`` → ({key: typed value}, problems) for the keys with a field; the rest are
    problems that name the key and why it is not used."""
    values: dict[str, Any] = {}
    problems: list[str] = []
    for raw in args or []:
        key, sep, text = str(raw).partition("=")
        key = key.strip()
        if not key:
            continue
        if key == "preset" and text.strip().lower() in PRESETS_TRAINED:
            continue   # the layers trained anyway (option_checks says what "full" means here)
        if key in UNSUPPORTED:
            problems.append(sentence("net.unsupported", arg=str(raw).strip(), reason=UNSUPPORTED[key]))
            continue
        if key not in _READERS:
            problems.append(sentence("net.unknown", arg=str(raw).strip(), names=", ".join(_READERS)))
            continue
        if not sep or not text.strip():
            problems.append(sentence("net.no_value", arg=str(raw).strip(), setting=key))
            continue
        try:
            values[key] = _READERS[key](text)
        except ValueError as err:
            detail = err.args[0] if err.args and hasattr(err.args[0], "key") else msg("net.not_a_number")
            problems.append(sentence("net.bad_value", arg=str(raw).strip(), detail=detail))
    return values, problems


def network_settings(cfg) -> dict[str, Any]:
    """The network settings a run uses: each field, or its ``network_args`` string where the field is left at
    its default. ``conv_alpha`` defaults to ``conv_dim``. Raises ConfigError naming each conflict or unknown key."""
    strings, problems = parse_network_args(cfg.network_args)
    values: dict[str, Any] = {}
    for key, default in FIELD_DEFAULTS.items():
        own = getattr(cfg, key)
        if key in strings:
            if own != default and own != strings[key]:
                problems.append(sentence("net.conflict", setting=key, own=repr(own), other=repr(strings[key])))
            values[key] = own if own != default else strings[key]
        else:
            values[key] = own
    try:
        values["algo"] = _algo(values["algo"] or "lora")
    except ValueError as err:
        problems.append(err.args[0])
    if problems:
        raise ConfigError(problems)
    if values["conv_dim"] is not None and values["conv_alpha"] is None:
        values["conv_alpha"] = float(values["conv_dim"])
    return values


def is_lycoris(cfg, settings: dict[str, Any] | None = None) -> bool:
    settings = settings if settings is not None else network_settings(cfg)
    return settings["algo"] != "lora" or bool(settings["dora_wd"]) or cfg.network_module == LYCORIS_MODULE


def module_name(cfg) -> str:
    """``ss_network_module`` as kohya / LyCORIS write it."""
    try:
        return LYCORIS_MODULE if is_lycoris(cfg) else (cfg.network_module or KOHYA_MODULE)
    except ConfigError:
        return cfg.network_module or KOHYA_MODULE


def metadata_args(cfg) -> dict[str, Any]:
    """What ``ss_network_args`` records: the settings that differ from a plain LoRA (None: left out)."""
    try:
        s = network_settings(cfg)
    except ConfigError:   # a config that never trains; the metadata shows its fields
        s = {k: getattr(cfg, k) for k in FIELD_DEFAULTS}
    lycoris = s["algo"] != "lora" or bool(s["dora_wd"]) or cfg.network_module == LYCORIS_MODULE
    out = {"conv_dim": s["conv_dim"], "conv_alpha": s["conv_alpha"] if s["conv_dim"] is not None else None,
           "rank_dropout": s["rank_dropout"], "module_dropout": s["module_dropout"],
           "algo": s["algo"] if lycoris else None, "dora_wd": True if s["dora_wd"] else None,
           "factor": s["factor"] if s["algo"] == "lokr" else None}
    out.update({k: (s[k] or None) for k in BLOCK_KEYS})
    return out


def check_network(cfg, s: dict[str, Any]) -> list[str]:
    """What the chosen network type cannot use: each problem names the setting, the reason and the fix."""
    problems = []
    for key in ("rank_dropout", "module_dropout"):
        if s[key] is not None and not 0.0 <= s[key] <= 1.0:
            problems.append(sentence("net.between_0_1", setting=key, value=s[key]))
    algo, name = s["algo"], ALGO_NAMES[s["algo"]]
    if cfg.network_module not in (KOHYA_MODULE, LYCORIS_MODULE, ""):
        problems.append(sentence("net.module", module=cfg.network_module, kohya=KOHYA_MODULE, lycoris=LYCORIS_MODULE))
    if algo != "lora" and cfg.network_dropout:
        problems.append(sentence("net.dropout", name=name))
    if algo != "lokr" and s["factor"] not in (-1, None):
        problems.append(sentence("net.factor_lokr", factor=s["factor"]))
    if s["factor"] is not None and (s["factor"] == 0 or s["factor"] < -1):
        problems.append(sentence("net.factor_value", factor=s["factor"]))
    if s["dora_wd"]:
        dropped = [k for k in ("network_dropout", "rank_dropout", "module_dropout")
                   if (getattr(cfg, k) if k == "network_dropout" else s[k])]
        if dropped:
            problems.append(sentence("net.dora_dropout", names=", ".join(dropped)))
        if cfg.scale_weight_norms:
            problems.append(sentence("net.dora_norms"))
    return problems
