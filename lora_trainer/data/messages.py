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
