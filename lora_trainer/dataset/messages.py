"""The workbench's sentences (checks, fixes, the crop-and-resize plan and its report, imports, tagging, caption
edits): English templates by key; Chinese in ``text/zh_CN.json``.

A field that holds a sentence holds a ``Message`` (English with ``str()``); where a reason comes from an error
(``TrainerError``, ``ImageLoadError``) it is that error's text, a ``Sentence`` that keeps its key. ``said`` puts
either in a language. The project's, the import's and the other steps' refusals are in ``REFUSALS``; the
tagger's in ``messages_tagging.py``.
"""
from __future__ import annotations

from typing import Any, Iterable

from ..text.messages import Message, localized, msg, normalize_language, register

TEMPLATES = {
    "dep.wd14_tagger": "the WD14 tagger",
    "dep.wd14_download": "downloading a WD14 model",
    "check.no_folder": "The training folder {folder} does not exist.",
    "check.no_folder.advice": "Choose the folder that holds the <repeats>_<name> concept folders.",
    "check.folder_prefix": "{count} folder(s) lack the repeats prefix and are not trained: {names}.",
    "check.folder_prefix.advice": "Name each concept folder <repeats>_<name>, e.g. 10_{example}.",
    "check.loose_images": "{count} picture(s) lie directly in the training folder and are not trained.",
    "check.loose_images.advice": "Move them into a <repeats>_<name> folder.",
    "check.nested": "{count} folder(s) inside concept folders are not read: {names}.",
    "check.nested.advice": "Move their pictures up into the concept folder, or make them concept folders of "
                           "their own.",
    "check.no_concepts": "{folder} holds no concept folder.",
    "check.no_concepts.advice": "Put the pictures into a folder named <repeats>_<name>, e.g. 10_mychar.",
    "check.no_images": "The concept folders hold no usable picture.",
    "check.no_images.advice": "Add PNG, JPEG, WebP or BMP pictures.",
    "check.few_images": "{count} pictures for a {goal}; the tutorials use at least {low}.",
    "check.few_images.advice": "Add pictures (different angles, expressions, light), or train fewer epochs.",
    "check.many_images": "{count} pictures for a {goal}; more than {high} often over-fit or dilute it.",
    "check.many_images.advice": "Keep the best pictures, or lower the repeats.",
    "check.unreadable": "{count} picture(s) cannot be read and are skipped: {names}.",
    "check.unreadable.advice": "Save them again as PNG or JPEG, or remove them.",
    "check.unsupported": "{count} file(s) in a format that is not read: {names}.",
    "check.unsupported.advice": "Save them as PNG or JPEG.",
    "check.small": "{count} picture(s) are much smaller than {size}×{size} and get enlarged (blurry): {names}.",
    "check.small.advice": "Replace them with larger pictures, or train at a lower resolution.",
    "check.animated": "{count} animated picture(s): only the first frame is trained.",
    "check.animated.advice": "Save the frame you want as PNG.",
    "check.duplicates": "{count} group(s) of duplicates: {names}.",
    "check.duplicates.advice": "Keep one picture of each group: duplicates weigh that picture more.",
    "check.mixed_ratios": "Pictures of {count} aspect ratios are cropped to squares because buckets are off.",
    "check.mixed_ratios.advice": "Turn aspect-ratio buckets on.",
    "check.min_bucket": "min_bucket_reso {value} is above the resolution {size}.",
    "check.min_bucket.advice": "Set min_bucket_reso to {fixed}.",
    "check.caption_unreadable": "{count} caption file(s) cannot be read: {names}.",
    "check.caption_unreadable.advice": "Open them in a text editor and save them as UTF-8.",
    "check.no_caption": "{count} picture(s) have no caption or an empty one (they train with the folder's name).",
    "check.no_caption.advice": "Tag them (Tagging), or give them the trigger word.",
    "check.no_trigger": "{count} caption(s) lack the trigger word '{trigger}'.",
    "check.no_trigger.advice": "Put the trigger word first in every caption.",
    "check.long_captions": "{count} caption(s) are longer than the {limit} tokens the text encoder reads; the rest "
                           "is cut: {names}.",
    "check.long_captions.advice": "Remove tags that say little, or fold traits into the trigger word.",
    "check.everywhere": "{count} tag(s) are on every picture: {names}.",
    "check.everywhere.advice": "Fold the character's traits into the trigger word (they are then learnt as part of "
                               "it), or remove tags that describe nothing.",
    "fix.rename_folder": "Name them 10_<name>",
    "fix.move_unreadable": "Move them out of the dataset",
    "fix.move_duplicates": "Move the duplicates out",
    "fix.buckets_on": "Turn buckets on",
    "fix.min_bucket": "Set it to {value}",
    "fix.fill_trigger": "Caption them '{trigger}'",
    "fix.add_trigger": "Put '{trigger}' first",
    "fix.fold": "Fold into the trigger word",
    "check.blocking": "Stops training: ",
    "goal.character": "character",
    "goal.style": "style",
    "goal.concept": "concept",
}

PREPARE = {
    "plan.focal_not_numbers": "its focal point {value} is not two numbers: the centre is used",
    "plan.focal_outside": "its focal point ({x:g}, {y:g}) lies outside the picture (0…1): it is clamped",
    "plan.no_decoder": "the {suffix} format cannot be read here (no decoder for it)",
    "plan.no_decoder.advice": "convert it to PNG or JPEG and import it again",
    "plan.unreadable": "cannot be read ({why})",
    "plan.unreadable.advice": "check that the file exists",
    "plan.too_small": "it is too small to train on ({size} px; at least {min_side} px a side)",
    "plan.too_small.advice": "use a larger version of the picture, or remove it",
    "plan.too_large": "it is too large to decode safely ({size} px, over {megapixels:.0f} megapixels)",
    "plan.too_large.advice": "shrink it in an image editor (under 8192 px a side is plenty) and import it again",
    "plan.transparent": "it is fully transparent: every pixel is invisible, it would train a blank picture",
    "plan.transparent.advice": "export it again with its alpha channel (or without transparency), or remove it",
    "plan.same_stem": "it has the same name as {other} apart from the extension; both would become {target}",
    "plan.same_stem.advice": "rename one of them in the originals folder (captions go by the name), then prepare "
                             "again",
    "plan.note.enlarged": "smaller than the training size: enlarged ×{scale:.2f} ({size} → {out}); a larger "
                          "original gives a sharper result",
    "plan.note.huge": "huge ({size} px): downscaled ×{scale:.3f}",
    "plan.note.huge_jpeg": "huge ({size} px): downscaled ×{scale:.3f}; decoded at a reduced scale",
    "plan.note.animated": "animated ({frames} frames): only the first frame is used",
    "plan.note.cropped_focal": "cropped to {out}: {lost:.0%} of the picture is cut off around its focal point",
    "plan.note.cropped_centre": "cropped to {out}: {lost:.0%} of the picture is cut off (centre crop)",
    "plan.warn.empty": "{folder} holds no pictures: import pictures for this concept first.",
    "plan.warn.refused": "{count} picture(s) cannot be used and are left out ({names}).",
    "plan.warn.enlarged": "{count} picture(s) are smaller than the training size and will be enlarged, up to "
                          "×{scale:.2f} ({worst}): enlarged pictures look soft. Use larger originals where you can "
                          "({names}).",
    "plan.warn.huge": "{count} huge picture(s) (over {side} px a side) are downscaled safely; smaller exports would "
                      "prepare faster ({names}).",
    "plan.warn.animated": "{count} animated picture(s): only their first frame is used ({names}).",
    "plan.warn.buckets_off": "Buckets are off: {count} of {total} pictures do not have the {width}×{height} shape "
                             "({shapes} different shapes) and are cropped to it, cutting off part of each ({names}). "
                             "Turn buckets on to keep each picture's shape, or set focal points so the crop keeps "
                             "the subject.",
    "plan.warn.stale": "{count} prepared picture(s) in img/ have no original any more and will be removed "
                       "({names}).",
    "prepare.other_picture": "{other} is another picture named '{stem}'; training would use it beside the "
                             "prepared {name}",
    "prepare.other_picture.advice": "move it out of the folder, or rename it if it is a picture of its own",
    "prepare.not_ours": "{name} was not made by Prepare (put there or edited by hand); preparing would overwrite it",
    "prepare.not_ours.advice": "move it out of the folder (edit the picture in originals/ instead), or prepare with "
                               "'overwrite' to replace it",
    "prepare.cannot_write": "cannot write {target}: {why}",
    "prepare.write.advice": "check that the drive is not full or read-only and that you may write to the project "
                            "folder",
    "prepare.disk_full.advice": "free some space on the drive, then prepare again",
    "prepare.no_memory": "there is not enough memory to prepare it",
    "prepare.no_memory.advice": "shrink it in an image editor, or close other programs and prepare again",
    "prepare.unexpected": "unexpected error ({error})",
    "prepare.unexpected.advice": "prepare again; if it repeats, report it with this picture",
    "prepare.cannot_remove": "cannot remove it: {why}",
    "prepare.summary": "Prepared {count} picture(s) in {folder}.",
    "prepare.summary.details": "Prepared {count} picture(s) in {folder} ({details}).",
    "prepare.summary.kept": "{count} already up to date",
    "prepare.summary.removed": "{count} removed",
    "prepare.summary.failed": "{count} failed",
    "prepare.summary.stopped": "Stopped before the end: run it again to finish.",
    "focus.no_cv2": "OpenCV (cv2) is not installed here, so faces are not detected",
    "focus.no_cascade": "OpenCV {version} has no bundled {file}, so faces are not detected",
    "focus.faces": "faces: OpenCV {version} frontal-face Haar cascade",
    "focus.status": "{faces}; subjects on a transparent or plain background are found without it.",
    "focus.status.install": "{faces}; subjects on a transparent or plain background are found without it. "
                            "Installing opencv-python (A1111 and Forge include it) adds faces.",
}

LIBRARY = {
    "dataset.named": "{name}: {text}",
    "dataset.failure": "{name}: {reason} ({advice})",
    "list.comma": "{first}, {rest}",
    "list.semicolon": "{first}; {rest}",
    "import.skip.duplicate": "a duplicate",
    "import.skip.present": "already in the project",
    "tag.skip.has_caption": "it has a caption already (skip)",
    "tag.skip.no_tag": "no tag reached the thresholds",
    "tag.skip.complete": "its caption holds every tag already",
    "tag.changed": "{path} was changed elsewhere while the picture was tagged, so it was left as it is",
    "tag.changed.advice": "tag this picture again (in another tab or program the caption is edited)",
    "tag.cannot_write": "cannot write {path} ({why})",
    "tag.cannot_write.advice": "check that the folder may be written (not read-only, not open elsewhere)",
    "tag.no_undo": "the undo entry could not be saved ({why})",
    "tag.no_undo.advice": "the captions are written; check that the project folder may be written",
    "tag.summary": "Tagged {written} of {total} pictures in {folder} with {tagger}.",
    "tag.summary.details": "Tagged {written} of {total} pictures in {folder} with {tagger}; {details}.",
    "tag.summary.skipped": "{count} left as they were",
    "tag.summary.failed": "{count} failed",
    "tag.summary.stopped": "stopped after {count}",
    "tag.summary.not_read": "{count} file(s) of formats training does not read were left out (convert them to PNG "
                            "or JPEG).",
    "caption.changed": "changed elsewhere since it was read (another tab or program?): reload the captions and edit "
                       "again",
    "caption.cannot_write": "cannot be written ({why}): check the folder is writable",
    "edit.add": "add {tags}",
    "edit.remove": "remove {tags}",
    "edit.replace": "replace {old} with {new}",
    "edit.move": "move {tags} to the front",
    "edit.fold": "fold {traits} into {trigger}",
    "edit.one": "edit {name}",
    "edit.autotag": "auto-tagging with {tagger}",
    "fix.gone": "{path} is not in the training folder any more",
    "fix.exists": "{target} exists already: rename {folder} by hand",
    "bench.dup.same_bytes": "same bytes",
    "bench.dup.near": "near duplicate",
}

# refusals of the project, import, crop-and-resize, caption-edit and regularization steps
REFUSALS = {
    "dataset.choose_one": "choose one of: {names}",
    "dataset.reason_advice": "{reason} ({advice})",
    "dataset.not_folder": "{folder} is not a folder",
    "dataset.writable.advice": "check that the project folder is writable and the disk has space",
    "list.or": "{first} or {rest}",
    "word.trigger": "trigger word",
    "word.class": "class word",
    "project.empty_word": "the {what} is empty",
    "project.empty_word.advice": "type a {what}, e.g. a made-up word like 'zkz' for a character",
    "project.bad_char": "the {what} '{word}' holds a character a folder name cannot have",
    "project.bad_char.advice": "leave out \\ / : * ? \" < > |",
    "project.no_concept": "the project has no concept '{trigger}'",
    "project.no_concept.none": "none yet: import first",
    "project.bad_goal": "'{goal}' is not a goal",
    "project.bad_goal.advice": "choose character, style or concept",
    "project.bad_repeats": "repeats {repeats} is out of range",
    "project.bad_repeats.advice": "use 1 to 1000 (10 is common for 20–50 images)",
    "project.is_file": "{root} is a file",
    "project.is_file.advice": "choose a folder for the project",
    "project.missing": "{root} is not a dataset project ({file} is missing)",
    "project.missing.advice": "create a project there first (Import), or choose the project's folder",
    "project.unreadable": "{path} cannot be read: {error}",
    "project.unreadable.advice": "restore it from a backup, or delete it and import the pictures again",
    "import.no_source": "the source folder {folder} does not exist or is not a folder",
    "import.no_source.advice": "choose the folder that holds your pictures",
    "import.overlap": "the source folder {folder} and the project folder {project} overlap",
    "import.overlap.advice": "keep the project in a folder of its own, outside the pictures' folder",
    "import.cannot_copy": "{name} could not be copied into {folder}: {why}",
    "reg.count": "{count} regularization images is out of range",
    "reg.count.advice": "ask for 1 to {most}",
    "reg.cannot_write": "cannot write into {folder}: {why}",
    "plan.bad_resolution": "the resolution {side} is not a multiple of 64 between 64 and 4096",
    "plan.bad_resolution.advice": "use {good} (512 for SD 1.5, 1024 for SDXL)",
    "plan.not_square": "the resolution {width}×{height} is not a square, but buckets are on",
    "plan.not_square.advice": "use one number (e.g. 512): buckets then keep each picture's own shape",
    "plan.no_picture": "no picture '{picture}' in the project",
    "plan.no_picture.advice": "scan the project again: it may have been removed",
    "crop.background": "background colour",
    "crop.not_colour": "the {setting} {value} is not a colour",
    "crop.not_colour.advice": "use a hex colour like #ffffff (white), #000000 (black) or a name like 'white'",
    "crop.no_memory": "there is not enough memory to decode it",
    "crop.too_large.advice": "shrink it in an image editor (under 8192 px a side is plenty for training) and import "
                             "it again, or remove it",
    "prepare.cannot_write_folder": "cannot write to the folder {folder}: {why}",
    "prepare.cannot_write_folder.advice": "make the folder writable (its permissions, or a drive that is not "
                                          "read-only or full), or put the project in another folder",
    "focus.not_numbers": "the focal point ({x}, {y}) of {picture} is not two numbers",
    "focus.not_numbers.advice": "click on the picture to set it",
    "focus.outside": "the focal point ({x:g}, {y:g}) of {picture} lies outside the picture",
    "focus.outside.advice": "use x and y between 0 and 1 (a click on the picture gives them)",
    "fix.no_trigger": "this fix needs the trigger word",
    "fix.no_trigger.advice": "type the concept's trigger word first",
    "fix.unknown": "there is no fix called {kind}",
    "fix.unknown.advice": "run the checks again",
    "edit.no_trigger": "there is no trigger word to fold the traits into",
    "edit.no_trigger.advice": "type the concept's trigger word",
    "edit.nothing_to_undo": "there is nothing to undo",
    "edit.nothing_to_undo.advice": "the edits of this project have all been undone",
    "edit.bad_history": "the edit history {path} cannot be read: {error}",
    "edit.bad_history.advice": "delete that file to undo the edit before it",
}
register(TEMPLATES)
register(PREPARE)
register(LIBRARY)
register(REFUSALS)

DUPLICATE_KINDS = {"same bytes": "bench.dup.same_bytes", "near duplicate": "bench.dup.near"}


def duplicate_kind(kind: str) -> Message | str:
    """The scan's kind of duplicate group ("same bytes", "near duplicate") as words a user reads."""
    return msg(DUPLICATE_KINDS[kind]) if kind in DUPLICATE_KINDS else kind


def said(value: Any, language: str | None = "en") -> str:
    """A ``Message`` or ``Sentence`` (an image loader's reason) in ``language``; anything else (an error's English
    text, a name) as it is."""
    return localized(value, language)


def joined(items: Iterable[Any], key: str = "list.comma") -> Any:
    """Several sentences or words as one ``Message`` (", " or "; " in English, "，" or "；" in Chinese); one
    item as it is, none as ""."""
    items = list(items)
    if not items:
        return ""
    out = items[-1]
    for item in reversed(items[:-1]):
        out = msg(key, first=item, rest=out)
    return out


def sentences(items: Iterable[Any], language: str | None = "en") -> str:
    """Whole sentences one after the other: a space between them in English, none in Chinese."""
    gap = "" if normalize_language(language) == "zh_CN" else " "
    return gap.join(said(item, language) for item in items if item)
