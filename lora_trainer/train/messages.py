"""A failed run's sentences by key (English; Chinese in ``text/zh_CN.json``): the loss turned NaN, the GPU ran
out of memory, the logs could not be written; and the advice for each, built from the run's own settings."""
from __future__ import annotations

from ..text.messages import SEMICOLON, Joined, msg, register

ADAPTIVE = ("prodigy", "dadaptadam", "dadaptation", "dadaptlion")

register({
    "train.log.reading": "Checking that {count} images can be read…",
    "train.log.caching_disk": "Caching latents of {count} images (disk)…",
    "train.log.caching_memory": "Caching latents of {count} images (memory)…",
    "train.log.validation_holdout": "Validation loss on {count} held-out image(s)…",
    "train.log.validation_training": "Validation loss on {count} training image(s)…",
})
register({
    "train.nan": "the loss became {value} at step {step} (epoch {epoch}); training stopped and nothing was saved "
                 "from this state. Files saved before it are kept: {files}",
    "train.none_yet": "none yet",
    "train.nan.lower_lr": "lower unet_lr/text_encoder_lr (now {unet}/{text}), e.g. by a factor of 2–10",
    "train.nan.bf16": "use mixed_precision bf16 (fp16 overflows more easily)",
    "train.nan.bf16_sdxl": "use mixed_precision bf16 (fp16 overflows more easily, and SDXL's VAE produces NaN in "
                           "fp16)",
    "train.nan.grad_norm": "set max_grad_norm 1.0",
    "train.nan.adaptive": "{optimizer} expects learning rates near 1.0; or switch to AdamW",
    "train.nan.resume": "resume from the last good -state folder once a setting is changed",
    "train.oom.preparing": "the GPU ran out of memory while preparing the model",
    "train.oom.training": "the GPU ran out of memory during training",
    "train.oom.batch": "lower train_batch_size (now {batch})",
    "train.oom.checkpointing": "turn on gradient_checkpointing",
    "train.oom.cache": "turn on cache_latents",
    "train.oom.8bit": "use optimizer AdamW8bit",
    "train.oom.size": "lower the resolution (now {resolution}) or network_dim (now {dim})",
    "train.oom.preset": "or pick the preset for your GPU's memory",
    "train.write_failed": "could not write to {folder}: {reason}",
    "train.for_optimizer": "the {name} optimizer",
    "train.for_optimizer_attr": "the {name} optimizer (no {attr} in the installed version)",
    "train.package_broken": "The package '{package}' needed for the {name} optimizer is installed but failed to "
                            "load: {error}",
    "train.package_broken.advice": "reinstall it, or choose AdamW or another optimizer",
    "train.resume_settings": "the state in {folder} was saved with other settings: {changes}",
    "train.resume_settings.advice": "resume with the same settings as the run that saved it; to go on with another "
                                    "optimizer, learning rate or dataset, start a new run from its LoRA file instead "
                                    "(network_weights, resume empty)",
    "train.resume_network": "the state in {folder} does not fit this model/network ({error})",
    "train.resume_network.advice": "resume with the same base model and network settings",
    "train.fp16_cpu": "mixed_precision fp16 needs an NVIDIA GPU, and none is available",
    "train.fp16_cpu.advice": "use mixed_precision bf16 or no",
    "train.skipped": "skipped {path}: {why}",
    "train.none_readable": "none of the training images in {folder} could be read",
    "train.none_readable.advice": "see the skipped files above; re-save them as PNG or JPEG",
    "train.no_steps": "the dataset in {folder} gives no training steps",
    "train.no_steps.advice": "check the repeats in the folder names and the batch size",
    "train.zero_snr_eps": "zero_terminal_snr is meant for v-prediction models, and this model predicts the noise "
                          "(epsilon): at the last timestep its input is the very noise it is to predict; turn "
                          "zero_terminal_snr off unless the model was made for it",
    "train.weights_unet_only": "network_weights: {name} has no text-encoder layers, so with dim_from_weights only "
                               "the UNet trains",
    "state.pickle": "{folder}/{name}.pt holds more than tensors and numbers, so it is not loaded",
    "state.pickle.advice": "resume from a state this version saved, or start the run again",
    "state.not_state": "{folder} is not a training state folder ({file} is missing)",
    "state.not_state.advice": "choose a folder ending in -state that a run saved next to its LoRA files",
    "state.not_object": "{file} is not a JSON object",
    "state.unreadable": "the training state in {folder} cannot be read: {error}",
    "state.unreadable.advice": "resume from an earlier -state folder of the same run",
    "state.resume_processes": "the state in {folder} was saved by a run of {saved} process(es); this run has {now}",
    "state.resume_processes.advice": "resume it with {saved} process(es) (accelerate launch --num_processes {saved}; "
                                     "one process: python -m lora_trainer train): the global batch, the steps per "
                                     "epoch and the learning-rate schedule depend on it. To go on with another "
                                     "count, start a new run from its LoRA file (network_weights, resume empty)",
    "optim.bad_value": "optimizer_args: cannot read the value of '{key_name}' in '{arg}'",
    "optim.bad_value.advice": "write numbers like 0.01, lists like betas=0.9,0.99, and True/False",
    "optim.not_pair": "optimizer_args: '{arg}' is not in the form key=value",
    "optim.not_pair.advice": "write e.g. weight_decay=0.01",
    "optim.bad_name": "optimizer_args: '{key_name}' in '{arg}' is not a valid argument name",
    "optim.reserved": "optimizer_args: '{arg}' cannot be set here",
    "optim.reserved.advice": "set the learning rate with learning_rate / unet_lr / text_encoder_lr",
    "optim.no_setting": "optimizer_args: {name} has no setting '{key_name}'; it accepts: {accepted}",
    "optim.nothing": "there are no trainable parameters to optimize",
    "optim.nothing.advice": "train at least the UNet or the text encoder",
    "optim.adafactor_per_tensor": "its Adafactor moments are kept per tensor",
    "optim.adafactor_stack": "its Adafactor moments hold {saved} tensors of a shape, this run has {count}",
    "optim.warmup_init": "Adafactor: warmup_init=True needs relative_step=True, so relative_step was turned on",
    "optim.relative_step": "Adafactor with relative_step=True finds its own step size: the learning rate is ignored; "
                           "the 'adafactor' scheduler is used",
    "optim.relative_step_groups": "Adafactor with relative_step=True finds its own step size: the learning rate and "
                                  "the UNet / text-encoder learning rates are ignored; the 'adafactor' scheduler is "
                                  "used",
    "optim.one_lr": "{name} needs one learning rate for all parts, but got {lrs} (UNet and text encoder)",
    "optim.one_lr.advice": "set unet_lr and text_encoder_lr to the same value (about 1.0), or leave them empty",
    "optim.adaptive_lr": "{name} finds its own step size; its learning rate is a multiplier and is usually about 1.0 "
                         "(now {lr})",
    "optim.paged_cpu": "{name}: paging needs an NVIDIA GPU; it behaves like the non-paged version here",
    "optim.lr_positive": "learning_rate must be a number above 0 for {name} (got {lr})",
    "optim.refused": "optimizer_args for {name} were not accepted: {error}",
    "optim.refused.advice": "check the values in optimizer_args",
    "sched.warmup_kind": "lr_warmup_steps must be a number of steps (e.g. 100) or a fraction below 1 (e.g. 0.05), "
                         "not {value}",
    "sched.warmup_value": "lr_warmup_steps {value} is neither a whole number of steps nor a fraction below 1",
    "sched.warmup_value.advice": "write e.g. 100 (steps) or 0.05 (5% of the steps)",
    "sched.not_number": "lr_scheduler '{name}': '{text}' is not a number",
    "sched.steps": "the number of training steps must be a whole number of at least 1, not {value}",
    "sched.cycles": "lr_scheduler_num_cycles must be a whole number of at least 1, not {value}",
    "sched.power": "lr_scheduler_power must be a number of at least 0, not {value}",
    "sched.replaced": "Adafactor with relative_step=True sets its own step size: lr_scheduler '{name}' is replaced by "
                      "'adafactor'",
    "sched.adafactor_only": "lr_scheduler 'adafactor' only works with optimizer_type Adafactor and optimizer_args "
                            "relative_step=True",
    "sched.adafactor_only.advice": "choose another scheduler, e.g. constant_with_warmup",
    "sched.constant_warmup": "lr_warmup_steps is {warmup} but lr_scheduler is 'constant': using "
                             "'constant_with_warmup'",
    "sched.refused": "lr_scheduler '{name}' cannot be used with these settings: {error}",
    "train.resume_optimizer": "The optimizer state in {folder} does not fit this run's optimizer ({error}): it was "
                              "saved with its weights in another layout, e.g. by an older version of this "
                              "extension or with another number of GPUs.",
    "train.resume_optimizer.advice": "Start the run again from the beginning, or resume it with the version "
                                     "and the GPUs that saved this state.",
    "train.graphs_off": "CUDA graphs are off for this run: {reasons}",
    "train.graphs.old_torch": "torch {version} (graph capture of the step needs 2.4 or newer)",
    "train.graphs.no_cuda": "no CUDA device",
    "train.graphs.ddp": "several processes (DDP)",
    "train.graphs.fp16": "fp16 loss scaling reads the host",
    "train.graphs.accumulation": "gradient accumulation",
    "train.graphs.dropout": "LoRA dropout with gradient checkpointing (the recomputation must redraw the same masks)",
    "train.graphs.optimizer": "optimizer {name} (only AdamW is captured)",
    "train.skipped_error": "skipped {error}",
    "train.mask_latents": "the loss masks {masks} do not fit the latents {size}: this VAE does not shrink pictures 8 "
                          "times",
    "train.mask_latents.advice": "turn alpha_mask and masked_loss off for this model",
    "train.fp8_torch": "fp8_base needs torch 2.1 or newer (this is {version})",
    "train.fp8_torch.advice": "update torch, or turn fp8_base off",
    "train.val.no_folder": "the held-out folder {folder} does not exist",
    "train.val.no_folder.advice": "choose a folder with a few images that were NOT used for training",
    "train.val.no_images": "no images in the held-out folder {folder}",
    "train.val.no_images.advice": "put a few PNG/JPEG images (with .txt captions) into it",
    "train.val.nothing": "no images to compute a validation loss on",
    "train.val.nothing.advice": "add training images, or choose a held-out folder with images",
    "train.val.timesteps": "validation timesteps {steps} must lie in 0…{last}",
    "train.val.timesteps.advice": "leave the timesteps at their default",
})


def nan_advice(cfg, family: str) -> Joined:
    """What to change after the loss turned NaN or infinite, from the run's settings."""
    tips = [msg("train.nan.lower_lr", unet=f"{cfg.effective_unet_lr:g}", text=f"{cfg.effective_text_encoder_lr:g}")]
    if cfg.mixed_precision == "fp16":
        tips.append(msg("train.nan.bf16_sdxl" if family == "sdxl" else "train.nan.bf16"))
    if not cfg.max_grad_norm:
        tips.append(msg("train.nan.grad_norm"))
    if cfg.optimizer_type.lower() in ADAPTIVE:
        tips.append(msg("train.nan.adaptive", optimizer=cfg.optimizer_type))
    tips.append(msg("train.nan.resume"))
    return Joined(tips, SEMICOLON)


def oom_advice(cfg) -> Joined:
    """What to change after the GPU ran out of memory, from the run's settings."""
    tips = []
    if cfg.train_batch_size > 1:
        tips.append(msg("train.oom.batch", batch=cfg.train_batch_size))
    if not cfg.gradient_checkpointing:
        tips.append(msg("train.oom.checkpointing"))
    if not cfg.cache_latents:
        tips.append(msg("train.oom.cache"))
    if "8bit" not in cfg.optimizer_type.lower():
        tips.append(msg("train.oom.8bit"))
    tips.append(msg("train.oom.size", resolution=cfg.resolution, dim=cfg.network_dim))
    tips.append(msg("train.oom.preset"))
    return Joined(tips, SEMICOLON)
