"""A dataset project: kohya layout, concepts and repeats, the picture scan with cached hashes and duplicates."""
from __future__ import annotations

import json
import os
import shutil

import pytest

from lora_trainer.dataset.project import Project, suggest_repeats
from lora_trainer.dataset.scan import ScanCache, find_duplicates, picture_files, scan_pictures
from lora_trainer.errors import DatasetError


def textured(path, size=(320, 240), seed=0, mode="RGB", **save):
    """A picture with structure (flat pictures all look alike to a perceptual hash)."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", size, (40 + seed * 30 % 200, 90, 160))
    draw = ImageDraw.Draw(img)
    for i in range(6):
        x = (seed * 37 + i * 53) % size[0]
        draw.ellipse([x, i * size[1] // 7, x + size[0] // 4, i * size[1] // 7 + size[1] // 5],
                     fill=(255 - i * 30, (seed * 50 + i * 40) % 255, i * 40))
    path.parent.mkdir(parents=True, exist_ok=True)
    img.convert(mode).save(path, **save)
    return path


def test_a_project_keeps_kohya_layout_and_renames_a_folder_with_its_repeats(tmp_path):
    project = Project.create(tmp_path / "我的 项目")
    project.add_concept("zkz", 10, "woman")
    project.save()
    assert (tmp_path / "我的 项目" / "img" / "10_zkz").is_dir()
    project.set_repeats("zkz", 6)
    project.save()
    again = Project.open(tmp_path / "我的 项目")
    assert again.concepts[0].repeats == 6 and (tmp_path / "我的 项目" / "img" / "6_zkz").is_dir()
    assert json.loads((tmp_path / "我的 项目" / "project.json").read_text(encoding="utf-8"))["version"] == 1
    assert again.training_settings()["train_data_dir"].endswith("img")
    for bad in ("", "a/b", "x:y"):
        with pytest.raises(DatasetError):
            again.add_concept(bad, 10)
    with pytest.raises(DatasetError, match="not a dataset project"):
        Project.open(tmp_path)


def test_repeats_follow_the_image_count_and_the_goal():
    assert suggest_repeats(20) == 15 and suggest_repeats(50) == 6 and suggest_repeats(1000, "style") == 1
    assert suggest_repeats(20, "concept") < suggest_repeats(20, "style")


def test_the_scan_reads_headers_hashes_and_finds_duplicates_once(tmp_path):
    src = tmp_path / "来源 图片"
    a = textured(src / "a.jpg", seed=1)
    shutil.copy(a, src / "a copy.jpg")
    from PIL import Image

    Image.open(a).resize((160, 120)).save(src / "a small.png")   # the same picture, smaller
    textured(src / "b.png", seed=4)
    (src / "empty.png").write_bytes(b"")
    (src / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    (src / "anim.gif").write_bytes(b"GIF89a")
    images, unsupported = picture_files(src)
    assert [p.name for p in unsupported] == ["anim.gif"]
    cache = ScanCache(tmp_path / "cache")
    pictures = scan_pictures(images, cache)
    by_name = {os.path.basename(p.path): p for p in pictures}
    assert (by_name["a.jpg"].width, by_name["a.jpg"].height) == (320, 240)
    assert "empty" in by_name["empty.png"].error and by_name["broken.jpg"].error
    groups = find_duplicates(pictures)
    kinds = {(g.kind, tuple(sorted(os.path.basename(p) for p in g.paths))) for g in groups}
    assert ("same bytes", ("a copy.jpg", "a.jpg")) in kinds
    assert any(kind == "near duplicate" and "a small.png" in names for kind, names in kinds)
    assert not any("b.png" in names for _, names in kinds)

    os.utime(src / "b.png", ns=(0, 0))   # changed: read again; the rest comes from the cache
    again = ScanCache(tmp_path / "cache")
    calls = []
    import lora_trainer.dataset.scan as scan

    real = scan._thumbnail
    scan._thumbnail = lambda *a: calls.append(a[0]) or real(*a)
    try:
        scan_pictures(images, again)
    finally:
        scan._thumbnail = real
    assert [p.name for p in calls] == ["b.png"]
