"""A training state is saved and read without pickle: a state folder from anyone cannot run code."""
from __future__ import annotations

import json
import os
import pickle
import random

import pytest

torch = pytest.importorskip("torch")

from lora_trainer.errors import TrainerError  # noqa: E402
from lora_trainer.train.state import INFO_FILE, TENSORS_FILE, RngStates, load_state, save_state  # noqa: E402


def sample_state(tmp_path):
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.99))
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5)
    caption_rng, noise = random.Random(3), torch.Generator().manual_seed(5)
    rng = RngStates.capture(caption_rng, noise)
    path = save_state(str(tmp_path / "run-000001-state"), step=7, epoch=1, batch_in_epoch=2,
                      lora={"a.lora_A": torch.ones(2, 3)}, optimizer=opt.state_dict(), scheduler=sched.state_dict(),
                      rng=rng, config={"network_dim": 4})
    return path, opt, sched, caption_rng, noise


def test_a_state_round_trips_without_pickle(tmp_path):
    path, opt, sched, caption_rng, noise = sample_state(tmp_path)
    assert sorted(os.listdir(path)) == [INFO_FILE, TENSORS_FILE]
    state = load_state(path)
    assert (state.step, state.epoch, state.batch_in_epoch, state.config) == (7, 1, 2, {"network_dim": 4})
    saved = opt.state_dict()
    assert state.optimizer["param_groups"][0]["betas"] == (0.9, 0.99)
    for key, value in saved["state"][0].items():
        torch.testing.assert_close(state.optimizer["state"][0][key], value)
    assert state.scheduler == sched.state_dict()
    fresh_rng, fresh_noise = random.Random(0), torch.Generator()
    state.rng.restore(fresh_rng, fresh_noise)
    assert fresh_rng.random() == caption_rng.random()
    assert torch.equal(torch.randn(3, generator=fresh_noise), torch.randn(3, generator=noise))
    torch.optim.AdamW(torch.nn.Linear(3, 2).parameters()).load_state_dict(state.optimizer)


class Payload:
    def __reduce__(self):
        return (open, (os.environ["PAYLOAD_MARK"], "w"))


def test_a_crafted_state_runs_no_code(tmp_path, monkeypatch):
    """An older-format folder whose .pt files would run code when unpickled is refused, and nothing runs."""
    mark = tmp_path / "code ran"
    monkeypatch.setenv("PAYLOAD_MARK", str(mark))
    folder = tmp_path / "evil-state"
    folder.mkdir()
    (folder / INFO_FILE).write_text(json.dumps({"version": 1, "step": 1, "epoch": 1, "config": {}}))
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(1)}, str(folder / "lora.safetensors"))
    for name in ("optimizer", "scheduler", "rng"):
        with open(folder / f"{name}.pt", "wb") as fh:
            pickle.dump({"state": Payload()}, fh)
    with pytest.raises(TrainerError) as err:
        load_state(str(folder))
    assert not mark.exists()
    assert "not loaded" in err.value.message and err.value.advice


def test_a_damaged_state_is_explained(tmp_path):
    path, *_ = sample_state(tmp_path)
    with open(os.path.join(path, INFO_FILE), "w") as fh:
        fh.write('{"version": 2, "step": 1, "epoch": 1, "lora": {"$tensor": "missing"}}')
    with pytest.raises(TrainerError, match="cannot be read"):
        load_state(path)
    with pytest.raises(TrainerError, match="not a training state folder"):
        load_state(str(tmp_path))
