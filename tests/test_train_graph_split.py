"""The captured step with the optimizer update outside the graph (8-bit and other optimizers, fp16,
gradient accumulation): each batch's loss and backward pass are the graph, writing into gradient buffers
kept between steps, and the update runs eagerly after the step's last batch.

No graph can be captured on the CPU, so these runs replay nothing: ``GraphedStep`` runs its graph body
eagerly (``accumulate_gradients``, the kept buffers, ``step_optimizer``), through the training loop, and
must train like the plain eager loop. On a GPU, benchmarks/options_graph_check.py checks the captured runs.
"""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from lora_trainer.train import graphs, loop  # noqa: E402
from lora_trainer.train import events as ev  # noqa: E402
from tests.test_train import make_config, read, run  # noqa: E402


class BodyOnlyGraphedStep(graphs.GraphedStep):
    """The graph step's code with every batch run as its (uncaptured) body."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, warmup=10**9, **kwargs)

    def _eager(self, inputs):
        return self._body(inputs)


@pytest.fixture
def split_step(monkeypatch):
    built = []

    def graphed_step(self, params):
        step = BodyOnlyGraphedStep(self.run.step_models, self.run.accelerator, self.run.optimizer, self.run.network,
                                   params, self.cfg.max_grad_norm, capture_update=False,
                                   accumulation=self.cfg.gradient_accumulation_steps)
        built.append(step)
        return step
    monkeypatch.setattr(graphs, "capture_stream", lambda device: None)
    monkeypatch.setattr(loop._Trainer, "graphed_step", graphed_step)
    return built


def trained(cfg):
    """The last file's tensors and the step losses of a run."""
    result, seen = run(cfg)
    return read(result.files[-1])[0], [e.loss for e in seen if isinstance(e, ev.StepEnd)]


@pytest.mark.parametrize("changes", [
    dict(gradient_accumulation_steps=1),                                   # fp32 weights: backward adds in place
    dict(gradient_accumulation_steps=2, optimizer_type="SGDNesterov"),     # another optimizer, two batches a step
])
def test_split_step_trains_exactly_like_the_eager_loop(changes, tiny_checkpoints, dataset, tmp_path, split_step):
    cfg = make_config(tiny_checkpoints["sd1"], dataset, tmp_path / "split", max_train_epochs=1,
                      save_every_n_epochs=None, train_batch_size=2, **changes)
    split, split_losses = trained(cfg)
    assert split_step and split_step[0].graphs == {} and not split_step[0].capture_update
    split_step.clear()
    loop._Trainer.graphed_step = lambda self, params: None   # the plain loop (monkeypatch restores it)
    eager, eager_losses = trained(cfg.replace(output_dir=str(tmp_path / "eager")))
    assert not split_step
    assert len(split_losses) == len(eager_losses) > 0
    assert split.keys() == eager.keys()
    for key in split:
        assert torch.equal(split[key], eager[key]), key
    assert split_losses == eager_losses


def test_accumulated_bf16_gradients_are_summed_in_fp32(tiny_checkpoints, dataset, tmp_path, split_step):
    """With bf16 compute copies each batch's gradient is added into the fp32 masters' buffer, by the split
    step and by the eager loop alike (summed in bf16 first, two batches' gradients would lose bits)."""
    cfg = make_config(tiny_checkpoints["sd1"], dataset, tmp_path / "split", max_train_epochs=1,
                      save_every_n_epochs=None, train_batch_size=2, gradient_accumulation_steps=2,
                      mixed_precision="bf16")
    split, split_losses = trained(cfg)
    loop._Trainer.graphed_step = lambda self, params: None
    eager, eager_losses = trained(cfg.replace(output_dir=str(tmp_path / "eager")))
    for key in split:
        assert torch.equal(split[key], eager[key]), key
    assert split_losses == eager_losses
