"""The settings' sentences by key (English; Chinese in ``text/zh_CN.json``): validation problems and
warnings, path and type checks, the options' checks and the step maths. Each problem starts with the
setting's name (the tab puts its label there)."""
from __future__ import annotations

from ..text.messages import register

LION_WITH_REGULARIZATION = ("Lion optimizers (Lion, Lion8bit, PagedLion8bit) with regularization images "
                            "(reg_data_dir) tend to over-fit or give worse pictures, the tutorials find: use AdamW "
                            "or AdamW8bit with regularization images, or clear reg_data_dir to train without them")

register({
    # validation
    "config.below_minimum": "{name} is {value}, but it cannot be below {limit}",
    "config.above_maximum": "{name} is {value}, but it cannot be above {limit}",
    "config.unknown_choice": "{name} '{value}' is not known; choose one of: {choices}",
    "config.bucket_order": "min_bucket_reso ({low}) is larger than max_bucket_reso ({high})",
    "config.bucket_multiple": "{name} {value} is not a multiple of bucket_reso_steps ({step}); use {fixed}",
    "config.bucket_step": "bucket_reso_steps {value} must be a multiple of 8; use 64",
    "config.no_length": "set max_train_epochs (e.g. 10) or max_train_steps",
    "config.nothing_trained": "network_train_unet_only and network_train_text_encoder_only are both on: "
                              "nothing would be trained; turn one off",
    "config.alpha_above_dim": "network_alpha ({alpha}) is larger than network_dim ({dim}): the LoRA's updates are "
                              "amplified; usually alpha ≤ dim",
    "config.warmup_constant": "lr_warmup_steps is set but lr_scheduler is 'constant': using constant_with_warmup",
    "config.keep_tokens_unused": "keep_tokens only matters with shuffle_caption or caption_tag_dropout_rate",
    "config.adaptive_lr": "{optimizer} finds its own step size: learning rates are multipliers and should be about "
                          "1.0 (now {lr})",
    "config.no_network_weights": "network_weights file not found: {path} (choose the LoRA file to continue from, "
                                 "or leave it empty)",
    "config.resolution_nan": "resolution '{value}' is not a number; write 512 or 768,512",
    "config.resolution_parts": "resolution '{value}' must be one number or width,height (e.g. 768,512)",
    # checks.py
    "config.resolution_small": "resolution {side} is too small; use at least {limit} (512 for SD1.5, 768 for SD2, "
                               "1024 for SDXL)",
    "config.resolution_large": "resolution {side} is too large; use at most {limit} (512 for SD1.5, 768 for SD2, "
                               "1024 for SDXL)",
    "config.resolution_step": "resolution {side} is not a multiple of {step}; use {fixed}",
    "config.name_folders": "output_name '{name}' must be a plain file name without folders",
    "config.name_control": "output_name {name} holds control characters (such as a NUL byte or a line break), "
                           "which file names cannot hold; use letters, digits, spaces, - and _",
    "config.name_long": "output_name is {size} bytes long (UTF-8); the files of a run add to it and a file name "
                        "holds at most 255 bytes: use a name of at most {limit} bytes (about {chinese} Chinese "
                        "characters or {limit} Latin letters)",
    "config.folder_is_file": "{name} {path} is a file, not a folder; choose the {what} folder{tail}",
    "config.folder_missing": "{name}: the {what} folder {path} was not found; check the path{tail}",
    "config.tail": " ({advice})",
    "config.output_is_file": "{name} {path} is a file, not a folder; choose a folder, or remove or rename the file",
    "config.output_in_file": "{name} {path} cannot be created: {existing} is a file, not a folder; choose another "
                             "folder",
    "config.output_denied": "{name} {path} cannot be written{where}: permission denied; choose a folder you may "
                            "write to, or change the folder's permissions",
    "config.output_where": " (it would be created in {existing})",
    "config.file_missing": "{name}: the {what} {path} was not found; check the path",
    "config.needs_value": "{name} needs a value",
    "config.wrong_type": "{name} = {value} is not {kind}",
    "config.not_finite": "{name} is {value}; it must be a finite number",
    "config.kind.bool": "true or false",
    "config.kind.int": "a whole number",
    "config.kind.float": "a number",
    "config.kind.str": "text",
    "config.kind.list": "a list",
    "config.what.base_model": "base model",
    "config.what.training": "training images",
    "config.what.regularization": "regularization",
    "config.what.validation": "validation images",
    "config.what.state": "training state",
    "config.advice.concepts": "the folder that holds the <repeats>_<name> folders",
    "config.advice.or_empty": "or leave it empty",
    "config.advice.state": "pick a '-state' folder of a run",
    "config.no_base_model": "pretrained_model_name_or_path is empty: choose the base model checkpoint",
    "config.no_train_dir": "train_data_dir is empty: choose the folder with your training images",
    "config.no_output_dir": "output_dir is empty: choose where the LoRA files go",
    # option_checks.py
    "config.token_limit": "max_token_length is {value}, but it must be 75, 150 or 225 (captions are encoded in "
                          "chunks of 75 tokens); use {nearest}",
    "config.masked_no_masks": "masked_loss is on, but no masks are named: choose the mask folder "
                              "(conditioning_data_dir), or turn on alpha_mask to use the images' transparency as "
                              "the mask",
    "config.mask_folder_unused": "conditioning_data_dir names a mask folder ({folder}), but masked_loss is off: turn "
                                 "masked_loss on, or leave the mask folder empty",
    "config.two_masks": "alpha_mask and a mask folder (conditioning_data_dir) are both set, and the loss takes one "
                        "mask: turn alpha_mask off to use the mask folder, or empty the mask folder to use the "
                        "images' transparency",
    "config.mask_folder_missing": "conditioning_data_dir: mask folder not found: {folder} (leave it empty for none)",
    "config.and": "{first} and {second}",
    "config.not_cached": "{which} change the pixels at every step, so the latents are not cached (cache_latents is "
                         "set aside): the VAE encodes each batch, which is slower and needs the VAE's memory",
    "config.discount_unused": "multires_noise_discount does nothing without multires_noise_iterations (6–10 is "
                              "usual)",
    "config.two_snr_weights": "debiased_estimation_loss and min_snr_gamma both weight the loss by the timestep's "
                              "SNR and multiply; most runs use one of them",
    "config.lion_regularization": LION_WITH_REGULARIZATION,
    "config.block_lr_adaptive": "{names} give blocks learning rates of their own, but {optimizer} uses one step "
                                "size for all: clear them (block_dims still works) or choose AdamW",
    "config.block_lr_no_unet": "{names} weight the UNet's blocks, but only the text encoder is trained: clear them "
                               "or train the UNet",
    "config.dim_from_nothing": "dim_from_weights takes the ranks from network_weights, which is empty: choose the "
                               "LoRA file to continue from, or turn dim_from_weights off",
    "config.dim_from_and_blocks": "dim_from_weights takes every layer's rank from the file, so block_dims / "
                                  "block_alphas / conv_block_dims / conv_block_alphas cannot also set them: clear "
                                  "one of the two",
    "config.weights_and_resume": "network_weights and resume are both set: resume continues a run with its own "
                                 "weights and optimizer state; network_weights starts a new run from a LoRA file. "
                                 "Clear one",
    "config.preset_full": "network_args preset=full: LyCORIS's 'full' also trains the ResNet convolutions; here "
                          "they train only with conv_dim set (attention and feed-forward layers train either way)",
    # network_args.py, blocks.py, optimizer_fields.py
    "net.unsupported": "network_args '{arg}' is not supported: {reason}",
    "net.unknown": "network_args '{arg}' is not a setting this trainer knows; it takes: {names}",
    "net.no_value": "network_args '{arg}' has no value; write {setting}=<value>",
    "net.not_a_number": "not a number",
    "net.bad_value": "network_args '{arg}': {detail}",
    "net.conflict": "{setting} is {own}, but network_args says {setting}={other}: remove it from network_args or make the "
                    "two agree",
    "net.between_0_1": "{setting} is {value}, but it must be between 0 and 1",
    "net.module": "network_module '{module}' is not supported; use {kohya} (LoRA, LoCon) or {lycoris} with algo "
                  "loha / lokr, the types A1111 and Forge load",
    "net.dropout": "network_dropout drops a LoRA's inner neurons, which a {name} does not have: clear it, or use "
                   "rank_dropout / module_dropout",
    "net.factor_lokr": "factor ({factor}) only shapes a LoKr: clear it (-1) or choose algo lokr",
    "net.factor_value": "factor is {factor}: use -1 (automatic) or a positive number such as 8",
    "net.dora_dropout": "{names} cannot be used with DoRA (dora_wd), which rescales whole weight columns: turn the "
                        "dropout or DoRA off",
    "net.dora_norms": "scale_weight_norms caps the weight change, but with DoRA (dora_wd) the magnitude sets each "
                      "column's size: clear scale_weight_norms or turn DoRA off",
    "blocks.or_curves": ", or one of {curves}",
    "blocks.numbers": "{name} '{text}' must be numbers separated by commas{curves}",
    "blocks.not_curve": "{name} '{text}' is not a list of numbers or a curve ({curves}, optionally with +0.5 added)",
    "blocks.too_many": "{name} has {count} values, but the model has {blocks} such blocks",
    "blocks.one_per_block": "give one value per block (the table in the form shows them)",
    "blocks.too_few": "{name} has {count} of {blocks} values: the other blocks keep weight 1.0 (as kohya)",
    "blocks.count": "{setting} has {count} values: kohya's blocks are 25 for SD1/SD2 and 23 for SDXL",
    "blocks.negative": "{setting} has a negative value",
    "blocks.alphas_alone": "conv_block_alphas is set without conv_block_dims: set both, or neither",
    "blocks.layout": "{setting} has {count} values (the {layout} layout), but the base model is {model} with {blocks} "
                     "blocks",
    "blocks.model": "{setting} has {count} values, but the base model has {blocks} blocks",
    "opt.not_taken": "{name} is set, but the {optimizer} optimizer has no such setting (it is used by {users}): "
                     "clear {name} or choose one of those optimizers",
    "opt.betas_numbers": "betas '{text}' must be two numbers such as 0.9,0.999",
    "opt.betas_count": "betas '{text}' must be two numbers such as 0.9,0.999 (got {count})",
    "opt.betas_range": "betas '{text}' must each be at least 0 and below 1",
    "net.algo": "algo '{text}' is not one this trainer makes; choose one of: {algos}",
    "net.not_bool": "'{text}' is not True or False",
    "opt.twice": "{name} is set both as a field and in optimizer_args: keep one",
    # files.py: reading settings
    "files.no_toml_reader": "cannot read {source}: no TOML reader is installed",
    "files.install_tomli": "python -m pip install tomli",
    "files.bad_toml": "{source} is not valid TOML: {reason}",
    "files.bad_toml.advice": "check quotes around paths and text values (\"...\"), then try again",
    "files.unreadable": "cannot read config file {path}: {reason}",
    "files.not_finite": "{name} = {value} is not a finite number; write e.g. 1e-4",
    "files.kind.list": "a list of text values",
    "files.kind.str": "text (write it in quotes)",
    "files.in_source": "{problem} (in {source})",
    "files.ignored": "{source}: ignored setting(s) this trainer does not use: {names}",
    "files.command_line": "command line",
    # allowed_folders.py
    "folders.nul": "{setting} holds a NUL character",
    "folders.nul.advice": "type the path again",
    "folders.outside": "{setting} names a place outside the folders this shared WebUI allows: {path}",
    "folders.outside.advice": "use a folder inside {roots} (the WebUI's owner can allow more folders: Settings → "
                              "LoRA Trainer, or --allow-path on the standalone server)",
    # steps.py: the step maths
    "steps.title": "Step maths:",
    "steps.header": "  concept folder{pad}  images × repeats = samples",
    "steps.row": "  {row}",
    "steps.row_reg": "  {row} (regularization)",
    "steps.reg_matched": "  regularization samples are matched to training samples: {train} train + {reg} "
                         "regularization = {samples} samples per epoch",
    "steps.batches_processes": "  {samples} samples ÷ batch {batch} ÷ {processes} processes = {batches} batches "
                               "per epoch on each process",
    "steps.batches": "  {samples} samples ÷ batch {batch} = {batches} batches per epoch",
    "steps.global_batch": "  global batch: {batch} per process × {processes} processes = {samples} samples per "
                          "optimizer step",
    "steps.global_batch_accumulation": "  global batch: {batch} per process × {processes} processes × accumulation "
                                       "{accumulation} = {samples} samples per optimizer step",
    "steps.lr_unscaled": "  the learning rate is used as set, not scaled with the global batch (as in kohya "
                         "sd-scripts); lower or raise it yourself if you want to",
    "steps.accumulation": "  {batches} ÷ accumulation {accumulation} = {steps} steps per epoch",
    "steps.total": "  {per_epoch} steps per epoch × {epochs} epochs = {steps} steps",
    "steps.total_by_steps": "  {steps} steps (max_train_steps) ≈ {epochs} epochs",
    "steps.note": "  note: {note}",
    "steps.epochs_decide": "max_train_epochs ({epochs}) decides the length; max_train_steps ({steps}) is ignored",
    "steps.reg_fewer": "regularization images × repeats ({available}) are fewer than training images × repeats "
                       "({train}): they are repeated to {train} samples per epoch",
    "steps.reg_more": "regularization images × repeats ({available}) exceed training images × repeats ({train}): "
                      "only the first {train} are used each epoch",
    "steps.bucket_batches": "aspect-ratio buckets add {count} partly filled batch(es) per epoch (each batch holds "
                            "one image shape)",
    "steps.no_images": "no usable training images in {folder}",
    "steps.no_images.advice": "put images in sub-folders named <repeats>_<name>, e.g. 10_mychar/",
    "steps.held_out": "{count} training image(s) are held out for the validation loss (validation_split {split}) "
                      "and not trained on",
    "steps.processes_dropped": "{processes} processes share each epoch's batches; {dropped} batch(es) per epoch "
                               "are left out so each gets the same number",
    "steps.warmup_long": "lr_warmup_steps ({warmup}) is not shorter than the whole run ({steps} steps): the "
                         "learning rate never reaches its value; use fewer warm-up steps or a fraction such as "
                         "0.05 (5% of the steps)",
    "config.fp8_fp32": "fp8_base with mixed_precision 'no': the layers compute in fp32 (bf16 is faster and what "
                       "kohya uses)",
    "config.preset.character": "A person or figure: 20–50 varied images, repeats about 10, trigger word as the first "
                               "tag.",
    "config.preset.style": "A painting or drawing style: more images (50+), higher rank to hold the detail, no fixed "
                           "first tag.",
    "config.preset.concept": "An object, outfit or pose: a smaller LoRA that leaves the rest of the picture to the "
                             "base model.",
    "config.preset.sd1_4gb": "SD 1.5 on 4 GB: batch 1, gradient checkpointing, the base model stored in fp8 "
                             "(fp8_base).",
    "config.preset.sd1_8gb": "SD 1.5 on 8 GB: batch 2 with gradient checkpointing (slower, leaves room for the "
                             "desktop).",
    "config.preset.sd1_12gb": "SD 1.5 on 12 GB: batch 4, full speed.",
    "config.preset.sd1_16gb": "SD 1.5 on 16 GB: batch 6, full speed.",
    "config.preset.sd1_24gb": "SD 1.5 on 24 GB: batch 8, full speed.",
    "config.preset.sdxl_6gb": "SDXL on 6 GB: UNet only, rank 8, gradient checkpointing, the base model stored in fp8 "
                              "(fp8_base).",
    "config.preset.sdxl_8gb": "SDXL on 8 GB: UNet only, rank 8, gradient checkpointing.",
    "config.preset.sdxl_12gb": "SDXL on 12 GB: batch 2 with gradient checkpointing.",
    "config.preset.sdxl_16gb": "SDXL on 16 GB: batch 4 with gradient checkpointing.",
    "config.preset.sdxl_24gb": "SDXL on 24 GB: batch 8 with gradient checkpointing.",
    "config.no_preset": "there is no preset called '{name}'",
    "config.no_preset.advice": "choose one of: {names}",
    "files.handled.family": "the model family is detected from the checkpoint",
    "files.handled.sdpa": "PyTorch SDPA attention is always used",
    "files.handled.safetensors": "LoRA files are always .safetensors",
    "files.handled.loader": "images are loaded by the trainer itself",
    "files.handled.vae_batch": "the VAE batch follows the training batch size",
    "files.handled.not_needed": "not needed",
    "files.handled.logs": "logs are always written as JSON lines and TensorBoard files",
    "files.handled.run_names": "runs are named by output_name and time",
    "files.handled.no_upload": "nothing is uploaded",
    "files.handled.automatic": "decided automatically",
    "net.why.preset": "the trained layers are kohya's (attention and feed-forward; with conv_dim also the ResNet "
                      "convolutions): leave preset out, or use preset=attn-mlp or preset=full",
    "net.why.tucker": "Tucker (CP) decomposition of 3×3 convolutions is not trained here",
    "net.why.see_tucker": "see use_tucker",
    "net.why.scalar": "the LyCORIS scalar is not trained here",
    "net.why.decompose_both": "LoKr decomposes only its second factor here (LyCORIS's default)",
    "net.why.rank_dropout_scale": "rank dropout here always rescales the kept ranks",
    "net.why.train_norm": "normalisation layers are not trained here",
    "net.why.bypass": "the layers are trained with their weights merged (LyCORIS's default)",
    "net.why.wd_on_out": "DoRA here normalises per input column, the only form both A1111 and Forge apply as trained",
    "net.why.lr_zero": "write 0 in down_lr_weight / mid_lr_weight / up_lr_weight for the blocks that should not train",
    "net.why.loraplus": "LoRA+ is not supported",
})
