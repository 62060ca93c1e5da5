"""The step's noise and loss options as kohya defines them: zero terminal SNR, multires noise, input
perturbation, debiased estimation, and the masked loss (CPU, no model: a stand-in UNet)."""
from __future__ import annotations

import random
from types import SimpleNamespace

import pytest

torch = pytest.importorskip("torch")

from lora_trainer.train import noise as noise_math  # noqa: E402
from lora_trainer.train.step import Batch, StepInputs, StepModels, loss_from_inputs, sample_inputs  # noqa: E402


def sd_betas() -> torch.Tensor:   # SD's scaled-linear schedule
    return torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=torch.float32) ** 2


def test_zero_terminal_snr_ends_in_pure_noise_and_keeps_the_first_step():
    betas = sd_betas()
    before = (1 - betas).cumprod(0)
    after = noise_math.zero_terminal_snr(betas)
    assert after[-1] == 0 and before[-1] > 0.004
    torch.testing.assert_close(after[0], before[0])
    assert bool((after[1:] <= after[:-1]).all())
    # Lin et al.'s closed form: sqrt(ᾱ) shifted to end at 0 and scaled to keep its start
    root = before.sqrt()
    expected = ((root - root[-1]) * root[0] / (root[0] - root[-1])) ** 2
    torch.testing.assert_close(after, expected, atol=2e-6, rtol=1e-4)


def test_multires_noise_keeps_the_shape_and_unit_spread():
    gen = torch.Generator().manual_seed(0)
    base = torch.randn(4, 4, 32, 24, generator=gen)
    rng = random.Random(1)
    noise = noise_math.pyramid_noise(base.clone(), 8, 0.8, rng, gen)
    assert noise.shape == base.shape
    assert float(noise.std()) == pytest.approx(1.0, abs=1e-5)
    # coarse scales add low frequencies: each image's mean varies far more than white noise's does
    assert float(noise.mean(dim=(2, 3)).std()) > 3 * float(base.mean(dim=(2, 3)).std())
    assert rng.random() != random.Random(1).random()   # the scale factors came from the run's host RNG


def step_models(**options) -> tuple[StepModels, torch.Tensor]:
    """Models whose "UNet" returns one tensor that requires grad, so that the loss's gradient per pixel shows."""
    prediction = torch.zeros(2, 4, 8, 8, requires_grad=True)
    unet = lambda noisy, t, **kwargs: SimpleNamespace(sample=prediction)   # noqa: E731
    models = StepModels(family="sd1", unet=unet, text_encoders=[], tokenizers=[],
                        alphas_cumprod=(1 - sd_betas()).cumprod(0), num_train_timesteps=1000, v_prediction=False,
                        train_text_encoder=False, clip_skip=None, min_snr_gamma=None, noise_offset=None,
                        prompt_cache={}, **options)
    return models, prediction


def inputs(**extra) -> StepInputs:
    gen = torch.Generator().manual_seed(2)
    return StepInputs(latents=torch.randn(2, 4, 8, 8, generator=gen), noise=torch.randn(2, 4, 8, 8, generator=gen),
                      timesteps=torch.tensor([10, 990]), loss_weights=torch.ones(2),
                      encoder_hidden_states=torch.zeros(2, 77, 8), **extra)


def test_a_masked_area_gives_no_gradient_and_the_loss_is_kohyas():
    models, prediction = step_models()
    mask = torch.ones(2, 1, 8, 8)
    mask[:, :, :, :4] = 0          # the left half is masked out
    mask[1, :, 0, 4] = 0.5         # a grey pixel counts half
    x = inputs(masks=mask)
    loss = loss_from_inputs(models, x)
    loss.backward()
    grad = prediction.grad
    assert float(grad[:, :, :, :4].abs().max()) == 0.0 and float(grad[:, :, :, 4:].abs().min()) > 0
    torch.testing.assert_close(grad[1, :, 0, 4], grad[1, :, 1, 4] * 0.5 * x.noise[1, :, 0, 4] / x.noise[1, :, 1, 4])
    # kohya: the squared error times the mask, averaged over every pixel (masked ones count as 0)
    torch.testing.assert_close(loss, (x.noise.pow(2) * mask).mean())


def test_debiased_estimation_and_min_snr_read_the_schedule_before_zero_terminal_snr():
    alphas = (1 - sd_betas()).cumprod(0)
    t = torch.tensor([0, 500, 999])
    snr = alphas[t] / (1 - alphas[t])
    torch.testing.assert_close(noise_math.debiased_weights(alphas, t, False), 1 / snr.clamp(max=1000).sqrt())
    torch.testing.assert_close(noise_math.debiased_weights(alphas, t, True), 1 / (snr.clamp(max=1000) + 1))
    zero = noise_math.zero_terminal_snr(sd_betas())
    models, _ = step_models(debiased_estimation=True, snr_alphas_cumprod=alphas)
    models.alphas_cumprod, models.min_snr_gamma = zero, 5.0
    loss = loss_from_inputs(models, inputs())   # the last timestep's SNR is 0 in the rescaled schedule
    assert torch.isfinite(loss)
    plain, _ = step_models()
    expected = noise_math.debiased_weights(alphas, torch.tensor([10, 990]), False) * \
        noise_math.min_snr_weights(alphas, torch.tensor([10, 990]), 5.0, False)
    assert float(loss.detach()) == pytest.approx(float(inputs().noise.pow(2).mean(dim=(1, 2, 3)).mul(expected).mean()))
    assert float(loss_from_inputs(plain, inputs()).detach()) != pytest.approx(float(loss.detach()))


def test_input_perturbation_noises_the_input_but_not_the_target():
    models, _ = step_models(ip_noise_gamma=0.1, multires_noise_iterations=4, host_rng=random.Random(3))
    batch = Batch(latents=torch.randn(2, 4, 8, 8), captions=["a", "b"], loss_weights=torch.ones(2),
                  original_sizes=[(64, 64)] * 2, crops=[(0, 0)] * 2, target_sizes=[(64, 64)] * 2,
                  masks=torch.ones(2, 1, 8, 8))
    models.prompt_cache = {"a": {"encoder_hidden_states": torch.zeros(77, 8)},
                           "b": {"encoder_hidden_states": torch.zeros(77, 8)}}
    x = sample_inputs(models, batch, torch.Generator().manual_seed(0))
    gap = x.input_noise - x.noise
    assert 0.05 < float(gap.std()) < 0.15                 # γ = 0.1
    assert float(x.noise.std()) == pytest.approx(1.0, abs=1e-5)   # multires noise, rescaled
    assert x.masks is batch.masks and len(x.tensors()) == 7   # the graph's static inputs include both
    seen = {}

    def unet(noisy, t, **kwargs):
        seen["noisy"] = noisy
        return SimpleNamespace(sample=x.noise)
    models.unet = unet
    loss = loss_from_inputs(models, x)
    assert float(loss) == 0.0   # the target is the plain noise
    expected = noise_math.add_noise(models.alphas_cumprod, x.latents, x.input_noise, x.timesteps)
    torch.testing.assert_close(seen["noisy"], expected)


def test_every_input_the_loss_reads_is_a_static_input_of_the_captured_step():
    """A CUDA graph replays on its static input tensors, refilled with ``tensors()`` each step: a tensor the
    loss reads but ``tensors()`` leaves out would keep the capture step's values. Here a step's inputs are
    copied into another step's, as a replay does, with every option that adds an input on (masks, input
    perturbation, 2-chunk token ids of a trained text encoder) and the loss must follow the copy."""
    from lora_trainer.lora.network import build_network
    from lora_trainer.models.tiny import build_tiny_components

    parts = build_tiny_components("sd1")
    network = build_network("sd1", parts["unet"], [parts["text_encoder"]], rank=4, alpha=4)
    with torch.no_grad():
        for p in network.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    models = StepModels(family="sd1", unet=parts["unet"], text_encoders=[parts["text_encoder"]],
                        tokenizers=[parts["tokenizer"]], alphas_cumprod=noise_math.zero_terminal_snr(sd_betas()),
                        num_train_timesteps=1000, v_prediction=True, train_text_encoder=True, clip_skip=None,
                        min_snr_gamma=5.0, noise_offset=0.05, max_token_length=150, multires_noise_iterations=3,
                        ip_noise_gamma=0.1, debiased_estimation=True, snr_alphas_cumprod=(1 - sd_betas()).cumprod(0),
                        host_rng=random.Random(0))

    def batch(seed, caption):
        gen = torch.Generator().manual_seed(seed)
        return Batch(latents=torch.randn(2, 4, 8, 8, generator=gen), captions=[caption, "zkz"],
                     loss_weights=torch.ones(2), original_sizes=[(64, 64)] * 2, crops=[(0, 0)] * 2,
                     target_sizes=[(64, 64)] * 2, masks=torch.rand(2, 1, 8, 8, generator=gen))
    first = sample_inputs(models, batch(1, "red " * 100), torch.Generator().manual_seed(1))
    second = sample_inputs(models, batch(2, "blue circle"), torch.Generator().manual_seed(2))
    assert first.input_ids.shape == (2, 2, 77) and first.input_noise is not None and first.masks is not None
    static = StepInputs(**{k: (v.clone() if isinstance(v, torch.Tensor) else v) for k, v in vars(first).items()})
    torch._foreach_copy_(static.tensors(), second.tensors())   # what GraphedStep.step does before a replay
    with torch.no_grad():
        replayed, direct, captured = (loss_from_inputs(models, x) for x in (static, second, first))
    torch.testing.assert_close(replayed, direct)
    assert not torch.allclose(replayed, captured)
