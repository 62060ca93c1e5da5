"""The auto-tagger's refusals (its options, the taggers, caption files, WD14 model folders and downloads): English
templates by key; Chinese in ``text/zh_CN.json``. The summary of a run and why a picture was skipped are in
``messages.py``."""
from __future__ import annotations

from ..text.messages import register

TAGGING = {
    "tag.general_threshold": "general threshold",
    "tag.character_threshold": "character threshold",
    "tag.bad_threshold": "{what} {value} is not a number from 0 to 1",
    "tag.bad_mode": "'{mode}' is not a way to treat existing captions (append, replace or skip)",
    "tag.bad_extension": "caption extension '{extension}' cannot be used (e.g. .txt or .caption)",
    "tag.comma_trigger": "trigger word '{trigger}' holds a comma, which would split it into two tags",
    "tag.bad_settings": "the tagging settings need fixing: {problems}",
    "tag.bad_settings.advice": "thresholds go from 0 to 1 (WD14: 0.35 general, 0.85 character are common); choose "
                               "append, replace or skip; a trigger word is one tag without commas",
    "tag.unknown_mode": "'{mode}' is not a way to treat existing captions",
    "tag.unknown_mode.advice": "choose append, replace or skip",
    "tag.not_text": "the tagger answered {kind}, not text",
    "tag.not_text.advice": "this is a fault of the tagger: try another one, or tell us which one it was",
    "tag.no_runtime": "The WD14 tagger needs onnxruntime, which is not installed: {advice}.",
    "tag.no_model": "No WD14 model found in {where}: download one (e.g. SmilingWolf/wd-swinv2-tagger-v3) or choose a "
                    "folder holding model.onnx and selected_tags.csv.",
    "tag.models_folder": "the models folder",
    "tag.no_tagger": "there is no tagger '{name}'",
    "tag.no_tagger.none": "none available: the WebUI's DeepBooru/CLIP, or a WD14 model folder",
    "tag.caption_unreadable": "cannot read caption file {path} ({why})",
    "tag.caption_unreadable.advice": "check that you may read it and that no other program holds it",
    "tag.caption_not_utf8": "caption file {path} is not UTF-8 text (undecodable byte at position {position}), so it "
                            "was left as it is",
    "tag.caption_not_utf8.advice": "save it as UTF-8 in a text editor (or delete it), then tag again",
    "tag.picture_unreadable": "it cannot be read ({why})",
    "tag.picture_corrupt": "corrupt or unreadable ({error})",
    "tag.the_picture": "the picture",
    "tag.tagger_failed": "the tagger {tagger} failed on {what} ({error})",
    "tag.tagger_failed.advice": "try another tagger; if it fails on every picture, restart the WebUI",
    "tag.not_folder.advice": "choose the folder of pictures to tag (a project's concept folder: "
                             "<project>/img/<N>_<trigger>)",
    "tag.no_pictures": "{folder} holds no pictures to tag",
    "tag.no_pictures.found": "{folder} holds no pictures to tag (found only {names}, which are not read)",
    "tag.no_pictures.advice": "put {extensions} files there, or choose another folder",
}

WD14 = {
    "wd14.install.advice": "install it with the Dataset tab's 'Install onnxruntime' button (it installs only when "
                           "nothing of the WebUI's own packages changes), or by hand into the WebUI's Python: python "
                           "-m pip install onnxruntime; or tag with the WebUI's DeepBooru or CLIP instead",
    "wd14.broken": "onnxruntime is installed but cannot be loaded ({error})",
    "wd14.broken.advice": "install it again into the WebUI's Python (python -m pip install --force-reinstall "
                          "--no-deps onnxruntime); on Windows the Microsoft Visual C++ Redistributable may be missing",
    "wd14.no_file": "{folder} has no {name}",
    "wd14.no_files": "{folder} has no {first} and no {second}",
    "wd14.bad_folder": "WD14 model folder: {problem}",
    "wd14.bad_folder.advice": "choose a folder holding {model_file} and {tags_file} from the same Hugging Face "
                              "repository (e.g. SmilingWolf/wd-swinv2-tagger-v3), or download one",
    "wd14.labels.advice": "download {tags_file} again from the model's repository (it must match {model_file})",
    "wd14.cannot_read": "cannot read {path} ({why})",
    "wd14.not_utf8": "{path} is not UTF-8 text (byte {position})",
    "wd14.no_columns": "{path} has no 'name' and 'category' columns (found: {found})",
    "wd14.nothing": "nothing",
    "wd14.bad_category": "{path}, line {line}: category '{value}' is not a number",
    "wd14.no_name": "{path}, line {line}: the tag has no name",
    "wd14.no_tags": "{path} lists no tags",
    "wd14.cannot_load": "{model} cannot be loaded by onnxruntime ({reason})",
    "wd14.cannot_load.advice": "download the model again (the file may be incomplete), or choose another model folder",
    "wd14.bad_input": "{model} is not a WD14-style tagger: it takes {found}, not one float picture "
                      "[batch, height, width, 3]",
    "wd14.none": "none",
    "wd14.bad_input.advice": "choose a SmilingWolf wd-v1-4-*-tagger-v2 or wd-*-tagger-v3 model",
    "wd14.bad_output": "{model} gives {size} scores, but its {tags_file} lists {count} tags",
    "wd14.no_output": "{model} gives no scores, but its {tags_file} lists {count} tags",
    "wd14.wrong_scores": "{model} gave {size} scores for {count} tags",
    "wd14.same_repo.advice": "{model_file} and {tags_file} must come from the same repository: download both again",
    "wd14.bad_repo": "'{repo}' is not a Hugging Face repository name",
    "wd14.bad_repo.advice": "write it as owner/name, e.g. {example}",
    "wd14.cannot_create": "cannot create {folder} ({why})",
    "wd14.cannot_create.advice": "choose a models folder you may write to",
    "wd14.cannot_place": "cannot put the downloaded model into {folder} ({why})",
    "wd14.cannot_place.advice": "check that the folder may be written and is not open in another program",
    "wd14.dl.not_found": "the repository {repo} does not exist or may not be read without logging in",
    "wd14.dl.no_file": "the repository {repo} has no {name}",
    "wd14.dl.offline": "the download was refused: Hugging Face is unreachable or offline mode (HF_HUB_OFFLINE) is on",
    "wd14.dl.failed": "could not download {name} of {repo}: {why}",
    "wd14.dl.failed.advice": "check the connection and the repository name, or download {model_file} and {tags_file} "
                             "from huggingface.co/{repo} by hand into {folder}",
}
register(TAGGING)
register(WD14)
