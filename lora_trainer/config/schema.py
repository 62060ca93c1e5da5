"""The one source of truth for training parameters.

``TrainConfig`` field names follow kohya sd-scripts' ``train_network.py`` so that a
kohya TOML file loads as is. Each field carries metadata (label, help text, group,
choices, limits) from which the CLI flags, the TOML files and the WebUI form are
derived. This module must not import torch: it runs under the WebUI's Python
before any heavy import.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any, Optional

from ..errors import ConfigError
from ..text.messages import msg
from .checks import MAX_RESOLUTION
from .network_args import ALGOS
from .option import (BASIC, LR_SCHEDULERS, MAX_EPOCHS, MAX_SEED, MAX_STEPS, MIXED_PRECISIONS, OPTIMIZER_TYPES,
                     SAVE_PRECISIONS, opt)

@dataclass
class TrainConfig:
    # --- model -------------------------------------------------------------------------
    pretrained_model_name_or_path: str = opt(
        "", "Base model: a .safetensors/.ckpt checkpoint (SD1.x, SD2.x or SDXL) or a diffusers folder.",
        group=BASIC, label="Base model", section="model", path="file")
    v_parameterization: Optional[bool] = opt(
        None, "Train with v-prediction. Leave empty to decide from the model (SD2.x 768 models use it).",
        label="v-prediction", section="model")
    clip_skip: Optional[int] = opt(
        None, "Use the output of this text-encoder layer counted from the end (2 for most anime SD1.5 models). "
              "Ignored for SDXL.", label="CLIP skip", minimum=1, maximum=12, section="model",
        ss="ss_clip_skip", ss_form="count_or_none")
    # --- data --------------------------------------------------------------------------
    train_data_dir: str = opt(
        "", "Folder that holds one sub-folder per concept, named <repeats>_<name> (e.g. 10_mychar).",
        group=BASIC, label="Training images folder", section="data", path="folder")
    reg_data_dir: str = opt(
        "", "Optional regularization images, same <repeats>_<name> layout. Leave empty for none.",
        label="Regularization folder", section="data", path="folder")
    caption_extension: str = opt(".txt", "Extension of the caption file next to each image.",
                                 label="Caption extension", section="data")
    resolution: str = opt("512", "Training size in pixels: one number (512) or width,height (768,512). "
                                 "Multiples of 64.", group=BASIC, label="Resolution", section="data",
                                 ss="ss_resolution", ss_form="resolution")
    enable_bucket: bool = opt(True, "Group images by aspect ratio instead of cropping all to a square.",
                              label="Aspect-ratio buckets", section="data", ss="ss_enable_bucket", ss_form="bool")
    min_bucket_reso: int = opt(256, "Smallest bucket side in pixels.", minimum=64, maximum=MAX_RESOLUTION,
                               section="data")
    max_bucket_reso: int = opt(1024, "Largest bucket side in pixels.", minimum=64, maximum=MAX_RESOLUTION,
                               section="data")
    bucket_reso_steps: int = opt(64, "Bucket sides are multiples of this (64 recommended).", minimum=8,
                                 section="data")
    bucket_no_upscale: bool = opt(False, "Never enlarge small images to fill a bucket.", section="data")
    shuffle_caption: bool = opt(False, "Shuffle comma-separated tags every step (keep_tokens stay first).",
                                label="Shuffle tags", section="data", ss="ss_shuffle_caption", ss_form="bool")
    keep_tokens: int = opt(0, "Number of leading tags (e.g. the trigger word) that are never shuffled or "
                              "dropped.", label="Keep first N tags", minimum=0, section="data",
                              ss="ss_keep_tokens", ss_form="int")
    caption_dropout_rate: float = opt(0.0, "Probability that a whole caption is left empty for a step.",
                                      minimum=0.0, maximum=1.0, section="data",
                                      ss="ss_caption_dropout_rate", ss_form="number")
    caption_tag_dropout_rate: float = opt(0.0, "Probability that each (not kept) tag is left out for a step.",
                                          minimum=0.0, maximum=1.0, section="data")
    max_token_length: int = opt(75, "Longest caption the text encoder reads, in tokens: 75, 150 or 225. Longer "
                                    "limits encode the caption in chunks of 75 tokens, as kohya does; what is beyond "
                                    "the limit is cut, and the start of a run lists those captions.",
                                label="Caption token limit", minimum=75, maximum=225, section="data",
                                ss="ss_max_token_length", ss_form="count_or_none",
                                ss_value="kohya_max_token_length")
    prior_loss_weight: float = opt(1.0, "Loss weight of regularization images.", minimum=0.0, section="data",
                                   ss="ss_prior_loss_weight", ss_form="number")
    cache_latents: bool = opt(True, "Encode every image with the VAE once before training (faster, less "
                                    "memory).", label="Cache latents", section="data")
    cache_latents_to_disk: bool = opt(False, "Keep the cached latents on disk so the next run starts faster.",
                                      section="data")
    flip_aug: bool = opt(False, "Mirror images left-right at random, half of the time (two latents cached per "
                                "image). Not for subjects that are not symmetric: a side parting, text, a one-sided "
                                "accessory.", label="Random horizontal flip", section="data", ss="ss_flip_aug",
                         ss_form="bool")
    color_aug: bool = opt(False, "Shift hue or brightness a little at random (kohya's weak colour augmentation). "
                                 "Latents are then encoded at every step instead of cached.",
                          label="Colour augmentation", section="data", ss="ss_color_aug", ss_form="bool")
    random_crop: bool = opt(False, "Cut each image out of its resized picture at a random place instead of the "
                                   "centre. Latents are then encoded at every step instead of cached.",
                            label="Random crop", section="data", ss="ss_random_crop", ss_form="bool")
    alpha_mask: bool = opt(False, "Use each image's transparency as the loss mask: transparent pixels are not "
                                  "trained on, so a cut-out trains only its subject. Images without transparency "
                                  "train on the whole picture.", label="Transparency masks the loss",
                           section="data", ss="ss_alpha_mask", ss_form="bool")
    masked_loss: bool = opt(False, "Train only where a mask image is white (grey: partly): one mask per training "
                                   "image in the mask folder. With alpha_mask instead, the transparency is the mask.",
                            label="Masked loss", section="data", ss="ss_masked_loss", ss_form="bool")
    conditioning_data_dir: str = opt("", "Mask folder for masked_loss: for each training image a picture of the same "
                                         "name (any image type) and size, in <mask folder>/<concept folder>/ or in "
                                         "the mask folder itself. White is trained, black is not.",
                                     label="Mask folder", section="data", path="folder")
    # --- output ------------------------------------------------------------------------
    output_dir: str = opt("", "Folder the LoRA files, training states and logs are written to.",
                          group=BASIC, label="Output folder", section="output", path="folder")
    output_name: str = opt("lora", "File name of the LoRA without extension; epochs add -000001 etc.",
                           group=BASIC, label="Output name", section="output", ss="ss_output_name")
    save_every_n_epochs: Optional[int] = opt(1, "Save a LoRA file every N epochs (empty: only at the end).",
                                             group=BASIC, label="Save every N epochs", minimum=1,
                                             section="output")
    save_precision: str = opt("fp16", "Number format of the saved LoRA (fp16 is what everyone shares).",
                              choices=SAVE_PRECISIONS, section="output")
    save_state: bool = opt(True, "Also save a resumable training state with each saved epoch, in the run's "
                                 "folder beside its logs.", section="output")
    save_last_n_epochs_state: Optional[int] = opt(
        1, "Keep the training states of the last N saved epochs only (the newest is enough to resume; each "
           "takes about twice the LoRA's size). Empty: keep every state.", minimum=1, section="output")
    resume: str = opt("", "Continue from a saved training state folder (…-state).", section="output",
                      path="folder")
    logging_dir: str = opt("", "Where each run's folder goes: loss logs, training states, preview images "
                               "(default: <output_dir>/logs; in a WebUI its lora_trainer/runs folder, so "
                               "that the Lora tab lists only LoRA files).", section="output", path="folder")
    training_comment: str = opt("", "A note stored in the LoRA file's metadata.", section="output",
                                ss="ss_training_comment")
    # --- network -----------------------------------------------------------------------
    network_dim: int = opt(32, "LoRA rank: capacity of the LoRA. 8–32 for characters, 32–128 for styles.",
                           group=BASIC, label="Network rank (dim)", minimum=1, maximum=1024, section="network",
                           ss="ss_network_dim", ss_form="int")
    network_alpha: float = opt(16.0, "Scales the LoRA's effect: strength = alpha / rank. Usually half the rank "
                                     "or 1.", group=BASIC, label="Network alpha", minimum=0.0,
                               section="network", ss="ss_network_alpha", ss_form="number")
    conv_dim: Optional[int] = opt(None, "Rank for the 3×3 convolutions (LoCon). Empty: convolutions are not "
                                        "trained.", minimum=1, maximum=1024, section="network")
    conv_alpha: Optional[float] = opt(None, "Alpha for the convolution LoRA (default: conv_dim).", minimum=0.0,
                                      section="network")
    network_args: list = opt([], "Extra network arguments as key=value (conv_dim, conv_alpha, rank_dropout, "
                                 "module_dropout).", section="network",
                                 ss="ss_network_args", ss_form="network_args", ss_value="network_kwargs")
    network_dropout: Optional[float] = opt(None, "Dropout on the LoRA's inner neurons (0.1–0.3 fights "
                                                 "over-fitting).", minimum=0.0, maximum=1.0, section="network",
                                                 ss="ss_network_dropout", ss_form="optional_number")
    rank_dropout: Optional[float] = opt(None, "Probability of dropping each rank of the LoRA per step.",
                                        minimum=0.0, maximum=1.0, section="network")
    module_dropout: Optional[float] = opt(None, "Probability of skipping a whole LoRA module per step.",
                                          minimum=0.0, maximum=1.0, section="network")
    scale_weight_norms: Optional[float] = opt(None, "Cap the norm of each LoRA module's weight (1.0 is "
                                                    "typical); keeps the LoRA usable at high weights.",
                                              minimum=0.0, section="network",
                                              ss="ss_scale_weight_norms", ss_form="optional_number")
    network_train_unet_only: bool = opt(False, "Train only the UNet, not the text encoder(s).",
                                        label="UNet only", section="network",
                                        ss="ss_network_train_unet_only", ss_form="bool")
    network_train_text_encoder_only: bool = opt(False, "Train only the text encoder(s).", section="network",
                                                ss="ss_network_train_text_encoder_only", ss_form="bool")
    network_module: str = opt("networks.lora", "kohya network module: networks.lora (LoRA, LoCon) or lycoris.kohya "
                                               "(set by the network type; kept for kohya configs).", section="network",
                                               ss="ss_network_module", ss_form="network_module",
                                               ss_value="network_module_text")
    algo: str = opt("lora", "Network type. lora: kohya's LoRA (LoCon with conv_dim); loha / lokr: LyCORIS's LoHa and "
                            "LoKr, which A1111 and Forge load without extensions.", label="Network type",
                    choices=ALGOS, section="network")
    dora_wd: bool = opt(False, "DoRA: also train a magnitude per input column of each layer (LyCORIS's dora_wd). "
                               "For A1111 and Forge, which apply it exactly as trained; diffusers applies DoRA "
                               "differently.", label="DoRA", section="network")
    factor: int = opt(-1, "LoKr only: split each layer's size by this factor (-1: as evenly as possible).",
                      minimum=-1, section="network")
    network_weights: str = opt("", "Continue from this LoRA file (ours, kohya's or one from the Lora folder, same base "
                                   "model family), with a new optimizer, learning rate and dataset: often 1/3 to 1/10 "
                                   "of the first learning rate.", label="Continue from LoRA file", section="network",
                               path="file")
    dim_from_weights: bool = opt(False, "Take rank and alpha (per layer) and the trained layers from the file to "
                                        "continue from, instead of network_dim / network_alpha.",
                                 label="Rank from that file", section="network")
    # --- per-block learning rates and ranks (kohya network_args) ---------------------------------
    down_lr_weight: str = opt(
        "", "Learning-rate multiplier per input block (IN00…): numbers separated by commas, or a curve (cosine, "
            "sine, linear, reverse_linear, zeros; +0.5 adds 0.5). 0: not trained.", section="blocks")
    mid_lr_weight: str = opt("", "Learning-rate multiplier of the middle block(s).", section="blocks")
    up_lr_weight: str = opt("", "Learning-rate multiplier per output block (OUT00…), as down_lr_weight.",
                            section="blocks")
    block_dims: str = opt("", "Rank per block, one number per block (25 for SD1/SD2, 23 for SDXL).",
                          section="blocks")
    block_alphas: str = opt("", "Alpha per block, one number per block.", section="blocks")
    conv_block_dims: str = opt("", "Rank of the 3×3 convolutions per block (LoCon), one number per block.",
                               section="blocks")
    conv_block_alphas: str = opt("", "Alpha of the 3×3 convolutions per block.", section="blocks")
    # --- optimizer ---------------------------------------------------------------------
    optimizer_type: str = opt("AdamW", "Optimizer. AdamW8bit saves memory on NVIDIA GPUs; Prodigy and "
                                       "DAdaptAdam find the learning rate themselves (use learning rate 1).",
                              group=BASIC, label="Optimizer", choices=OPTIMIZER_TYPES, section="optimizer",
                              ss="ss_optimizer", ss_value="optimizer_text")
    optimizer_args: list = opt([], "Other optimizer arguments as key=value (e.g. decouple=True).",
                               section="optimizer")
    weight_decay: Optional[float] = opt(None, "Weight decay (empty: the optimizer's default; AdamW 0.01).",
                                        minimum=0.0, section="optimizer")
    betas: str = opt("", "The optimizer's betas, two numbers such as 0.9,0.999 (Adam, Lion, Prodigy; empty: "
                         "default).", section="optimizer")
    eps: Optional[float] = opt(None, "The optimizer's epsilon (Adam-type and Prodigy; empty: default).",
                               minimum=0.0, section="optimizer")
    d_coef: Optional[float] = opt(None, "Prodigy: multiplier of the step size it finds (below 1: gentler).",
                                  minimum=0.0, section="optimizer")
    safeguard_warmup: Optional[bool] = opt(None, "Prodigy: steadier step-size estimate during warm-up (on with a "
                                                 "warm-up).", section="optimizer")
    relative_step: Optional[bool] = opt(None, "Adafactor: find the step size itself and ignore the learning rate.",
                                        section="optimizer")
    scale_parameter: Optional[bool] = opt(None, "Adafactor: scale the step by the size of each weight.",
                                          section="optimizer")
    learning_rate: float = opt(1e-4, "Base learning rate (1e-4 is a safe start).", group=BASIC,
                               label="Learning rate", minimum=0.0, section="optimizer",
                               ss="ss_learning_rate", ss_form="number")
    unet_lr: Optional[float] = opt(None, "UNet learning rate (default: learning rate).", group=BASIC,
                                   label="UNet learning rate", minimum=0.0, section="optimizer",
                                   ss="ss_unet_lr", ss_form="number", ss_value="effective_unet_lr")
    text_encoder_lr: Optional[float] = opt(None, "Text-encoder learning rate (default: learning rate; "
                                                 "often 1/2 to 1/10 of it).", group=BASIC,
                                           label="Text encoder learning rate", minimum=0.0,
                                           section="optimizer", ss="ss_text_encoder_lr", ss_form="number",
                                           ss_value="effective_text_encoder_lr")
    lr_scheduler: str = opt("constant", "How the learning rate changes over the run.", group=BASIC,
                            label="LR scheduler", choices=LR_SCHEDULERS, section="optimizer", ss="ss_lr_scheduler")
    lr_warmup_steps: float = opt(0, "Warm-up: a number of steps, or a fraction (<1) of all steps.",
                                 minimum=0.0, section="optimizer", ss="ss_lr_warmup_steps", ss_form="number")
    lr_scheduler_num_cycles: int = opt(1, "Restarts of cosine_with_restarts.", minimum=1, section="optimizer")
    lr_scheduler_power: float = opt(1.0, "Power of the polynomial scheduler.", minimum=0.0,
                                    section="optimizer")
    max_grad_norm: float = opt(1.0, "Clip gradients to this norm (0: no clipping).", minimum=0.0,
                               section="optimizer", ss="ss_max_grad_norm", ss_form="number")
    # --- training ----------------------------------------------------------------------
    train_batch_size: int = opt(1, "Images per step. Larger is faster per image but needs more memory.",
                                group=BASIC, label="Batch size", minimum=1, maximum=256, section="training",
                                ss="ss_batch_size_per_device", ss_form="int")
    max_train_epochs: Optional[int] = opt(10, "Number of epochs (passes over images × repeats).", group=BASIC,
                                          label="Epochs", minimum=1, maximum=MAX_EPOCHS, section="training",
                                          ss="ss_num_epochs", ss_form="count_or_empty")
    max_train_steps: Optional[int] = opt(None, "Stop after this many steps (used when epochs is empty).",
                                         minimum=1, maximum=MAX_STEPS, section="training")
    gradient_accumulation_steps: int = opt(1, "Add up gradients of N batches before each update.", minimum=1,
                                           section="training", ss="ss_gradient_accumulation_steps", ss_form="int")
    gradient_checkpointing: bool = opt(False, "Recompute activations to save memory (slower).",
                                       section="training")
    cuda_graphs: bool = opt(True, "Replay each training step as a CUDA graph: up to 8× faster steps at small "
                                  "batches on NVIDIA GPUs, for 0.3–2 GB more memory, growing with the batch. With "
                                  "AdamW in bf16 or fp32 the optimizer update is part of the graph; with other "
                                  "optimizers, fp16 or gradient accumulation it runs after the replayed forward and "
                                  "backward pass. Not used on several GPUs or with LoRA dropout under gradient "
                                  "checkpointing.", section="training")
    torch_compile: bool = opt(False, "Compile the UNet's blocks with torch.compile: faster steps after one to two "
                                     "minutes of compiling at the start (NVIDIA GPU; kept in a disk cache).",
                              section="training")
    mixed_precision: str = opt("bf16", "Compute precision. bf16 on RTX 30xx and newer, fp16 on older GPUs, "
                                       "no for CPU.", choices=MIXED_PRECISIONS, section="training",
                                       ss="ss_mixed_precision")
    fp8_base: bool = opt(False, "Store the frozen base model in 8-bit floats (fp8) and compute in the mixed precision: "
                                "about half the memory of the UNet's weights, for low-VRAM cards.",
                         label="fp8 base model", section="training", ss="ss_fp8_base", ss_form="bool")
    min_snr_gamma: Optional[float] = opt(None, "Min-SNR loss weighting (5 is the usual value; steadier "
                                               "training).", minimum=0.0, section="training",
                                               ss="ss_min_snr_gamma", ss_form="optional_number")
    noise_offset: Optional[float] = opt(None, "Noise offset (0.05–0.1) helps very dark or bright images.",
                                        minimum=0.0, maximum=1.0, section="training",
                                        ss="ss_noise_offset", ss_form="optional_number")
    multires_noise_iterations: Optional[int] = opt(
        None, "Multi-resolution (pyramid) noise: noise added at this many coarser scales (6–10 is usual); helps "
              "large shapes and contrast. Empty: off.", label="Multires noise iterations", minimum=1, maximum=64,
        section="training", ss="ss_multires_noise_iterations", ss_form="count_or_none")
    multires_noise_discount: float = opt(
        0.3, "How much each coarser scale of the multires noise counts (0.1–0.3 for small datasets, up to 0.8).",
        label="Multires noise discount", minimum=0.0, maximum=1.0, section="training",
        ss="ss_multires_noise_discount", ss_form="number")
    ip_noise_gamma: Optional[float] = opt(
        None, "Input perturbation: extra noise of this strength in the UNet's input only, not in its target (0.1 is "
              "usual); fights over-fitting. Empty: off.", label="Input perturbation noise", minimum=0.0,
        maximum=1.0, section="training", ss="ss_ip_noise_gamma", ss_form="optional_number")
    debiased_estimation_loss: bool = opt(
        False, "Weight each step's loss by 1/√SNR (v-prediction: 1/(SNR+1)) so that the nearly clean timesteps do "
               "not dominate (debiased estimation).", label="Debiased estimation loss", section="training",
        ss="ss_debiased_estimation", ss_form="bool")
    zero_terminal_snr: bool = opt(
        False, "Rescale the noise schedule so that its last timestep is pure noise (zero terminal SNR): the full "
               "range of brightness. Made for v-prediction models.", label="Zero terminal SNR", section="training",
        ss="ss_zero_terminal_snr", ss_form="bool")
    seed: int = opt(42, "Random seed: the same seed and settings give the same LoRA.", minimum=0,
                    maximum=MAX_SEED, section="training", ss="ss_seed", ss_form="int")

    # --- validation ----------------------------------------------------------------------
    validation_split: float = opt(
        0.0, "Hold out this share of the training images (at least one) and compute a validation loss on them "
             "after each epoch; they are not trained on. A validation loss that rises while the training loss "
             "falls marks over-fitting. 0: off.", label="Validation split", minimum=0.0, maximum=0.5,
        section="validation")
    validation_data_dir: str = opt(
        "", "A folder of other images (with caption files) that are not trained on: a validation loss on them "
            "(up to 32 images) is computed after each epoch.", label="Validation images folder",
        section="validation", path="folder")
    validate_every_n_epochs: Optional[int] = opt(
        None, "Compute the validation loss every N epochs (empty: every epoch when images are held out). Set "
              "without held-out images, it scores up to 8 training images with fixed noise instead: that shows "
              "how closely each epoch reproduces them, not over-fitting.", label="Validate every N epochs",
        minimum=1, section="validation")
    validation_seed: Optional[int] = opt(
        None, "Seed that picks the held-out images and the validation noise (empty: the training seed).",
        minimum=0, maximum=MAX_SEED, section="validation")

    # ------------------------------------------------------------------------------------
    @classmethod
    def fields(cls) -> list[dataclasses.Field]:
        return list(dataclasses.fields(cls))

    @classmethod
    def field_names(cls) -> set[str]:
        return {f.name for f in dataclasses.fields(cls)}

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> "TrainConfig":
        return dataclasses.replace(self, **changes)

    # derived values -----------------------------------------------------------------------
    @property
    def resolution_wh(self) -> tuple[int, int]:
        return parse_resolution(self.resolution)

    @property
    def effective_unet_lr(self) -> float:
        return self.learning_rate if self.unet_lr is None else self.unet_lr

    @property
    def effective_text_encoder_lr(self) -> float:
        return self.learning_rate if self.text_encoder_lr is None else self.text_encoder_lr

    @property
    def optimizer_text(self) -> str:
        """The optimizer and its arguments as kohya writes them: ``AdamW8bit(weight_decay=0.1)``."""
        from .optimizer_fields import describe

        args = [*describe(self), *self.optimizer_args]
        return self.optimizer_type + (f"({','.join(args)})" if args else "")

    @property
    def network_module_text(self) -> str:
        """``ss_network_module``: lycoris.kohya for LoHa, LoKr and DoRA, else this field."""
        from .network_args import module_name

        return module_name(self)

    @property
    def kohya_max_token_length(self) -> Optional[int]:
        """max_token_length as kohya stores it: None for its default, 75."""
        return self.max_token_length if self.max_token_length > 75 else None

    @property
    def latents_cacheable(self) -> bool:
        """False when the pixels change from step to step (colour augmentation, random crop)."""
        return not (self.color_aug or self.random_crop)

    @property
    def train_unet(self) -> bool:
        return not self.network_train_text_encoder_only

    @property
    def train_text_encoder(self) -> bool:
        return not self.network_train_unet_only

    @property
    def validation_enabled(self) -> bool:
        return bool(self.validation_split or self.validation_data_dir or self.validate_every_n_epochs)

    @property
    def effective_validation_seed(self) -> int:
        return self.seed if self.validation_seed is None else self.validation_seed

    @property
    def effective_logging_dir(self) -> str:
        return self.logging_dir or os.path.join(self.output_dir, "logs")

    def network_settings(self) -> dict[str, Any]:
        """The network settings a run uses: the fields, or kohya's ``network_args`` strings where a field is left
        at its default (``config.network_args``; ConfigError on a conflict or an unknown key)."""
        from .network_args import network_settings

        return network_settings(self)

    def network_kwargs(self) -> dict[str, Any]:
        """What ``ss_network_args`` records: conv_dim/conv_alpha/dropouts, LyCORIS's algo, DoRA, blocks
        (None: unset)."""
        from .network_args import metadata_args

        return metadata_args(self)


def parse_resolution(value: Any) -> tuple[int, int]:
    """'512' / 512 / '768,512' / [768, 512] → (width, height)."""
    if isinstance(value, (list, tuple)):
        parts = [str(v) for v in value]
    else:
        parts = [p for p in str(value).replace("x", ",").split(",") if p.strip()]
    try:
        nums = [int(float(p)) for p in parts]
    except (ValueError, OverflowError):
        raise ConfigError(msg("config.resolution_nan", value=value)) from None
    if len(nums) == 1:
        return nums[0], nums[0]
    if len(nums) == 2:
        return nums[0], nums[1]
    raise ConfigError(msg("config.resolution_parts", value=value))
