"""The step's inputs: cached encoder outputs, or the captions' token ids that the step encodes
itself, so that trained text encoders run inside a captured CUDA graph (tiny SDXL, CPU)."""
from __future__ import annotations

import warnings

import pytest

torch = pytest.importorskip("torch")

from lora_trainer.lora.network import build_network  # noqa: E402
from lora_trainer.models.tiny import build_tiny_components  # noqa: E402
from lora_trainer.train.checkpointing import text_encoder_checkpointing  # noqa: E402
from lora_trainer.train.step import Batch, StepModels, loss_from_inputs, sample_inputs  # noqa: E402

CAPTIONS = ["zkz, red circle", "zkz, blue square, outdoors"]


def step_models(train_text_encoder: bool, cached: bool):
    parts = build_tiny_components("sdxl")
    encoders = [parts["text_encoder"], parts["text_encoder_2"]]
    torch.manual_seed(1)   # the LoRA's initial weights too
    network = build_network("sdxl", parts["unet"], encoders if train_text_encoder else [], rank=4, alpha=4)
    with torch.no_grad():
        for p in network.parameters():
            p.add_(torch.randn_like(p) * 0.05)   # lora_B starts at zero: give every weight a gradient path
    scheduler = parts["scheduler"]
    models = StepModels(
        family="sdxl", unet=parts["unet"], text_encoders=encoders,
        tokenizers=[parts["tokenizer"], parts["tokenizer_2"]],
        alphas_cumprod=scheduler.alphas_cumprod.float(), num_train_timesteps=scheduler.config.num_train_timesteps,
        v_prediction=False, train_text_encoder=train_text_encoder, clip_skip=None, min_snr_gamma=None,
        noise_offset=None, prompt_cache={} if cached else None)
    return models, network


def batch() -> Batch:
    latents = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    return Batch(latents=latents, captions=list(CAPTIONS), loss_weights=torch.ones(2),
                 original_sizes=[(64, 64), (80, 64)], crops=[(0, 0), (8, 0)], target_sizes=[(64, 64)] * 2)


def test_uncached_inputs_are_token_ids_and_give_the_cached_loss():
    cached, _ = step_models(train_text_encoder=False, cached=True)
    uncached, _ = step_models(train_text_encoder=False, cached=False)
    with torch.no_grad():
        a = sample_inputs(cached, batch(), torch.Generator().manual_seed(3))
        b = sample_inputs(uncached, batch(), torch.Generator().manual_seed(3))
        loss_a, loss_b = loss_from_inputs(cached, a), loss_from_inputs(uncached, b)
    assert a.input_ids is None and a.encoder_hidden_states is not None
    assert b.encoder_hidden_states is None and b.text_embeds is None
    assert b.input_ids.shape == b.input_ids_2.shape == (2, 77) and b.input_ids.dtype == torch.long
    assert len(b.tensors()) == len(a.tensors())   # what a graph copies in: token ids instead of outputs
    torch.testing.assert_close(loss_b, loss_a)


def test_trained_text_encoders_get_their_gradients_inside_the_step():
    models, network = step_models(train_text_encoder=True, cached=False)
    inputs = sample_inputs(models, batch(), torch.Generator().manual_seed(3))
    assert not any(t.requires_grad for t in inputs.tensors())   # static inputs: nothing differentiable yet
    loss_from_inputs(models, inputs).backward()
    for prefix in ("lora_te1", "lora_te2", "lora_unet"):
        # SDXL reads the penultimate layers: the encoders' last layers get no gradient
        got = [p.grad for p in network.parameters((prefix,)) if p.grad is not None]
        assert got and sum(float(g.abs().sum()) for g in got) > 0, prefix


def text_encoder_gradients(encoder, network, ids) -> list[torch.Tensor]:
    out = encoder(ids, output_hidden_states=True)
    (out.hidden_states[-2].float().pow(2).mean() + out[0].float().pow(2).mean()).backward()
    params = network.parameters(("lora_te2",))
    grads = [p.grad.detach().clone() for p in params]
    for p in network.parameters():
        p.grad = None
    return grads


def test_text_encoder_checkpointing_keeps_the_gradients():
    parts = build_tiny_components("sdxl")
    encoder = parts["text_encoder_2"]
    network = build_network("sdxl", None, [parts["text_encoder"], encoder], rank=4, alpha=4)
    with torch.no_grad():
        for p in network.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    encoder.train()
    ids = parts["tokenizer_2"](CAPTIONS, padding="max_length", max_length=77, return_tensors="pt").input_ids
    plain = text_encoder_gradients(encoder, network, ids)
    text_encoder_checkpointing(encoder, keep_rng=False)
    # transformers' own checkpointing, or (transformers before 4.35) ours wrapping each layer's forward
    layers = encoder.text_model.encoder.layers
    assert encoder.is_gradient_checkpointing or all("forward" in layer.__dict__ for layer in layers)
    runs = []   # a checkpointed layer runs its forward again in the backward pass
    hook = encoder.text_model.encoder.layers[0].mlp.register_forward_pre_hook(lambda *_: runs.append(1))
    with warnings.catch_warnings():   # transformers before 4.35 left the kind of checkpoint to torch's default
        warnings.filterwarnings("error", message=".*use_reentrant.*")
        checkpointed = text_encoder_gradients(encoder, network, ids)
    hook.remove()
    assert len(runs) == 2
    assert sum(float(g.abs().sum()) for g in checkpointed) > 0
    for a, b in zip(plain, checkpointed):
        torch.testing.assert_close(b, a)
