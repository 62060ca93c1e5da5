"""The dataset scan's sentences by key (English; Chinese in ``text/zh_CN.json``): images that are skipped,
enlarged or have captions that do not fit the settings, folders that are not read."""
from __future__ import annotations

from ..text.messages import register

register({
    "data.more": "{shown} and {count} more",
    "data.enlarged": "{count} image(s) are enlarged more than {limit}× to their training size and train blurred: "
                     "{names}. Use larger images, or a smaller resolution",
    "data.short_captions": "keep_tokens is {keep_tokens}, but {count} caption(s) have fewer tags, so none of their "
                           "tags is ever shuffled or dropped: {names}. Lower keep_tokens (the trigger word is usually "
                           "1) or add tags to those captions",
    "data.tags": "{name} ({count} tag(s))",
    "data.unreadable": "Cannot read image {path}: {reason}",
    "data.convert": "open it in an image editor and save it again as PNG or JPEG, or remove it from the folder",
    "data.animated": "it is animated ({frames} frames); only still pictures are trained",
    "data.animated.advice": "save the frame to train on as a PNG or JPEG, or remove the file from the folder",
    "data.empty_size": "it has an empty size {width}x{height}",
    "data.empty_file": "the file is empty (0 bytes)",
    "data.empty_file.advice": "copy it again from where it came from (an empty file holds no picture), or remove it",
    "data.transparent": "it is fully transparent: it would train as a blank white picture",
    "data.transparent.advice": "save it again with its picture visible (or remove it from the folder)",
    "data.layout": "<repeats>_<concept name>, for example '10_mychar' (10 = repeats per epoch)",
    "data.layout.advice": "{setting} must be the folder that CONTAINS concept folders named {layout}, e.g. {example} "
                          "holding the images and their caption files.",
    "data.names_more": "{shown}, … ({count} more)",
    "data.cannot_list": "Cannot list the folder {folder}: {reason}.",
    "data.cannot_list.advice": "check that the folder exists and that you have permission to read it.",
    "data.caption_skipped": "{message} Fix: {advice}",
    "data.root_missing": "The {setting} folder {root} does not exist.",
    "data.check_path": "check the path. {advice}",
    "data.root_is_file": "The {setting} path {root} is a file, not a folder.",
    "data.repeats_1": "repeats must be 1 or more",
    "data.expected": "expected {layout}",
    "data.bad_folder_name": "Folder {folder} is ignored: its name does not fit the layout ({why}).",
    "data.loose": "{count} image(s) lie directly in {root} and are ignored ({names}). Move them into a concept folder "
                  "such as {example}.",
    "data.is_concept": "{setting} points at the concept folder {root} itself.",
    "data.is_concept.advice": "set {setting} to its parent folder {parent} (the folder that contains '{name}').",
    "data.images_in_root": "The images in {setting} {root} lie directly in it ({count}: {names}), but they must be "
                           "inside a concept folder.",
    "data.images_in_root.advice": "create the folder {folder} (10 = repeats per epoch, 'mychar' = your trigger "
                                  "word/concept name), move the images and caption files into it, and keep {setting} "
                                  "= {root}.",
    "data.no_concept_names": "No usable concept folder in {setting} {root}: the folders found ({names}) are not named "
                             "{layout}.",
    "data.rename": "rename them, e.g. '{name}' → '10_{name}'.",
    "data.no_concepts": "The {setting} folder {root} contains no concept folders.",
    "data.path_reason": "{path}: {reason}",
    "data.no_usable": "No usable images in the concept folders of {setting} {root}.",
    "data.no_usable_unreadable": "No usable images in the concept folders of {setting} {root} ({count} could not be "
                                 "read, e.g. {detail}).",
    "data.no_usable.advice": "put {extensions} images (with caption files) into the concept folders, e.g. {folder}.",
    "data.no_usable_reg.advice": "put {extensions} images (with caption files) into the concept folders, e.g. "
                                 "{folder}, or leave reg_data_dir empty to train without regularization.",
    "data.too_large": "it is too large to open safely (decompression bomb guard)",
    "data.not_image": "not a valid image file (unknown format or corrupt)",
    "data.no_file": "the file does not exist",
    "data.denied": "permission denied",
    "data.truncated": "the file is truncated (incomplete download or copy?)",
    "data.corrupt": "corrupt or unreadable ({error})",
    "data.unsupported": "{count} file(s) in {folder} are not used because their format is not supported ({names}). "
                        "Convert them to PNG or JPEG to train on them.",
    "data.nested": "Subfolder(s) inside {folder} are not searched ({names}). Move their images directly into "
                   "{folder}, or make them separate concept folders next to it.",
    "data.no_images": "Concept folder {folder} has no images ({extensions}); it is ignored.",
    "data.only_commas": "{count} caption file(s) in {folder} hold only commas, no tags: {names}. They are trained "
                        "with the concept name '{name}' as caption; write the tags into them, separated by commas.",
    "data.no_caption": "{count} of {total} images in {folder} have no caption file ({ext}) or an empty one: "
                       "{names}. They are trained with the concept name '{name}' as caption.{hint}",
    "data.other_extension": " Caption files with {others} exist: set caption_extension to {first}.",
    "data.bucket_step": "bucket_reso_steps is {step}; it must be a multiple of 8 (64 is usual).",
    "data.bucket_multiple": "min_bucket_reso ({min_reso}) and max_bucket_reso ({max_reso}) must be multiples of "
                            "bucket_reso_steps ({step}).",
    "data.bucket_order": "min_bucket_reso ({min_reso}) is larger than max_bucket_reso ({max_reso}).",
    "data.bucket_small": "resolution {width}x{height} is smaller than bucket_reso_steps ({step}).",
    "data.bucket.advice": "fix the bucket settings (kohya defaults: 256, 1024, 64).",
    "data.caption_not_utf8": "Caption file {path} is not UTF-8 text (undecodable byte at position {position}).",
    "data.caption_not_utf8.advice": "open it in a text editor and save it as UTF-8 (for example Notepad: Save As → "
                                    "Encoding: UTF-8).",
    "data.caption_unreadable": "Cannot read caption file {path}: {reason}.",
    "data.caption_unreadable.advice": "check that the file is not locked by another program and that you may read it.",
    "data.batch_size": "train_batch_size is {batch_size}; it must be 1 or more.",
    "data.holdout": "validation_split {fraction:g} holds out {wanted} image(s), but the training folders have only "
                    "{images} image(s) and each concept folder must keep at least one",
    "data.holdout.advice": "add images, lower validation_split, or put a few extra images into a validation images "
                           "folder instead",
    "data.mask_unreadable": "its mask {name} cannot be read ({reason})",
    "data.file_unreadable": "cannot read the file ({reason})",
    "data.cache_mode": "cache_latents mode '{mode}' is unknown; use 'memory' or 'disk'.",
    "data.cache_no_folder": "Caching latents to disk needs a cache folder, but none was given.",
    "data.cache_no_folder.advice": "set the latent cache folder, or cache latents in memory instead.",
    "data.cache_write": "Cannot write the latent cache file {file}: {reason}.",
    "data.cache_write.advice": "free disk space or choose a writable cache folder, or cache latents in memory "
                               "instead.",
    "data.vae_nan": "The VAE produced NaN/infinite latents for {paths}.",
    "data.vae_nan.advice": "run the VAE in float32 (no_half_vae; SDXL's VAE overflows in float16) or use an "
                           "fp16-fixed VAE; then start again.",
    "data.mask_folder_missing": "the mask folder (conditioning_data_dir) {root} does not exist",
    "data.mask_folder_missing.advice": "choose the folder that holds the mask pictures, or leave it empty",
    "data.mask_missing": "masked_loss: {count} training image(s) have no mask in {root}: {names}",
    "data.mask_missing.advice": "put a mask picture of the same name (e.g. {name}.png) in {folder} or in {root}, "
                                "white where the image is trained",
    "data.mask_bad": "{name} ({reason})",
    "data.mask_size": "{name} is {width}×{height}, its image {image_width}×{image_height}",
    "data.mask_wrong": "masked_loss: {count} mask(s) in {root} do not fit their image: {names}",
    "data.mask_wrong.advice": "save each mask at its image's size (the mask is resized and cut with the image)",
    "data.masked": "masked_loss: {count} training image(s) train only where their mask is white",
    "data.mask_extra": "masked_loss: {count} picture(s) in the mask folder belong to no training image and are not "
                       "used: {names}",
    "data.mask_reg": "masked_loss: regularization images have no masks and train on their whole picture",
    "data.opaque": "alpha_mask: {count} of {total} image(s) have no transparency and train on their whole picture: "
                   "{names}",
})
