"""Training with the newer options on the tiny models (CPU): continuing from a saved LoRA file, an fp8 base,
the optimizer settings as fields, LoHa / LoKr / DoRA runs."""
from __future__ import annotations

import dataclasses

import pytest

torch = pytest.importorskip("torch")

from test_train import make_config, read, run  # noqa: E402

from lora_trainer.errors import ConfigError  # noqa: E402
from lora_trainer.lora.kohya_format import check_lora_state, summarize  # noqa: E402
from lora_trainer.models.loading import load_base_model  # noqa: E402


@pytest.fixture(scope="module")
def first_run(tiny_checkpoints, tmp_path_factory):
    """A short LoCon run on SD1 whose final file the continuation tests start from: (file, dataset)."""
    import shutil

    from test_train import DEMO
    root = tmp_path_factory.mktemp("first")
    data = root / "data" / "2_zkz"
    data.mkdir(parents=True)
    for image in sorted(next(DEMO.iterdir()).glob("*.png"))[:4]:
        shutil.copy(image, data / image.name)
        shutil.copy(image.with_suffix(".txt"), data / image.with_suffix(".txt").name)
    cfg = make_config(tiny_checkpoints["sd1"], str(data.parent), root / "out", max_train_epochs=2,
                      save_every_n_epochs=None, conv_dim=4, conv_alpha=2, learning_rate=1e-2, text_encoder_lr=1e-2,
                      save_state=False)
    result, _ = run(cfg)
    return result.files[-1], str(data.parent)


def _first_step_losses(cfg):
    """The loss of the continued run's first batch, and of the same batch through the base model with the file
    applied as hooks (the file as the hosts would use it)."""
    from lora_trainer.data.dataset import epoch_batches
    from lora_trainer.lora.file_hooks import lora_applied, module_table
    from lora_trainer.train.loop import _Trainer
    from lora_trainer.train.setup import prepare_run
    from lora_trainer.train.step import compute_loss
    from lora_trainer.train import events as ev

    prepared = prepare_run(cfg, log=lambda *_: None)
    trainer = _Trainer(prepared, None, ev.StopRequest())
    batch = trainer.batches.make(epoch_batches(prepared.items, cfg.train_batch_size, cfg.seed, 0)[0])
    for model in [prepared.step_models.unet, *prepared.step_models.text_encoders]:
        model.eval()
    with torch.no_grad():
        continued = compute_loss(prepared.step_models, batch, torch.Generator().manual_seed(3))
    trainer.metrics.close()
    fresh = load_base_model(cfg.pretrained_model_name_or_path)
    models = dataclasses.replace(prepared.step_models, unet=fresh.unet, text_encoders=fresh.text_encoders,
                                 prompt_cache=None)
    with torch.no_grad(), lora_applied(module_table("sd1", fresh.unet, fresh.text_encoders),
                                       cfg.network_weights) as unmatched:
        from_file = compute_loss(models, batch, torch.Generator().manual_seed(3))
    return prepared, float(continued), float(from_file), unmatched


def test_continuing_starts_from_the_files_weights_with_a_new_optimizer(first_run, tiny_checkpoints, tmp_path):
    path, data = first_run
    cfg = make_config(tiny_checkpoints["sd1"], data, tmp_path / "next", network_weights=path, conv_dim=4,
                      conv_alpha=2, optimizer_type="Prodigy", learning_rate=1.0, text_encoder_lr=None,
                      max_train_epochs=2, save_every_n_epochs=None, d_coef=0.3, safeguard_warmup=True,
                      weight_decay=0.01)
    prepared, continued, from_file, unmatched = _first_step_losses(cfg)
    assert unmatched == 0 and continued == pytest.approx(from_file, rel=1e-5, abs=1e-6)
    group = prepared.optimizer.param_groups[0]      # the optimizer settings made as fields reach it
    assert (group["d_coef"], group["safeguard_warmup"], group["weight_decay"]) == (0.3, True, 0.01)
    assert any("continuing from" in w for w in prepared.warnings)
    result, _ = run(cfg)
    tensors, meta = read(result.files[-1])
    assert check_lora_state(tensors, meta) == [] and meta["ss_optimizer"].startswith("Prodigy(weight_decay=0.01,")
    first, _ = read(path)
    assert first.keys() == tensors.keys() and any(not torch.equal(first[k], tensors[k]) for k in first)


def _network_problem(cfg, checkpoint) -> str:
    from lora_trainer.train.network_setup import build_run_network

    base = load_base_model(checkpoint)
    with pytest.raises(ConfigError) as err:
        build_run_network(cfg, base)
    return str(err.value)


def test_a_file_that_does_not_fit_is_refused_naming_what_differs(first_run, tiny_checkpoints):
    from lora_trainer.config.schema import TrainConfig
    from lora_trainer.train.network_setup import build_run_network

    path, _ = first_run
    same = dict(network_weights=path, network_dim=4, network_alpha=4, conv_dim=4, conv_alpha=2)
    cases = [
        (dict(same, network_dim=8), "the file's rank is 4 where these settings give 8"),
        (dict(same, network_alpha=1), "the file's alpha is 4 where these settings give 1"),
        (dict(same, conv_dim=None, conv_alpha=None), "set conv_dim to the file's conv rank"),
        (dict(same, algo="loha"), "is a LoRA, but the network type (algo) is loha: set algo lora"),
        (dict(same, dora_wd=True), "has no DoRA magnitudes"),
        (dict(same, network_train_unet_only=True), "also changes the text encoder (12 layers)"),
    ]
    for changes, words in cases:
        assert words in _network_problem(TrainConfig(**changes), tiny_checkpoints["sd1"]), changes
    assert "was trained for SD1, but the base model is SDXL" in _network_problem(
        TrainConfig(**same), tiny_checkpoints["sdxl"])
    # dim_from_weights builds the network from the file, whatever network_dim says
    net, _ = build_run_network(TrainConfig(network_weights=path, dim_from_weights=True, network_dim=32),
                               load_base_model(tiny_checkpoints["sd1"]))
    tensors, _ = read(path)
    assert summarize(tensors)["ranks"] == {4: len({k.partition(".")[0] for k in tensors})}
    assert {net.layer_key(c, n) for c, n, _ in net.modules()} == {k.partition(".")[0] for k in tensors}


def _saved_weight_copies(run_prepared) -> list:
    """The dtypes of the frozen UNet weights (or copies of them) that one step's autograd graph keeps."""
    from lora_trainer.data.dataset import epoch_batches
    from lora_trainer.train import events as ev
    from lora_trainer.train.loop import _Trainer
    from lora_trainer.train.step import compute_loss

    weights: dict[tuple, list] = {}
    for m in run_prepared.base.unet.modules():
        if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d)) and not m.weight.requires_grad:
            weights.setdefault(tuple(m.weight.shape), []).append(m.weight.detach().float())
    trainer = _Trainer(run_prepared, None, ev.StopRequest())
    batch = trainer.batches.make(epoch_batches(run_prepared.items, 2, 0, 0)[0])
    kept = []

    def pack(tensor):
        if any(torch.equal(tensor.detach().float(), w) for w in weights.get(tuple(tensor.shape), [])):
            kept.append(tensor.dtype)
        return tensor
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        compute_loss(run_prepared.step_models, batch, torch.Generator().manual_seed(0))
    trainer.metrics.close()
    return kept


def test_fp8_base_stores_the_frozen_weights_in_fp8_and_keeps_no_wider_copy(tiny_checkpoints, small_dataset,
                                                                            tmp_path):
    from lora_trainer.train.fp8 import FP8
    from lora_trainer.train.setup import prepare_run

    cfg = make_config(tiny_checkpoints["sd1"], small_dataset, tmp_path / "fp8", mixed_precision="bf16",
                      fp8_base=True, network_train_unet_only=True, shuffle_caption=True, max_train_epochs=1)
    prepared = prepare_run(cfg, log=lambda *_: None)
    frozen = [m for m in [*prepared.base.unet.modules(), *prepared.base.text_encoders[0].modules()]
              if type(m) in (torch.nn.Linear, torch.nn.Conv2d) and not m.weight.requires_grad]
    assert frozen and all(m.weight.dtype == FP8 for m in frozen)
    embeddings = [m for m in prepared.base.text_encoders[0].modules() if isinstance(m, torch.nn.Embedding)]
    assert embeddings and all(m.weight.dtype == torch.bfloat16 for m in embeddings)   # lookups need them wide
    assert set(_saved_weight_copies(prepared)) == {FP8}   # the backward upcasts again
    plain = prepare_run(cfg.replace(fp8_base=False, output_dir=str(tmp_path / "bf16")), log=lambda *_: None)
    assert torch.bfloat16 in _saved_weight_copies(plain)   # what the custom backward saves


def test_fp8_base_trains_like_bf16(tiny_checkpoints, dataset, tmp_path):
    cfg = make_config(tiny_checkpoints["sd2"], dataset, tmp_path / "fp8", mixed_precision="bf16",
                      fp8_base=True, max_train_epochs=3, save_every_n_epochs=None, learning_rate=1e-2,
                      save_state=False)
    fp8, _ = run(cfg)
    bf16, _ = run(cfg.replace(fp8_base=False, output_dir=str(tmp_path / "bf16")))
    assert fp8.epoch_losses[-1] < 0.9 * fp8.epoch_losses[0], fp8.epoch_losses
    assert abs(fp8.epoch_losses[-1] - bf16.epoch_losses[-1]) < 0.15 * bf16.epoch_losses[-1]
    tensors, meta = read(fp8.files[-1])
    assert check_lora_state(tensors, meta) == [] and meta["ss_fp8_base"] == "True"


@pytest.mark.parametrize("family,extra", [
    ("sd1", dict(algo="loha", conv_dim=4, conv_alpha=2, module_dropout=0.1, learning_rate=3e-2)),
    ("sd2", dict(algo="lokr", dora_wd=True, learning_rate=3e-2)),
])
def test_lycoris_runs_learn_and_save_what_the_hosts_read(family, extra, tiny_checkpoints, dataset, tmp_path):
    cfg = make_config(tiny_checkpoints[family], dataset, tmp_path / "out", max_train_epochs=3,
                      save_every_n_epochs=None, save_state=False, **extra)
    result, _ = run(cfg)
    assert result.epoch_losses[-1] < 0.9 * result.epoch_losses[0], result.epoch_losses
    tensors, meta = read(result.files[-1])
    assert check_lora_state(tensors, meta) == [] and meta["ss_network_module"] == "lycoris.kohya"
    info = summarize(tensors)
    assert set(info["kinds"]) == {{"loha": "LoHa", "lokr": "LoKr"}[extra["algo"]]}
    assert bool(info["dora_modules"]) == bool(extra.get("dora_wd"))
    # the trained file as each host merges it = the trained layers (loaded from the same file) in our network
    from test_lora_types import outputs
    from webui_merge import merge

    from lora_trainer.config.schema import TrainConfig
    from lora_trainer.lora.file_hooks import module_table
    from lora_trainer.train.network_setup import build_run_network

    ours = load_base_model(tiny_checkpoints[family])
    build_run_network(TrainConfig(network_weights=result.files[-1], dim_from_weights=True, algo=extra["algo"],
                                  dora_wd=bool(extra.get("dora_wd"))), ours)
    for model in [ours.unet, *ours.text_encoders]:
        model.eval()
    want = outputs(ours.unet, ours.text_encoders, family)
    for host in ("a1111", "forge"):
        base = load_base_model(tiny_checkpoints[family])
        merge(tensors, module_table(family, base.unet, base.text_encoders), host)
        for got, expected in zip(outputs(base.unet, base.text_encoders, family), want):
            torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
