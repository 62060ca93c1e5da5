"""LR schedules: curve shape at key steps, warm-up as steps or ratio, resume."""
from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from lora_trainer.errors import ConfigError
from lora_trainer.train.optimizers import build_optimizer
from lora_trainer.train.schedulers import (
    SCHEDULER_TYPES, build_scheduler, resolve_warmup_steps, scheduler_notes,
)

pytest.importorskip("diffusers")
BASE = 1e-3


def make_optimizer(lrs=(BASE,)):
    params = [torch.nn.Parameter(torch.zeros(2)) for _ in lrs]
    return torch.optim.SGD([{"params": [p], "lr": lr} for p, lr in zip(params, lrs)], lr=lrs[0])


def curve(scheduler, optimizer, steps, group=0):
    """lr used at optimizer steps 0..steps-1 (as the training loop sees it)."""
    out = []
    for _ in range(steps):
        out.append(optimizer.param_groups[group]["lr"])
        optimizer.step()
        scheduler.step()
    out.append(optimizer.param_groups[group]["lr"])
    return out


def test_constant():
    opt = make_optimizer()
    lrs = curve(build_scheduler("constant", opt, 50), opt, 50)
    assert lrs == [BASE] * 51


def test_constant_with_warmup_ends_at_the_right_step():
    opt = make_optimizer()
    lrs = curve(build_scheduler("constant_with_warmup", opt, 100, lr_warmup_steps=10), opt, 100)
    assert lrs[0] == 0.0
    assert lrs[5] == pytest.approx(BASE * 0.5)
    assert lrs[9] < BASE and lrs[10] == pytest.approx(BASE)
    assert all(v == pytest.approx(BASE) for v in lrs[10:])


def test_constant_with_warmup_setting_switches_schedule():
    opt = make_optimizer()
    sched = build_scheduler("constant", opt, 100, lr_warmup_steps=4)
    assert curve(sched, opt, 6) == pytest.approx([0, BASE / 4, BASE / 2, 3 * BASE / 4, BASE, BASE, BASE])
    assert any("constant_with_warmup" in note for note in scheduler_notes(sched))
    assert scheduler_notes(build_scheduler("constant", make_optimizer(), 100)) == []


def test_linear():
    opt = make_optimizer()
    lrs = curve(build_scheduler("linear", opt, 110, lr_warmup_steps=10), opt, 110)
    assert lrs[10] == pytest.approx(BASE)
    assert lrs[60] == pytest.approx(BASE * 0.5)
    assert lrs[110] == pytest.approx(0.0)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))


def test_cosine():
    opt = make_optimizer()
    lrs = curve(build_scheduler("cosine", opt, 110, lr_warmup_steps=10), opt, 110)
    assert lrs[10] == pytest.approx(BASE)
    assert lrs[60] == pytest.approx(BASE * 0.5)
    assert lrs[35] == pytest.approx(BASE * 0.5 * (1 + math.cos(math.pi * 0.25)))
    assert lrs[110] == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("num_cycles", [1, 3, 4])
def test_cosine_with_restarts_restarts(num_cycles):
    opt = make_optimizer()
    total = 120
    lrs = curve(build_scheduler("cosine_with_restarts", opt, total, num_cycles=num_cycles), opt, total)
    jumps = [i for i in range(1, total) if lrs[i] > lrs[i - 1] + 1e-12]
    assert len(jumps) == num_cycles - 1  # num_cycles cosine cycles = num_cycles - 1 hard restarts
    cycle = total // num_cycles
    assert jumps == [cycle * k for k in range(1, num_cycles)]
    for k in range(num_cycles):
        assert lrs[cycle * k] == pytest.approx(BASE)
        assert lrs[cycle * k + cycle // 2] == pytest.approx(BASE * 0.5)


@pytest.mark.parametrize("power", [1.0, 2.0, 0.5])
def test_polynomial_power(power):
    opt = make_optimizer()
    lrs = curve(build_scheduler("polynomial", opt, 100, lr_warmup_steps=0, power=power), opt, 100)
    lr_end = 1e-7  # diffusers' default end value
    for step in (0, 25, 50, 75):
        assert lrs[step] == pytest.approx((BASE - lr_end) * (1 - step / 100) ** power + lr_end)
    assert lrs[100] == pytest.approx(lr_end)


def test_ratio_warmup():
    assert resolve_warmup_steps(0.1, 200) == 20
    assert resolve_warmup_steps(0.05, 130) == 6  # truncated, as kohya does
    assert resolve_warmup_steps(15, 200) == 15 and resolve_warmup_steps(15.0, 200) == 15
    assert resolve_warmup_steps(0, 200) == 0 and resolve_warmup_steps(None, 200) == 0
    opt = make_optimizer()
    lrs = curve(build_scheduler("linear", opt, 200, lr_warmup_steps=0.1), opt, 200)
    assert lrs[19] < BASE and lrs[20] == pytest.approx(BASE) and lrs[21] < BASE


@pytest.mark.parametrize("bad", [-1, 1.5, "10", True, float("nan")])
def test_bad_warmup(bad):
    with pytest.raises(ConfigError, match="lr_warmup_steps"):
        build_scheduler("linear", make_optimizer(), 100, lr_warmup_steps=bad)


def test_bad_settings():
    with pytest.raises(ConfigError) as info:
        build_scheduler("cosine_annealing", make_optimizer(), 100)
    assert all(name in str(info.value) for name in SCHEDULER_TYPES)
    with pytest.raises(ConfigError, match="num_cycles"):
        build_scheduler("cosine_with_restarts", make_optimizer(), 100, num_cycles=0)
    with pytest.raises(ConfigError, match="power"):
        build_scheduler("polynomial", make_optimizer(), 100, power=-1)
    with pytest.raises(ConfigError, match="training steps"):
        build_scheduler("linear", make_optimizer(), 0)
    with pytest.raises(ConfigError, match="relative_step"):
        build_scheduler("adafactor", make_optimizer(), 100)
    assert isinstance(build_scheduler("COSINE", make_optimizer(), 100), torch.optim.lr_scheduler.LambdaLR)


def test_param_groups_keep_their_ratio():
    opt = make_optimizer((1e-3, 2.5e-4))
    sched = build_scheduler("cosine", opt, 40, lr_warmup_steps=4)
    for _ in range(13):
        opt.step()
        sched.step()
    unet, te = sched.get_last_lr()
    assert te == pytest.approx(unet / 4) and 0 < unet < 1e-3


@pytest.mark.parametrize("name", ["linear", "cosine_with_restarts", "polynomial", "constant_with_warmup"])
def test_state_dict_round_trip_resumes_the_curve(name):
    kwargs = dict(lr_warmup_steps=5, num_cycles=2, power=2.0)
    opt = make_optimizer((1e-3, 5e-4))
    sched = build_scheduler(name, opt, 60, **kwargs)
    full = curve(sched, opt, 60, group=1)

    opt = make_optimizer((1e-3, 5e-4))
    sched = build_scheduler(name, opt, 60, **kwargs)
    curve(sched, opt, 23)
    saved_sched, saved_opt = sched.state_dict(), opt.state_dict()

    opt2 = make_optimizer((1e-3, 5e-4))
    sched2 = build_scheduler(name, opt2, 60, **kwargs)
    opt2.load_state_dict(saved_opt)
    sched2.load_state_dict(saved_sched)
    assert sched2.last_epoch == 23 and sched2.get_last_lr() == sched.get_last_lr()
    resumed = curve(sched2, opt2, 60 - 23, group=1)
    assert resumed == pytest.approx(full[23:])


def test_adafactor_schedule_with_relative_step():
    pytest.importorskip("transformers")
    model = torch.nn.Linear(8, 8)
    opt = build_optimizer("Adafactor", [{"params": model.parameters()}], 1e-3, ["relative_step=True"])
    sched = build_scheduler("constant", opt, 100)  # replaced: Adafactor schedules itself
    assert any("adafactor" in note for note in scheduler_notes(sched))
    assert sched.get_last_lr() == [pytest.approx(1e-3)]  # initial lr until the first step
    for _ in range(3):
        opt.zero_grad()
        model(torch.randn(4, 8)).pow(2).mean().backward()
        opt.step()
        sched.step()
    # relative step size min(1e-2, 1/sqrt(step)); scale_parameter=False leaves it unscaled
    assert sched.get_last_lr() == [pytest.approx(1e-2)]
    sched = build_scheduler("adafactor:5e-4", build_optimizer(
        "Adafactor", [{"params": torch.nn.Linear(2, 2).parameters()}], 1e-3, ["relative_step=True"]), 10)
    assert sched.get_last_lr() == [pytest.approx(5e-4)]
