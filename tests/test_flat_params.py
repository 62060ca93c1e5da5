"""Optimizers that step their tensors one by one (8-bit, Lion, Prodigy, D-Adaptation) get one flat tensor
per group: the same training, and a state saved with the other layout is refused with a clear error."""
from __future__ import annotations

import os

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("lion_pytorch")

from lora_trainer.errors import TrainerError  # noqa: E402
from lora_trainer.train import events as ev  # noqa: E402
from lora_trainer.train import flat_params  # noqa: E402
from tests.test_train import make_config, read, run  # noqa: E402


def trained(cfg):
    result, seen = run(cfg)
    return result, read(result.files[-1])[0], [e.loss for e in seen if isinstance(e, ev.StepEnd)]


def test_flat_groups_make_views_of_one_tensor():
    a, b = torch.nn.Parameter(torch.randn(3, 4)), torch.nn.Parameter(torch.randn(5))
    before = [a.detach().clone(), b.detach().clone()]
    (group,) = flat_params.flat_groups([{"params": [a, b], "lr": 0.1, "name": "unet"}])
    (flat,) = group["params"]
    assert group["lr"] == 0.1 and group["name"] == "unet" and flat.shape == (17,)
    assert torch.equal(a, before[0]) and torch.equal(b, before[1])
    flat.data.add_(1)
    assert torch.equal(a, before[0] + 1)         # the weights read the flat tensor
    b.grad.fill_(2)
    assert flat.grad[12:].eq(2).all() and flat.grad[:12].eq(0).all()


@pytest.mark.parametrize("precision", ["no", "bf16"])   # fp32 weights, and bf16 copies of fp32 masters
def test_flat_lion_trains_exactly_like_per_tensor_lion(precision, tiny_checkpoints, small_dataset, tmp_path,
                                                       monkeypatch):
    cfg = make_config(tiny_checkpoints["sd1"], small_dataset, tmp_path / "flat", max_train_epochs=3,
                      save_every_n_epochs=None, optimizer_type="Lion", learning_rate=3e-4, text_encoder_lr=1e-4,
                      mixed_precision=precision)
    built = []
    real = flat_params.flat_groups
    monkeypatch.setattr(flat_params, "flat_groups", lambda groups: built.append(real(groups)) or built[-1])
    _, flat, flat_losses = trained(cfg)
    assert [len(g["params"]) for g in built[0]] == [1, 1]      # UNet and text encoder: one tensor each
    monkeypatch.setattr(flat_params, "FLAT_TYPES", frozenset())
    _, per_tensor, losses = trained(cfg.replace(output_dir=str(tmp_path / "per_tensor")))
    assert len(built) == 1
    for key in flat:
        assert torch.equal(flat[key], per_tensor[key]), key
    assert flat_losses == losses


def test_a_state_of_the_other_layout_is_refused_in_both_languages(tiny_checkpoints, small_dataset, tmp_path,
                                                                  monkeypatch):
    cfg = make_config(tiny_checkpoints["sd1"], small_dataset, tmp_path / "a", max_train_epochs=2,
                      optimizer_type="Lion", learning_rate=3e-4)
    monkeypatch.setattr(flat_params, "FLAT_TYPES", frozenset())   # as saved before groups were flat
    done, _, _ = trained(cfg)
    monkeypatch.undo()
    with pytest.raises(TrainerError) as caught:
        run(cfg.replace(output_dir=str(tmp_path / "b"), resume=os.path.join(done.run_dir, "测试 lora-state")))
    assert "was saved with its weights in another layout" in str(caught.value)
    assert "优化器状态与本次训练的优化器不匹配" in caught.value.message_in("zh_CN")
    assert "从头重新开始训练" in caught.value.advice_in("zh_CN")


def test_a_large_group_is_cut_into_flat_tensors_of_whole_weights(monkeypatch):
    monkeypatch.setattr(flat_params, "FLAT_CHUNK_ELEMENTS", 20)
    weights = [torch.nn.Parameter(torch.randn(n)) for n in (8, 8, 8, 30, 4)]
    before = [w.detach().clone() for w in weights]
    (group,) = flat_params.flat_groups([{"params": weights, "lr": 0.1}])
    assert [p.numel() for p in group["params"]] == [16, 8, 30, 4]   # no weight split; one larger than 20 alone
    assert all(torch.equal(w, b) for w, b in zip(weights, before))
    assert weights[3].data_ptr() == group["params"][2].data_ptr()


def test_lion_over_several_flat_tensors_trains_exactly_like_per_tensor_lion(tiny_checkpoints, small_dataset,
                                                                            tmp_path, monkeypatch):
    cfg = make_config(tiny_checkpoints["sd1"], small_dataset, tmp_path / "chunks", max_train_epochs=2,
                      save_every_n_epochs=None, optimizer_type="Lion", learning_rate=3e-4, text_encoder_lr=1e-4)
    monkeypatch.setattr(flat_params, "FLAT_CHUNK_ELEMENTS", 600)
    built = []
    real = flat_params.flat_groups
    monkeypatch.setattr(flat_params, "flat_groups", lambda groups: built.append(real(groups)) or built[-1])
    _, chunked, chunked_losses = trained(cfg)
    assert [len(g["params"]) > 1 for g in built[0]] == [True, True]   # UNet and text encoder: several each
    monkeypatch.setattr(flat_params, "FLAT_TYPES", frozenset())
    _, per_tensor, losses = trained(cfg.replace(output_dir=str(tmp_path / "per_tensor")))
    for key in chunked:
        assert torch.equal(chunked[key], per_tensor[key]), key
    assert chunked_losses == losses
