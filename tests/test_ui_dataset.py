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
