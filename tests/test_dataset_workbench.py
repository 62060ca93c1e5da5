"""The workbench's library: import with duplicates shown first, caption edits previewed, written and undone,
the trait fold, the checks with their numbers and their one-click fixes."""
from __future__ import annotations

import codecs
import os
from pathlib import Path

import pytest

from lora_trainer.dataset.caption_edit import (EditHistory, add_tags, fold_candidates, fold_traits, frequency,
                                               images_with, move_to_front, plan_edit, read_captions, remove_tags,
                                               replace_tag, starts_with_trigger)
from lora_trainer.dataset.checks import CheckSettings, check_dataset
from lora_trainer.dataset.fixes import apply_fix, history_for
from lora_trainer.dataset.importing import import_pictures, plan_import
from lora_trainer.dataset.project import Project
from lora_trainer.errors import DatasetError
from test_dataset_project import textured


def digest_tree(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def source(tmp_path):
    src = tmp_path / "我的 图片"
    for i in range(5):
        textured(src / f"pic {i}.png", seed=i * 3)
    (src / "pic 0.txt").write_bytes(codecs.BOM_UTF8 + "1girl, blue hair".encode())
    (src / "pic 1.txt").write_bytes("1girl, red eyes".encode("utf-16"))
    (src / "pic 2.txt").write_bytes(b"\xc3\x28 broken")   # not UTF-8
    (src / "pic 4 copy.png").write_bytes((src / "pic 4.png").read_bytes())
    (src / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\ntruncated")
    return src


def test_import_shows_duplicates_first_and_never_touches_the_source(source, tmp_path):
    before = digest_tree(source)
    project = Project.create(tmp_path / "project")
    plan = plan_import(project, source)
    assert [os.path.basename(p.path) for p in plan.unreadable] == ["bad.png"]
    assert [g.kind for g in plan.duplicates] == ["same bytes"]
    assert len(plan.to_import) == 5 and plan.suggested_repeats() == 60
    result = import_pictures(project, plan, "zkz", 10, class_word="girl")
    assert sorted(result.imported) == [f"pic {i}.png" for i in range(5)]
    concept = project.concept_dir(project.concept("zkz"))
    assert (concept / "pic 0.txt").read_text(encoding="utf-8") == "1girl, blue hair"
    assert (concept / "pic 1.txt").read_text(encoding="utf-8") == "1girl, red eyes"   # UTF-16 → UTF-8
    assert [Path(p).name for p, _ in result.caption_problems] == ["pic 2.png"]
    assert digest_tree(source) == before
    again = import_pictures(project, plan_import(project, source), "zkz")
    assert again.imported == []
    assert all(str(why) in ("already in the project", "a duplicate") for _, why in again.skipped)
    with pytest.raises(DatasetError, match="overlap"):
        plan_import(project, project.root / "img")


def test_caption_edits_preview_write_and_undo(tmp_path):
    folder = tmp_path / "img" / "10_zkz"
    for i, text in enumerate(["1girl, blue hair, smile", "blue_hair, 1girl, red eyes", "1girl, blue hair"]):
        textured(folder / f"{i}.png", seed=i)
        (folder / f"{i}.txt").write_text(text, encoding="utf-8")
    captions = read_captions([folder])
    assert frequency(captions)[:2] == [("1girl", 3), ("blue hair", 3)]
    assert len(images_with(captions, "red eyes")) == 1
    assert plan_edit(captions, add_tags(["smile"]))[0].after == "blue_hair, 1girl, red eyes, smile"
    assert plan_edit(captions, remove_tags(["blue hair"]))[0].after == "1girl, smile"
    assert plan_edit(captions, replace_tag("1girl", "solo"))[0].after == "solo, blue hair, smile"
    assert plan_edit(captions, move_to_front(["smile"]))[0].after == "smile, 1girl, blue hair"
    assert [t for t, _ in fold_candidates(captions, "zkz")] == ["1girl", "blue hair"]

    history = EditHistory(tmp_path / "history")
    fold = plan_edit(captions, fold_traits("zkz", ["blue hair"]))
    assert [c.after for c in fold] == ["zkz, 1girl, smile", "zkz, 1girl, red eyes", "zkz, 1girl"]
    applied = history.apply(fold, "fold blue hair into zkz")
    assert len(applied.written) == 3 and starts_with_trigger(read_captions([folder]), "zkz")
    (folder / "2.txt").write_text("edited in another tab", encoding="utf-8")
    undone = EditHistory(tmp_path / "history").undo()            # a new object: as after a page reload
    assert [Path(p).name for p, _ in undone.conflicts] == ["2.txt"]
    assert (folder / "0.txt").read_text(encoding="utf-8") == "1girl, blue hair, smile"
    assert (folder / "2.txt").read_text(encoding="utf-8") == "edited in another tab"

    stale = read_captions([folder])
    (folder / "1.txt").write_text("changed meanwhile", encoding="utf-8")
    result = history.apply(plan_edit(stale, add_tags(["x"])), "add x")
    assert [Path(p).name for p, _ in result.conflicts] == ["1.txt"]
    assert (folder / "1.txt").read_text(encoding="utf-8") == "changed meanwhile"


def test_checks_give_numbers_and_their_fixes_work(tmp_path):
    train = tmp_path / "train"
    concept = train / "10_zkz"
    for i in range(4):
        textured(concept / f"{i}.png", size=(512, 512), seed=i * 5)
        (concept / f"{i}.txt").write_text("1girl, blue hair" + (", zkz" if i else ""), encoding="utf-8")
    textured(concept / "tiny.png", size=(96, 96), seed=9)
    (concept / "dup.png").write_bytes((concept / "1.png").read_bytes())
    (concept / "broken.png").write_bytes(b"")
    (train / "no_prefix").mkdir()
    (concept / "nested").mkdir()
    (concept / "long.txt").write_text("", encoding="utf-8")
    findings = {f.key: f for f in check_dataset(train, CheckSettings(resolution=512, trigger="zkz"))}
    assert {"folder_prefix", "nested", "few_images", "unreadable", "small", "duplicates", "no_caption",
            "no_trigger", "everywhere"} <= set(findings)
    assert not any(f.blocking for f in findings.values())
    assert "1 picture(s) are much smaller" in str(findings["small"].message)
    assert findings["no_trigger"].paths == [str(concept / "0.png")]

    done = apply_fix(findings["no_trigger"].fix, train, "zkz")
    assert (concept / "0.txt").read_text(encoding="utf-8") == "zkz, 1girl, blue hair"
    assert history_for(train).last_label().startswith("Put")
    apply_fix(findings["duplicates"].fix, train)
    apply_fix(findings["unreadable"].fix, train)
    assert (train / ".removed" / "10_zkz" / "dup.png").is_file() and not (concept / "dup.png").exists()
    apply_fix(findings["folder_prefix"].fix, train)
    assert (train / "10_no_prefix").is_dir() and done.done
    after = {f.key for f in check_dataset(train, CheckSettings(resolution=512, trigger="zkz"))}
    assert not {"no_trigger", "duplicates", "unreadable", "folder_prefix"} & after
    bucket = check_dataset(train, CheckSettings(resolution=512, min_bucket_reso=768))
    assert any(f.key == "min_bucket" and f.blocking and f.fix.setting == {"min_bucket_reso": 256} for f in bucket)
    missing = check_dataset(tmp_path / "nowhere")
    assert missing[0].blocking and "does not exist" in missing[0].text()


def test_regularization_images_are_generated_resumably_and_captioned(tmp_path):
    from PIL import Image

    from lora_trainer.dataset.regularization import generate_regularization

    project = Project.create(tmp_path / "p")
    seeds = []

    def generate(prompt, negative, seed, width, height):
        seeds.append(seed)
        assert (prompt, width, height) == ("photo of a woman", 512, 512)
        return Image.new("RGB", (width, height), (seed * 10 % 255, 0, 0))

    stop_after_two = iter([False, False, True])
    first = generate_regularization(project, "woman", 4, generate, prompt="photo of a woman",
                                    should_stop=lambda: next(stop_after_two))
    assert first.stopped and len(first.made) == 2
    second = generate_regularization(project, "woman", 4, generate)
    assert second.kept == 2 and len(second.made) == 2 and seeds == [1, 2, 3, 4]
    folder = project.root / "reg" / "1_woman"
    assert sorted(p.name for p in folder.glob("*.png")) == [f"reg_0000{i}.png" for i in range(4)]
    assert (folder / "reg_00003.txt").read_text(encoding="utf-8") == "woman"
    assert Project.open(project.root).training_settings()["reg_data_dir"] == str(project.root / "reg")


def test_the_webui_generates_regularization_images_with_its_loaded_model(tmp_path):
    import fake_host

    root = tmp_path / "webui"
    base = fake_host.write_checkpoint(root / "models" / "Stable-diffusion" / "base.safetensors", "sd1")
    fake = fake_host.activate("a1111", root=root, loaded=base)
    try:
        from lora_trainer.hosts import detect_host

        image = detect_host().generate_image("a woman", "", 7, 64, 64)
        assert image is not None and fake.processed[-1].prompt == "a woman" and fake.processed[-1].lock_held
    finally:
        fake_host.deactivate()


def test_the_dataset_commands(tmp_path, capsys):
    from lora_trainer.cli.main import main

    src = tmp_path / "src"
    for i in range(3):
        textured(src / f"{i}.png", seed=i * 7)
        (src / f"{i}.txt").write_text("1girl, blue hair", encoding="utf-8")
    project = tmp_path / "项目"
    assert main(["dataset", "import", str(src), str(project), "--trigger", "zkz", "--repeats", "5"]) == 0
    assert "Imported 3 picture(s) and 3 caption(s)" in capsys.readouterr().out
    assert main(["dataset", "check", str(project / "img"), "--trigger", "zkz"]) == 0
    assert "lack the trigger word 'zkz'" in capsys.readouterr().out
    assert main(["dataset", "fold", str(project / "img"), "--trigger", "zkz", "--tags", "blue hair", "--apply"]) == 0
    assert (project / "img" / "5_zkz" / "1.txt").read_text(encoding="utf-8") == "zkz, 1girl"
    assert main(["dataset", "edit", str(project / "img"), "--replace", "1girl=solo", "--apply"]) == 0
    assert main(["dataset", "undo", str(project / "img")]) == 0
    assert (project / "img" / "5_zkz" / "1.txt").read_text(encoding="utf-8") == "zkz, 1girl"
    assert main(["dataset", "check", str(tmp_path / "nowhere")]) == 1
