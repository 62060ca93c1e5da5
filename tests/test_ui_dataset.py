"""The Dataset workbench's actions as the tab calls them (gradio-free): project, import, captions, checks,
fixes, hand-off; paths of a shared host confined."""
from __future__ import annotations

import pytest

from lora_trainer.config.schema import TrainConfig
from lora_trainer.hosts.standalone import StandaloneAdapter
from lora_trainer.ui.dataset import caption_actions as ca
from lora_trainer.ui.dataset import check_actions as cka
from lora_trainer.ui.dataset import project_actions as pa
from test_dataset_project import textured


@pytest.fixture
def world(tmp_path, monkeypatch):
    monkeypatch.setenv("LORA_TRAINER_LANGUAGE", "en")   # the standalone host reads the user's language from LANG
    host = StandaloneAdapter(lora_dir=str(tmp_path / "loras"))
    src = tmp_path / "pictures"
    for i in range(4):
        textured(src / f"{i}.png", size=(512, 512), seed=i * 11)
        (src / f"{i}.txt").write_text("1girl, blue hair, smile" if i else "1girl, blue hair", encoding="utf-8")
    (src / "3 copy.png").write_bytes((src / "3.png").read_bytes())
    return host, src, tmp_path


def test_import_captions_checks_and_hand_off(world):
    host, src, tmp = world
    look = pa.look_at_pictures("my lora", str(src), [], "character", host)
    assert "same bytes" in look.message and look.repeats == 75
    box = pa.run_import("my lora", look.plan, "zkz", "girl", "character", 10, False, host)
    assert "4 picture(s) and 4 caption(s) imported" in box
    assert pa.project_choices(host) == ["my lora"]

    view = ca.caption_view("my lora", ca.ALL, "", host)
    assert len(view.gallery) == 4 and view.frequency[0] == ["1girl", 4]
    assert view.fold_choices == ["1girl (4/4)", "blue hair (4/4)", "smile (3/4)"]
    shown, pending = ca.preview_fold("my lora", "zkz", ["blue hair (4/4)"], host)
    assert "4 caption(s) would change" in shown and pending.changes[0].after.startswith("zkz")
    assert "4 caption(s) written" in ca.apply_pending("my lora", pending, host)
    assert "Undone" in ca.undo("my lora", host)
    _, pending = ca.preview_batch("my lora", ca.ALL, "remove", "smile", "", True, "smile", host)
    assert len(pending.changes) == 3
    ca.apply_pending("my lora", pending, host)
    image = ca.caption_view("my lora", "zkz", "", host).images[0]
    assert "Caption saved" in ca.save_one("my lora", image, "zkz, 1girl", host)

    project = pa.open_project("my lora", host, create=False)
    box, findings = cka.run_checks(str(project.img_dir), TrainConfig(), "character", "zkz", host)
    keys = [f.key for f in findings]
    assert "no_trigger" in keys and "few_images" in keys
    picked = next(c for c in cka.fix_choices(findings) if "first" in c)
    fixed, setting = cka.run_fix(str(project.img_dir), findings, picked, "zkz", TrainConfig(), host)
    assert "Put &#x27;zkz&#x27; first" in fixed and "1.png: zkz, 1girl" in fixed and setting == {}

    cfg, changed = pa.training_config(project, TrainConfig(keep_tokens=0))
    assert cfg.train_data_dir == str(project.img_dir) and cfg.keep_tokens == 1 and cfg.network_dim == 32
    assert any(line.startswith("train_data_dir") for line in changed)


def test_a_shared_host_keeps_the_workbench_in_its_folders(world):
    _, src, tmp = world
    shared = StandaloneAdapter(lora_dir=str(tmp / "loras"), shared=True)
    assert "outside the folders" in pa.look_at_pictures("p", str(src), [], "character", shared).message
    assert "outside the folders" in pa.look_at_pictures("/etc/evil", "", [], "character", shared).message
    box, findings = cka.run_checks("/etc", TrainConfig(), "character", "", shared)
    assert "outside the folders" in box and findings == []


class TaggingHost(StandaloneAdapter):
    """A standalone host that also has the WebUI's interrogators (a fake DeepBooru) and a models folder."""

    def __init__(self, models, **kw):
        super().__init__(**kw)
        self._models = models

    def interrogators(self):
        return ["deepbooru"]

    def interrogate(self, image, name):
        return "1girl, (long_hair:1.1), smile"

    def models_dir(self):
        return self._models


def test_tagging_with_the_hosts_tagger_and_a_wd14_model(world, tmp_path):
    import threading

    from lora_trainer.ui.dataset import tag_actions as ta

    _, src, _ = world
    models = tmp_path / "models"
    host = TaggingHost(str(models), lora_dir=str(tmp_path / "loras"))
    look = pa.look_at_pictures("p", str(src), [], "character", host)
    pa.run_import("p", look.plan, "zkz", "", "character", 5, False, host)
    labels, note = ta.tagger_choices(host)
    assert labels[0].lower().startswith("deepbooru") and note
    shown = ta.preview("p", ca.ALL, labels[0], 0.35, 0.85, "", True, "replace", host)
    assert "zkz, 1girl, long hair, smile" in shown
    steps = list(ta.run_tagging("p", ca.ALL, labels[0], 0.35, 0.85, "smile", True, "replace", host,
                                threading.Event()))
    assert "Tagged" in steps[-1]
    project = pa.open_project("p", host, create=False)
    captions = [p.read_text(encoding="utf-8").strip() for p in sorted(project.concept_dir(project.concepts[0])
                                                                       .glob("*.txt"))]
    assert captions and all(c == "zkz, 1girl, long hair" for c in captions)
    assert "Undone" in ca.undo("p", host)   # the whole run in one step

    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from test_dataset_tagging import build_tiny_tagger

    build_tiny_tagger(models / "wd14" / "tiny")
    labels, note = ta.tagger_choices(host)
    wd14 = next(label for label in labels if "tiny" in label)
    assert note == "" and "1girl" in ta.preview("p", ca.ALL, wd14, 0.35, 0.85, "", True, "append", host)


class ChineseHost(TaggingHost):
    """A host whose user reads Chinese, with a model that draws plain pictures."""

    def language(self):
        return "zh_CN"

    def generate_image(self, prompt, negative_prompt, seed, width, height):
        from PIL import Image

        return Image.new("RGB", (width, height), (seed % 256, 90, 160))


def shown_in_chinese(html: str) -> list[str]:
    """The texts of a message box as the WebUI shows them in Chinese: a text that is a key of the localization
    file replaced by its translation, every other text (the keyed sentences) as it is."""
    import json

    from test_ui_localization import ZH_CN, html_texts

    table = json.loads(ZH_CN.read_text(encoding="utf-8"))
    return [table.get(text, text) for text in html_texts(html)]


def english_left(text: str, data: list[str]) -> list[str]:
    """English words of ``text`` once the data in it (paths, file names, tags, names) is taken out."""
    import re

    for value in sorted(data, key=len, reverse=True):
        text = text.replace(value, " ")
    text = re.sub(r"[^\s（(]*/[^\s）)，]*|\S+\.(png|txt)\b", " ", text)     # paths and file names
    return [w for w in re.findall(r"[A-Za-z]{3,}", text) if w not in ("OpenCV", "Haar", "opencv", "python", "Forge")]


def test_the_workbench_speaks_chinese(world, tmp_path):
    import threading

    from PIL import Image

    from lora_trainer.ui.dataset import prepare_actions as ppa
    from lora_trainer.ui.dataset import tag_actions as ta

    _, src, _ = world
    Image.new("RGB", (96, 160), "teal").save(src / "small.png")    # enlarged when prepared: a note and a warning
    Image.new("RGB", (40, 300), "red").save(src / "tiny.png")       # refused: too small to train on
    host = ChineseHost(str(tmp_path / "models"), lora_dir=str(tmp_path / "loras"))
    boxes = {}
    look = pa.look_at_pictures("p", str(src), [], "character", host)
    boxes["look"] = look.message
    boxes["import"] = pa.run_import("p", look.plan, "zkz", "girl", "character", 10, False, host)
    boxes["plan"] = ppa.show_plan("p", 256, True, "#ffffff", host).message
    boxes["prepare"] = list(ppa.run_prepare("p", 256, True, "#ffffff", host, lambda: False))[-1]
    boxes["focal"] = ppa.find_focal_points("p", host)
    label = ta.tagger_choices(host)[0][0]
    tagging = ("p", ca.ALL, label, 0.35, 0.85, "", True, "append", host)
    boxes["tag preview"] = ta.preview(*tagging)
    boxes["tagged"] = list(ta.run_tagging(*tagging, threading.Event()))[-1]
    boxes["tagged again"] = list(ta.run_tagging(*tagging[:7], "skip", host, threading.Event()))[-1]
    boxes["fold preview"], pending = ca.preview_fold("p", "zkz", ["blue hair (5/5)"], host)
    boxes["applied"] = ca.apply_pending("p", pending, host)
    boxes["captions"] = ca.caption_view("p", ca.ALL, "smile", host).message
    boxes["undone"] = ca.undo("p", host)
    boxes["batch preview"], pending = ca.preview_batch("p", ca.ALL, "replace", "smile", "grin", False, "", host)
    ca.apply_pending("p", pending, host)
    project = pa.open_project("p", host, create=False)
    (project.concept_dir(project.concepts[0]) / "0.txt").write_text("1girl", encoding="utf-8")
    boxes["checks"], findings = cka.run_checks(str(project.img_dir), TrainConfig(), "character", "zkz", host)
    picked = next(c for c in cka.fix_choices(findings, "zh_CN") if "zkz" in c)
    boxes["fix"], _ = cka.run_fix(str(project.img_dir), findings, picked, "zkz", TrainConfig(), host)
    boxes["regularization"] = list(cka.generate_reg("p", "girl", "", "", 2, 1, 1, host, lambda: False))[-1]

    data = [str(tmp_path), "1girl", "blue hair", "long hair", "smile", "grin", "zkz", "girl", label]
    for step, html in boxes.items():
        texts = shown_in_chinese(html)
        assert any("\u4e00" <= c <= "\u9fff" for c in "".join(texts)), (step, texts)
        left = {text: english_left(text, data) for text in texts}
        assert not {t: w for t, w in left.items() if w}, (step, texts)
    assert "将导入 6 张图片" in boxes["look"] and "已将 6 张图片和 4 个标注导入" in boxes["import"]
    assert "已写入 4 条标注：把 blue hair 整合进 zkz" in boxes["applied"]
    assert "已撤销：把 blue hair 整合进 zkz（4 条标注）" in boxes["undone"]
    assert "小于训练尺寸" in boxes["plan"] and "tiny.png：图片太小，无法用于训练" in boxes["plan"]
    assert "已处理 5 张图片" in boxes["prepare"] and "（1 张失败）" in boxes["prepare"]
    assert "已用 " in boxes["tagged"] and "已有标注（跳过）" in boxes["tagged again"]
    assert "把「zkz」放在最前" in boxes["fix"]


def test_checks_use_the_projects_trigger_when_the_box_is_empty(world):
    """A page opened after the import has an empty Trigger word box: the checks still find the captions without
    the project's trigger word (seen in A1111: a caption without 'zkz' passed the checks)."""
    host, src, tmp = world
    look = pa.look_at_pictures("one concept", str(src), [], "character", host)
    pa.run_import("one concept", look.plan, "zkz", "girl", "character", 10, False, host)
    assert cka.checks_trigger("one concept", ca.ALL, "", host, ca.ALL) == "zkz"
    assert cka.checks_trigger("one concept", ca.ALL, " mine ", host, ca.ALL) == "mine"
    assert cka.checks_trigger("", ca.ALL, "", host, ca.ALL) == ""
    project = pa.open_project("one concept", host, create=False)
    word = cka.checks_trigger("one concept", ca.ALL, "", host, ca.ALL)
    _, findings = cka.run_checks(str(project.img_dir), TrainConfig(), "character", word, host)
    assert "no_trigger" in [f.key for f in findings]
