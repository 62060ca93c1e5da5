"""GroupedAdafactor (the tensors of one shape stepped together) must train like transformers' Adafactor, for
every option kohya's users pass, with tensors that miss a gradient now and then, in chunks, and from a saved
state; a state of transformers' per-tensor layout is refused."""
import pytest

torch = pytest.importorskip("torch")
Adafactor = pytest.importorskip("transformers.optimization").Adafactor

from lora_trainer.train import grouped_adafactor  # noqa: E402
from lora_trainer.train.grouped_adafactor import GroupedAdafactor  # noqa: E402

SHAPES = [(4, 16), (16, 4), (4, 16), (4, 8, 3, 3), (8,), (16, 4), (4, 16), (4, 8, 3, 3), (8,), (32, 4)]
OPTIONS = [
    dict(lr=1e-3, scale_parameter=False, relative_step=False, warmup_init=False),    # kohya's usual arguments
    dict(lr=None, scale_parameter=True, relative_step=True, warmup_init=True),
    dict(lr=None, scale_parameter=True, relative_step=True, warmup_init=False, beta1=0.9),
    dict(lr=3e-3, scale_parameter=True, relative_step=False, weight_decay=0.01, clip_threshold=0.5),
    dict(lr=2e-3, scale_parameter=False, relative_step=False, beta1=0.8, weight_decay=0.1, decay_rate=-0.5),
]


def tensors(seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(shape, generator=gen) * 0.1) for shape in SHAPES]


def train(cls, options, steps=6, skip=(), state=None, params=None):
    """``steps`` updates with fixed pseudo-random gradients; ``skip``: (step, tensor) pairs without a gradient."""
    params = params or tensors()
    groups = [{"params": params[:6]}, {"params": params[6:]}]
    opt = cls(groups, **options)
    if state is not None:
        opt.load_state_dict(state)
    gen = torch.Generator().manual_seed(1)
    for step in range(steps):
        for index, p in enumerate(params):
            g = torch.randn(p.shape, generator=gen).to(p.dtype)
            p.grad = None if (step, index) in skip else g
        opt.step()
    return params, opt


def assert_same(ours, theirs):
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a.detach(), b.detach(), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("options", OPTIONS)
def test_trains_like_transformers_adafactor(options):
    skip = {(1, 0), (2, 3), (2, 5), (4, 8)}   # some steps without a gradient: their steps counts part ways
    ours, _ = train(GroupedAdafactor, options, skip=skip)
    theirs, _ = train(Adafactor, options, skip=skip)
    assert_same(ours, theirs)
    assert any(not torch.equal(a, b) for a, b in zip(ours, tensors()))   # it did train


def test_without_foreach_copy_the_weights_are_copied_one_by_one(monkeypatch):
    monkeypatch.delattr(torch, "_foreach_copy_", raising=False)   # older torch
    ours, _ = train(GroupedAdafactor, OPTIONS[0])
    monkeypatch.undo()
    theirs, _ = train(Adafactor, OPTIONS[0])
    assert_same(ours, theirs)


def test_large_shapes_are_stepped_in_chunks(monkeypatch):
    monkeypatch.setattr(grouped_adafactor, "CHUNK_ELEMENTS", 100)   # (4, 16): one tensor per chunk
    options = OPTIONS[2]
    ours, _ = train(GroupedAdafactor, options, skip={(1, 2)})
    theirs, _ = train(Adafactor, options, skip={(1, 2)})
    assert_same(ours, theirs)


def test_a_saved_state_resumes_exactly():
    options = OPTIONS[4]
    straight, _ = train(GroupedAdafactor, options, steps=6)
    _, first = train(GroupedAdafactor, options, steps=3)
    saved = first.state_dict()
    # the remaining 3 steps from the saved weights and state, with the gradients the straight run saw
    params, _ = train(GroupedAdafactor, options, steps=3)
    gen = torch.Generator().manual_seed(1)
    opt = GroupedAdafactor([{"params": params[:6]}, {"params": params[6:]}], **options)
    opt.load_state_dict(saved)
    for step in range(6):
        grads = [torch.randn(p.shape, generator=gen) for p in params]
        if step < 3:
            continue
        for p, g in zip(params, grads):
            p.grad = g
        opt.step()
    for a, b in zip(params, straight):
        assert torch.equal(a, b)


def test_a_state_of_transformers_per_tensor_layout_is_refused():
    _, theirs = train(Adafactor, OPTIONS[0], steps=2)
    ours = GroupedAdafactor([{"params": tensors()[:6]}, {"params": tensors()[6:]}], **OPTIONS[0])
    with pytest.raises(ValueError):
        ours.load_state_dict(theirs.state_dict())


def test_half_precision_weights_are_stepped_in_fp32_like_transformers():
    options = OPTIONS[0]
    ours, _ = train(GroupedAdafactor, options, params=[torch.nn.Parameter(t.detach().bfloat16()) for t in tensors()])
    theirs, _ = train(Adafactor, options, params=[torch.nn.Parameter(t.detach().bfloat16()) for t in tensors()])
    for a, b in zip(ours, theirs):
        assert a.dtype == torch.bfloat16
        torch.testing.assert_close(a.detach().float(), b.detach().float(), rtol=1e-2, atol=1e-3)


# --- whole runs -------------------------------------------------------------------------------------------
def _trained(cfg):
    from lora_trainer.train import events as ev
    from tests.test_train import read, run
    result, seen = run(cfg)
    return result, read(result.files[-1])[0], [e.loss for e in seen if isinstance(e, ev.StepEnd)]


@pytest.fixture
def adafactor_config(tiny_checkpoints, small_dataset, tmp_path):
    from tests.test_train import make_config
    return make_config(tiny_checkpoints["sd1"], small_dataset, tmp_path / "grouped", max_train_epochs=2,
                       save_every_n_epochs=None, optimizer_type="Adafactor", learning_rate=1e-3,
                       text_encoder_lr=5e-4, mixed_precision="bf16")


def test_a_run_trains_like_one_with_transformers_adafactor(adafactor_config, tmp_path, monkeypatch):
    _, grouped, grouped_losses = _trained(adafactor_config)
    monkeypatch.setattr(grouped_adafactor, "GroupedAdafactor", Adafactor)   # what runs built before
    _, plain, losses = _trained(adafactor_config.replace(output_dir=str(tmp_path / "plain")))
    for key in plain:
        torch.testing.assert_close(grouped[key], plain[key], rtol=1e-5, atol=1e-7)
    assert grouped_losses == pytest.approx(losses, rel=1e-5)


def test_a_state_saved_per_tensor_is_refused_in_both_languages(adafactor_config, tmp_path, monkeypatch):
    import os

    from lora_trainer.errors import TrainerError
    from tests.test_train import run
    monkeypatch.setattr(grouped_adafactor, "GroupedAdafactor", Adafactor)
    done, _, _ = _trained(adafactor_config)
    monkeypatch.undo()
    with pytest.raises(TrainerError) as caught:
        run(adafactor_config.replace(output_dir=str(tmp_path / "b"),
                                     resume=os.path.join(done.run_dir, "测试 lora-state")))
    assert "was saved with its weights in another layout" in str(caught.value)
    assert "its Adafactor moments are kept per tensor" in str(caught.value)
    assert "优化器状态与本次训练的优化器不匹配" in caught.value.message_in("zh_CN")
    assert "按单个张量保存" in caught.value.message_in("zh_CN")   # the detail in Chinese too
