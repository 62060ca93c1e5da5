"""The base model's loading errors by key (English; Chinese in ``text/zh_CN.json``)."""
from __future__ import annotations

from ..text.messages import register

register({
    "model.shapes": "its tensor shapes do not match a standard {family} model",
    "model.not_built": "diffusers could not build the model from it",
    "model.detected_but": "{path}: detected as {family}, but {what} ({kind}: {error}).",
    "model.detected_but.advice": "the file may be damaged or an architecture variant the trainer does not support; "
                                 "try re-downloading it, or another checkpoint of the same model",
    "model.not_diffusers": "{path}: this folder is not a diffusers model (no model_index.json).",
    "model.not_diffusers.advice": "select a .safetensors/.ckpt file, or a diffusers folder containing "
                                  "model_index.json",
    "model.folder_failed": "{path}: the diffusers model folder could not be loaded ({kind}: {error}).",
    "model.folder_failed.advice": "check that unet/, vae/ and text_encoder/ hold their weights (re-download if not)",
    "model.unreadable": "{path}: missing or unreadable ({error}).",
    "model.unreadable.advice": "repair or re-download the model",
    "models.at": "{source}: {what}",
    "models.this_checkpoint": "This checkpoint",
    "models.supported": "only SD 1.x, SD 2.x and SDXL base models are supported",
    "models.pick_base": "choose a full SD 1.5 / SD 2.x / SDXL checkpoint (.safetensors) as the base model",
    "models.no_tensors": "the file holds no tensors (empty or damaged).",
    "models.no_tensors.advice": "re-download or re-save the file",
    "models.refiner": "this is an SDXL refiner; it cannot be the base of a LoRA.",
    "models.refiner.advice": "choose the SDXL base model (or a fine-tune of it) instead of the refiner",
    "models.old_clip": "its CLIP text encoder uses a very old key layout that the loader cannot read.",
    "models.old_clip.advice": "re-save the model in the WebUI (Checkpoint Merger, 'copy config', safetensors) and use "
                              "that file",
    "models.sdxl_one_te": "this SDXL file is missing one of its two text encoders.",
    "models.no_te": "the file holds a UNet but no text encoder (a UNet-only or pruned export).",
    "models.no_te.advice": "use the full checkpoint that includes the text encoder",
    "models.inpainting": "an inpainting model",
    "models.pix2pix": "an instruct-pix2pix / edit model",
    "models.depth": "a depth-conditioned model",
    "models.special": "a special-purpose model",
    "models.in_channels": "this is {kind} (UNet input has {channels} channels, not 4); LoRAs are trained on the "
                          "normal base model.",
    "models.in_channels.advice": "choose the non-inpainting version of the model as the base",
    "models.is_lora": "this is a LoRA / LyCORIS file, not a base model.",
    "models.is_lora.advice": "{pick}; put LoRA files in the LoRA folder instead",
    "models.is_embedding": "this is a textual-inversion embedding, not a base model.",
    "models.is_sd3": "this looks like an SD3 / SD3.5 checkpoint; {supported}.",
    "models.is_flux": "this looks like a Flux checkpoint; {supported}.",
    "models.is_controlnet": "this is a ControlNet model, not a base model.",
    "models.is_edm": "this looks like Playground v2.5 (EDM); {supported}.",
    "models.is_vae": "this is a VAE file, not a full model.",
    "models.is_vae.advice": "{pick}; put VAE files in the VAE folder instead",
    "models.is_te": "this holds only a text encoder, not a full model.",
    "models.is_component": "this is a single diffusers component (for example unet/diffusion_pytorch_model"
                           ".safetensors), not a full checkpoint.",
    "models.is_component.advice": "select the whole diffusers model folder (the one with model_index.json), or a "
                                  "single-file checkpoint",
    "models.unknown_arch": "unknown model architecture (no Stable Diffusion UNet keys found); {supported}.",
    "models.file_type": "{path}: unsupported file type '{suffix}'.",
    "models.file_type.advice": "use a .safetensors or .ckpt checkpoint, or a diffusers model folder",
    "models.pickle": "{path}: the file contains Python objects besides the weights, so it was not opened (loading it "
                     "could run code from the file).",
    "models.pickle.advice": "convert it to .safetensors with a converter you trust (or download the .safetensors "
                            "version) and select that file",
    "models.no_state_dict": "{path}: the file does not hold a state dict ({kind}).",
    "models.no_state_dict.advice": "use a Stable Diffusion checkpoint (.safetensors or .ckpt)",
    "models.not_found": "Model file not found: {path}",
    "models.not_found.advice": "check the path (and that the drive is connected)",
    "models.too_small": "{path}: the file is empty or truncated ({size} bytes).",
    "models.redownload": "re-download it",
    "models.damaged": "{path}: the file is truncated or damaged and cannot be read ({kind}: {error}).",
    "models.damaged.advice": "re-download it (an interrupted download leaves a file like this) and check the size "
                             "matches",
    "models.index_unreadable": "{path}: cannot be read ({error}).",
    "models.repair_folder": "repair or re-download the model folder",
    "models.sdxl_folder_one_te": "this SDXL folder lacks one of its two text encoders (a refiner?).",
    "models.special_folder": "this is a {cls} model folder; LoRAs are trained on the text-to-image base model.",
    "models.other_folder": "this looks like an {name} model folder ({cls}); {supported}.",
    "models.other_pipeline": "unsupported diffusers pipeline '{cls}'; {supported}.",
    "models.unknown_family": "Unknown model family '{family}'.",
    "models.unknown_family.advice": "use one of: sd1, sd2, sdxl",
    "models.no_tokenizer": "No CLIP tokenizer found locally for {family} ({subfolder}); looked in: {tried}",
    "models.no_tokenizer.advice": "reinstall the extension (its configs/clip_tokenizer folder is missing or damaged), "
                                  "or use a diffusers model folder that contains '{subfolder}/'.",
    "models.hf_cache": "HF cache {repo}",
    "models.no_original_name": "no original-layout name for '{name}' (unsupported model layout)",
})
