"""Every keyed sentence has its Chinese template, with the same placeholders."""
from __future__ import annotations

import string

import lora_trainer.config.user_presets  # noqa: F401  (registers the user presets' sentences)
import lora_trainer.dataset.checks  # noqa: F401  (registers the workbench's sentences)
import lora_trainer.evaluate.messages  # noqa: F401  (registers the evaluation's sentences)
import lora_trainer.ui.dataset.messages  # noqa: F401  (registers the workbench UI's sentences)
from lora_trainer.text.messages import ENGLISH, msg, normalize_language, translations


def fields(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def test_every_sentence_has_a_chinese_template_with_the_same_placeholders():
    zh = translations("zh_CN")
    assert sorted(set(ENGLISH) - set(zh)) == []
    assert sorted(set(zh) - set(ENGLISH)) == [], "templates for sentences nobody says"
    assert {k: (fields(ENGLISH[k]), fields(zh[k])) for k in ENGLISH if fields(ENGLISH[k]) != fields(zh[k])} == {}


def test_a_sentence_in_each_language():
    m = msg("check.few_images", count=3, goal=msg("goal.character"), low=15)
    assert str(m) == "3 pictures for a character; the tutorials use at least 15."
    assert m.format("zh_CN") == "训练角色用了 3 张图片；教程建议至少 15 张。"
    assert normalize_language("zh-CN") == "zh_CN" and normalize_language("de_DE") == "en"
