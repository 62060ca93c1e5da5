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
def world(tmp_path):
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
