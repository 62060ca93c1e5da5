"""Keyed sentences in each language (that every key has its Chinese: tests/test_keyed_sentences.py)."""
from __future__ import annotations


import lora_trainer.config.user_presets  # noqa: F401  (registers the user presets' sentences)
import lora_trainer.dataset.checks  # noqa: F401  (registers the workbench's sentences)
import lora_trainer.evaluate.messages  # noqa: F401  (registers the evaluation's sentences)
import lora_trainer.ui.dataset.messages  # noqa: F401  (registers the workbench UI's sentences)
from lora_trainer.text.messages import msg, normalize_language


def test_a_sentence_in_each_language():
    m = msg("check.few_images", count=3, goal=msg("goal.character"), low=15)
    assert str(m) == "3 pictures for a character; the tutorials use at least 15."
    assert m.format("zh_CN") == "训练角色用了 3 张图片；教程建议至少 15 张。"
    assert normalize_language("zh-CN") == "zh_CN" and normalize_language("de_DE") == "en"


def test_a_record_read_back_keeps_each_language():
    import copy
    import pickle

    from lora_trainer.text.messages import Translated, localized, read_back

    lines = read_back(["Saved a", "plain", 3], {"zh_CN": ["已保存 a", None]})
    assert [localized(line, "zh_CN") for line in lines] == ["已保存 a", "plain", "3"]
    assert lines[0] == "Saved a" and localized(lines[0], "en") == "Saved a"
    again = pickle.loads(pickle.dumps(copy.deepcopy(lines[0])))
    assert isinstance(again, Translated) and again.in_language("zh-CN") == "已保存 a"
