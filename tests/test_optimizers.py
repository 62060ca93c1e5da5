"""Optimizers by kohya name: each available one trains a tiny model; args; errors."""
from __future__ import annotations

import sys
import types

import pytest

torch = pytest.importorskip("torch")

from lora_trainer.errors import ConfigError, MissingDependency
from lora_trainer.train.optimizers import (
    ADAPTIVE_TYPES, OPTIMIZER_TYPES, build_optimizer, canonical_optimizer_type, describe_lr,
    optimizer_available, optimizer_needs, optimizer_notes, parse_optimizer_args,
)

ADAPTIVE = {t.lower() for t in ADAPTIVE_TYPES} | {"dadaptation"}


def tiny_model() -> torch.nn.Module:
    torch.manual_seed(0)
    # 64*64 weights: above bitsandbytes' 4096-element threshold, so its 8-bit state is used
    return torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.Tanh(), torch.nn.Linear(64, 4))


def two_groups(model, lr_a, lr_b):
    return [{"params": list(model[0].parameters()), "lr": lr_a},
            {"params": list(model[2].parameters()), "lr": lr_b}]


def train_steps(model, optimizer, steps=3):
    torch.manual_seed(1)
    x, y = torch.randn(16, 64), torch.randn(16, 4)
    for _ in range(steps):
        optimizer.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        optimizer.step()


@pytest.mark.parametrize("name", OPTIMIZER_TYPES)
def test_each_available_optimizer_changes_weights(name):
    if not optimizer_available(name):
        pytest.skip(f"{optimizer_needs(name)[1]} is not installed")
    model = tiny_model()
    adaptive = name.lower() in ADAPTIVE
    lr_a, lr_b = (1.0, 1.0) if adaptive else (1e-3, 5e-4)
    optimizer = build_optimizer(name, two_groups(model, lr_a, lr_b), 1.0 if adaptive else 1e-3, [])
    before = [p.detach().clone() for p in model.parameters()]
    train_steps(model, optimizer)
    changed = [not torch.equal(a, b) for a, b in zip(before, model.parameters())]
    assert all(changed), changed
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert [g["lr"] for g in optimizer.param_groups] == [lr_a, lr_b]  # per-group lrs kept
    lrs = describe_lr(optimizer)
    assert len(lrs) == 2 and all(isinstance(v, float) and v > 0 for v in lrs)


def test_names_are_case_insensitive_and_alias():
    assert canonical_optimizer_type("adamw8BIT") == "AdamW8bit"
    assert canonical_optimizer_type(" prodigy ") == "Prodigy"
    assert canonical_optimizer_type("DAdaptation") == "DAdaptAdam"
    assert type(build_optimizer("adamw", [{"params": tiny_model().parameters()}], 1e-4, [])) is torch.optim.AdamW


def test_unknown_name_lists_valid_names():
    with pytest.raises(ConfigError) as info:
        build_optimizer("AdamX", [{"params": tiny_model().parameters()}], 1e-4, [])
    text = str(info.value)
    assert "AdamX" in text
    for name in ("AdamW", "AdamW8bit", "Prodigy", "DAdaptAdam", "Adafactor", "SGDNesterov"):
        assert name in text


def test_parse_optimizer_args_types():
    args = parse_optimizer_args(["weight_decay=0.01", "betas=0.9,0.99", "decouple=True", "d_coef=2",
                                 "relative_step=False", "beta3=None", "mode=fast", "eps = 1e-8 ",
                                 "use_bias_correction=true", "amsgrad=FALSE"])
    assert args == {"weight_decay": 0.01, "betas": (0.9, 0.99), "decouple": True, "d_coef": 2,
                    "relative_step": False, "beta3": None, "mode": "fast", "eps": 1e-8,
                    "use_bias_correction": True, "amsgrad": False}
    assert type(args["d_coef"]) is int and type(args["weight_decay"]) is float
    assert parse_optimizer_args({"betas": [0.9, 0.95], "weight_decay": "0.1", "decouple": True}) == \
        {"betas": (0.9, 0.95), "weight_decay": 0.1, "decouple": True}
    assert parse_optimizer_args(None) == {} and parse_optimizer_args([]) == {}


@pytest.mark.parametrize("arg", ["weight_decay", "weight_decay=", "betas=0.9,abc", "=3", "2x=1",
                                 "lr=1e-3"])
def test_bad_optimizer_args_name_the_arg(arg):
    with pytest.raises(ConfigError) as info:
        parse_optimizer_args(["eps=1e-8", arg])
    assert arg.split("=")[0].strip() in str(info.value) or arg in str(info.value)


def test_unknown_setting_is_named_with_accepted_ones():
    with pytest.raises(ConfigError) as info:
        build_optimizer("AdamW", [{"params": tiny_model().parameters()}], 1e-4, ["weight_decai=0.1"])
    assert "weight_decai" in str(info.value) and "weight_decay" in str(info.value)


def test_rejected_value_is_config_error():
    with pytest.raises(ConfigError, match="AdamW"):
        build_optimizer("AdamW", [{"params": tiny_model().parameters()}], 1e-4, ["betas=1.5,0.9"])
    with pytest.raises(ConfigError, match="learning_rate"):
        build_optimizer("AdamW", [{"params": tiny_model().parameters()}], 0.0, [])
    with pytest.raises(ConfigError, match="no trainable"):
        build_optimizer("AdamW", [{"params": []}], 1e-4, [])


def test_adamw_args_and_fused_only_on_cuda():
    model = tiny_model()
    opt = build_optimizer("AdamW", [{"params": model.parameters()}], 2e-4, ["weight_decay=0.05", "betas=0.9,0.99"])
    group = opt.param_groups[0]
    assert group["weight_decay"] == 0.05 and group["betas"] == (0.9, 0.99) and group["lr"] == 2e-4
    assert not group["fused"]  # CPU parameters
    if torch.cuda.is_available():
        opt = build_optimizer("AdamW", [{"params": tiny_model().cuda().parameters()}], 2e-4, [])
        assert opt.param_groups[0]["fused"] is True


def test_sgd_nesterov_defaults():
    opt = build_optimizer("SGDNesterov", [{"params": tiny_model().parameters()}], 0.1, [])
    assert type(opt) is torch.optim.SGD
    assert opt.param_groups[0]["nesterov"] is True and opt.param_groups[0]["momentum"] == 0.9
    opt = build_optimizer("SGDNesterov", [{"params": tiny_model().parameters()}], 0.1, ["momentum=0.5"])
    assert opt.param_groups[0]["momentum"] == 0.5


def test_adafactor_kohya_semantics():
    pytest.importorskip("transformers")
    model = tiny_model()
    opt = build_optimizer("Adafactor", two_groups(model, 1e-3, 5e-4), 1e-3, [])
    g = opt.param_groups[0]
    assert (g["scale_parameter"], g["relative_step"], g["warmup_init"]) == (False, False, False)
    assert [g["lr"] for g in opt.param_groups] == [1e-3, 5e-4] and optimizer_notes(opt) == []

    opt = build_optimizer("Adafactor", two_groups(tiny_model(), 1e-3, 5e-4), 1e-3, ["relative_step=True"])
    assert all(g["lr"] is None and g["relative_step"] for g in opt.param_groups)
    assert any("ignored" in note for note in optimizer_notes(opt))

    opt = build_optimizer("Adafactor", [{"params": tiny_model().parameters()}], 1e-3, ["warmup_init=True"])
    assert opt.param_groups[0]["relative_step"] is True
    assert any("warmup_init" in note for note in optimizer_notes(opt))


def test_prodigy_describe_lr_is_d_times_lr_and_needs_one_lr():
    pytest.importorskip("prodigyopt")
    model = tiny_model()
    opt = build_optimizer("Prodigy", two_groups(model, 1.0, 1.0), 1.0, ["d_coef=2", "decouple=True"])
    assert opt.param_groups[0]["d_coef"] == 2
    train_steps(model, opt, steps=5)
    d = opt.param_groups[0]["d"]
    assert d > 1e-6  # d grew from d0
    assert describe_lr(opt) == pytest.approx([d * 1.0, d * 1.0])
    with pytest.raises(ConfigError, match="one learning rate"):
        build_optimizer("Prodigy", two_groups(tiny_model(), 1.0, 0.5), 1.0, [])
    low = build_optimizer("Prodigy", [{"params": tiny_model().parameters()}], 1e-4, [])
    assert any("about 1.0" in note for note in optimizer_notes(low))


def test_optimizer_needs():
    assert optimizer_needs("AdamW") is None and optimizer_needs("SGDNesterov") is None
    assert optimizer_needs("adamw8bit") == ("bitsandbytes", "bitsandbytes")
    assert optimizer_needs("PagedLion8bit") == ("bitsandbytes", "bitsandbytes")
    assert optimizer_needs("Lion") == ("lion_pytorch", "lion-pytorch")
    assert optimizer_needs("Prodigy") == ("prodigyopt", "prodigyopt")
    assert optimizer_needs("DAdaptation") == ("dadaptation", "dadaptation")
    assert optimizer_needs("DAdaptLion") == ("dadaptation", "dadaptation")
    assert optimizer_needs("Adafactor") == ("transformers", "transformers")
    with pytest.raises(ConfigError):
        optimizer_needs("nope")


@pytest.mark.parametrize("name,module,pip_name", [
    ("Lion", "lion_pytorch", "lion-pytorch"), ("Prodigy", "prodigyopt", "prodigyopt"),
    ("AdamW8bit", "bitsandbytes", "bitsandbytes"), ("DAdaptAdam", "dadaptation", "dadaptation"),
    ("Adafactor", "transformers", "transformers"),
])
def test_missing_package_names_pip_package(monkeypatch, name, module, pip_name):
    for mod in [m for m in sys.modules if m == module or m.startswith(module + ".")]:
        monkeypatch.delitem(sys.modules, mod)
    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` raise ImportError
    with pytest.raises(MissingDependency) as info:
        build_optimizer(name, [{"params": tiny_model().parameters()}], 1.0, [])
    assert info.value.package == module
    assert f"pip install {pip_name}" in str(info.value)


def test_dadaptation_wiring_with_stand_in_module(monkeypatch):
    """DAdapt* map to the dadaptation classes with the user's args (a stand-in when it is absent)."""
    calls = []

    def make(cls_name):
        class StandIn(torch.optim.SGD):
            def __init__(self, params, lr=1.0, decouple=False, d0=1e-6):
                calls.append((cls_name, lr, decouple, d0))
                super().__init__(params, lr=lr)
                for g in self.param_groups:
                    g["d"] = 0.5
        StandIn.__name__ = cls_name
        return StandIn

    fake = types.ModuleType("dadaptation")
    fake.DAdaptAdam, fake.DAdaptLion = make("DAdaptAdam"), make("DAdaptLion")
    monkeypatch.setitem(sys.modules, "dadaptation", fake)
    opt = build_optimizer("DAdaptation", [{"params": tiny_model().parameters()}], 1.0, ["decouple=True"])
    assert type(opt).__name__ == "DAdaptAdam" and calls[-1] == ("DAdaptAdam", 1.0, True, 1e-6)
    assert describe_lr(opt) == [0.5]
    opt = build_optimizer("dadaptlion", [{"params": tiny_model().parameters()}], 1.0, {"d0": "1e-5"})
    assert calls[-1] == ("DAdaptLion", 1.0, False, 1e-5)
    with pytest.raises(ConfigError, match="growth_rate"):
        build_optimizer("DAdaptAdam", [{"params": tiny_model().parameters()}], 1.0, ["growth_rate=2"])
