"""fp16 keeps accelerate's loss scaler but trains without the autocast accelerate wraps around a model."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("accelerate")

from lora_trainer.config.schema import TrainConfig  # noqa: E402
from lora_trainer.train.precision import accelerate_precision, prepare_model  # noqa: E402


class Probe(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(3, 2)

    def forward(self, x):
        return self.linear(x)


def test_only_fp16_asks_accelerate_for_a_precision():
    assert [accelerate_precision(TrainConfig(mixed_precision=p)) for p in ("fp16", "bf16", "no")] == \
        ["fp16", "no", "no"]


def fp16_accelerator():
    """An fp16 Accelerator that wraps models as it does on a GPU (on the CPU it leaves them alone)."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(reset_partial_state=False)
    GradientState._reset_state()
    accelerator = Accelerator(mixed_precision="fp16", cpu=True)
    accelerator.native_amp = True
    return accelerator


def test_prepare_wraps_the_forward_in_autocast_and_prepare_model_takes_it_off():
    wrapped = fp16_accelerator().prepare(Probe())
    assert "_original_forward" in wrapped.__dict__ and wrapped.forward.__func__ is not Probe.forward

    model = Probe()
    x = torch.randn(4, 3)
    expected = model(x)
    prepared = prepare_model(fp16_accelerator(), model)
    assert prepared is model
    assert prepared.forward.__func__ is Probe.forward and "_original_forward" not in prepared.__dict__
    out = prepared(x)
    assert out.dtype == torch.float32 and torch.equal(out, expected)
    out.sum().backward()
    assert prepared.linear.weight.grad is not None


def test_prepare_model_keeps_a_forward_set_on_the_instance():
    model = Probe()
    model.forward = lambda x: model.linear(x) * 2   # e.g. a forward replaced before the run
    x = torch.randn(2, 3)
    prepared = prepare_model(fp16_accelerator(), model)
    assert torch.equal(prepared(x), model.linear(x) * 2)
