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
})
