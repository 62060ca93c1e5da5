"""Tags as captions: the host's interrogator text read into tags, the tag options checked, underscores and
kaomoji, exclusions, and captions appended / replaced / skipped with the trigger word first."""
from __future__ import annotations

import pytest
from PIL import Image

from lora_trainer.dataset.autotag import tag_image
from lora_trainer.dataset.tagging import (HostTagger, TagOptions, caption_tag, clean_tags, host_taggers, merge_caption,
                                          parse_interrogation)
from lora_trainer.errors import DatasetError


# --- the WebUI's interrogators -----------------------------------------------------------------------
def test_deepbooru_text_with_weights_and_escapes_becomes_tags():
    text = r"1girl, (long_hair:0.912), artist \(style\), (hatsune miku \(cosplay\):0.77), :\), ^_^,  , solo"
    assert parse_interrogation(text) == [("1girl", 1.0), ("long_hair", 0.912), ("artist (style)", 1.0),
                                         ("hatsune miku (cosplay)", 0.77), (":)", 1.0), ("^_^", 1.0), ("solo", 1.0)]
    assert parse_interrogation("a woman standing in a field, (oil painting:0.213)\n") == [
        ("a woman standing in a field", 1.0), ("oil painting", 0.213)]
    with pytest.raises(DatasetError, match="not text"):
        parse_interrogation(None)


def test_a_host_interrogator_is_a_tagger_through_a_plain_callable():
    calls = []

    def interrogate(image, name):      # what the host adapter's interrogate looks like
        calls.append((name, image.mode))
        return r"1girl, long_hair, smile \(happy\)" if name == "deepbooru" else "a girl with long hair"

    deepbooru, clip = host_taggers(["deepbooru", "clip"], interrogate)
    image = Image.new("RGBA", (16, 16), (255, 0, 0, 255))
    assert deepbooru.name == "deepbooru" and deepbooru.label == "DeepBooru (WebUI)" and deepbooru.kind == "tags"
    assert clip.kind == "sentence"
    assert [t for t, _ in deepbooru.tag(image)] == ["1girl", "long_hair", "smile (happy)"]
    assert clip.tag(image) == [("a girl with long hair", 1.0)]
    assert calls == [("deepbooru", "RGB"), ("clip", "RGB")]
    preview = tag_image(image, deepbooru, TagOptions(trigger="zkz"))
    assert preview.caption == "zkz, 1girl, long hair, smile (happy)"
    with pytest.raises(TypeError):
        HostTagger("deepbooru", "not callable")


# --- options, tags, captions -------------------------------------------------------------------------
def test_options_are_checked_and_each_bad_setting_is_named():
    ok = TagOptions(general_threshold="0.5", exclude="a, b\nc", caption_extension="caption", trigger="  my  char ")
    ok = ok.checked()
    assert ok.general_threshold == 0.5 and ok.exclude == ["a", "b", "c"] and ok.caption_extension == ".caption"
    assert ok.trigger == "my char"
    for bad, word in ((dict(general_threshold=1.5), "general threshold"), (dict(character_threshold="x"), "character"),
                      (dict(existing="merge"), "merge"), (dict(caption_extension=".png"), "extension"),
                      (dict(trigger="a, b"), "comma"), (dict(general_threshold=True), "general")):
        with pytest.raises(DatasetError, match=word):
            TagOptions(**bad).checked()


def test_underscores_become_spaces_but_kaomoji_stay_and_exclusions_match_any_spelling():
    assert caption_tag("long_hair") == "long hair" and caption_tag("^_^") == "^_^" and caption_tag(">_<") == ">_<"
    assert caption_tag("o_o") == "o_o" and caption_tag("long_hair", underscores_to_spaces=False) == "long_hair"
    scores = [("1girl", 0.9), ("Long_Hair", 0.8), ("long hair", 0.7), ("white_background", 0.6), ("^_^", 0.5),
              ("simple_background", 0.4), ("solo", 0.3)]
    cleaned = clean_tags(scores, TagOptions(exclude=["SOLO", "*_background"]))
    assert cleaned == [("1girl", 0.9), ("Long Hair", 0.8), ("^_^", 0.5)]


def test_append_replace_skip_and_the_trigger_first_once():
    assert merge_caption("zkz, smile, long hair", ["long_hair", "1girl"], "append", "zkz") == \
        "zkz, smile, long hair, 1girl"
    assert merge_caption("smile, ZKZ", ["1girl"], "append", "zkz") == "zkz, smile, 1girl"
    assert merge_caption("smile", ["1girl", "zkz"], "replace", "zkz") == "zkz, 1girl"
    assert merge_caption("smile", ["1girl"], "skip", "zkz") is None
    assert merge_caption("", ["1girl"], "skip", "zkz") == "zkz, 1girl"
    assert merge_caption(None, ["1girl", "1girl"], "append") == "1girl"
    with pytest.raises(DatasetError):
        merge_caption("a", ["b"], "merge")
