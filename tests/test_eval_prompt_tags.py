"""<lora:NAME:W> tags: parse, rename, reweight, add (pure string work)."""
from __future__ import annotations

from lora_trainer.evaluate.prompt_tags import (add_lora, find_lora_tags, format_weight, has_words,
                                               set_last_lora_weight, set_lora)


def test_find_tags_as_the_hosts_read_them():
    prompt = "a girl, <lora:dream girl-000003:0.7>, <LyCo:style:0.5:1.0>, <hypernet:x:1> <lora:bare>"
    tags = find_lora_tags(prompt)
    assert [(t.kind, t.name, t.weight) for t in tags] == [("lora", "dream girl-000003", 0.7), ("LyCo", "style", 0.5),
                                                          ("lora", "bare", None)]
    assert prompt[tags[0].start:tags[0].end] == "<lora:dream girl-000003:0.7>"
    assert find_lora_tags("<lora:x:te=0.3:unet=1>")[0].weight == 0.3
    assert find_lora_tags("") == [] and find_lora_tags(None) == []


def test_format_weight():
    assert [format_weight(w) for w in (0.6, 1.0, 0.30000000000000004, 0, -0.0, 1.25, 0.12345)] == [
        "0.6", "1", "0.3", "0", "0", "1.25", "0.1235"]


def test_reweight_keeps_other_parameters():
    def reweight(text, w):
        return find_lora_tags(text)[0].reweighted(w).text
    assert reweight("<lora:a:0.8>", 0.6) == "<lora:a:0.6>"
    assert reweight("<lora:a:0.5:1.0>", 0.6) == "<lora:a:0.6:0.6>"          # te and unet
    assert reweight("<lora:a:te=0.5:unet=1:dyn=8>", 0.4) == "<lora:a:te=0.4:unet=0.4:dyn=8>"
    assert reweight("<lora:a>", 0.7) == "<lora:a:0.7>"
    assert reweight("<lora:a:dyn=8>", 0.7) == "<lora:a:0.7:dyn=8>"


def test_set_lora_renames_or_reweights_the_first_matching_tag():
    prompt = "x <lora:style:0.5> <lora:run-000002:0.8> <lora:run-000003:0.9>"
    belongs = lambda name: name.startswith("run")  # noqa: E731
    out, found = set_lora(prompt, belongs, name="run-000007")
    assert found and out == "x <lora:style:0.5> <lora:run-000007:0.8> <lora:run-000003:0.9>"
    out, found = set_lora(prompt, belongs, weight=0.4)
    assert out == "x <lora:style:0.5> <lora:run-000002:0.4> <lora:run-000003:0.9>"
    assert set_lora("no tags", belongs, weight=1) == ("no tags", False)
    assert set_last_lora_weight(prompt, 0.2)[0].endswith("<lora:run-000003:0.2>")
    assert set_last_lora_weight("plain", 0.2) == ("plain", False)


def test_add_lora_with_the_trigger_word_once():
    assert add_lora("a girl, smiling", "dream-000002", 0.6, "dreamgirl") == \
        "dreamgirl, a girl, smiling <lora:dream-000002:0.6>"
    assert add_lora("Dreamgirl on a beach", "d", 1.0, "dreamgirl") == "Dreamgirl on a beach <lora:d:1>"
    assert add_lora("", "d", 1.0, "zkz") == "zkz <lora:d:1>"
    assert add_lora("", "d", 1.0) == "<lora:d:1>"
    # a tag's name is not the trigger word in the text
    assert add_lora("<lora:zkz:1>", "d", 1.0, "zkz").startswith("zkz, <lora:zkz:1>")


def test_has_words_matches_whole_words_only():
    assert has_words("a zkz shape", "zkz") and not has_words("a zkzz shape", "zkz")
    assert has_words("红发 女孩, 1girl", "红发 女孩") and has_words("x", "")
