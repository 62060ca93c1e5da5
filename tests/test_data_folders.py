from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from lora_trainer.data.folders import CACHE_DIR_NAME, parse_concept_folder_name, scan_dataset
from lora_trainer.errors import DatasetError


def _caption(image: Path, text: str, ext=".txt") -> None:
    image.with_name(image.stem + ext).write_text(text, encoding="utf-8")


@pytest.fixture
def dataset(tmp_path, make_image):
    root = tmp_path / "my data"
    char = root / "10_凝光 角色"
    style = root / "3_my char_v2"
    for i, size in enumerate([(64, 48), (48, 64), (32, 32)]):
        img = make_image(char / f"图 {i}.png", size=size)
        _caption(img, f"凝光, pose{i}")
    make_image(style / "b.jpg")
    make_image(style / "a.png")  # no caption
    make_image(style / "c.PNG")  # no caption
    _caption(style / "b.jpg", "zkz, style")
    return root


@pytest.mark.parametrize("name, expected", [
    ("10_mychar", (10, "mychar")),
    ("10_my char_v2", (10, "my char_v2")),
    ("1_凝光 角色", (1, "凝光 角色")),
    ("mychar", None),
    ("10mychar", None),
    ("_x", None),
])
def test_parse_concept_folder_name(name, expected):
    assert parse_concept_folder_name(name) == expected


def test_scan_layout_unicode_and_order(dataset):
    scan = scan_dataset(dataset)
    assert [c.path.name for c in scan.concepts] == ["10_凝光 角色", "3_my char_v2"]  # sorted
    char, style = scan.concepts
    assert (char.repeats, char.name, char.is_reg) == (10, "凝光 角色", False)
    assert (style.repeats, style.name) == (3, "my char_v2")
    assert [(i.path.name, i.width, i.height) for i in char.images] == [
        ("图 0.png", 64, 48), ("图 1.png", 48, 64), ("图 2.png", 32, 32)]
    assert char.images[1].caption == "凝光, pose1" and not char.images[1].caption_from_fallback
    assert [i.path.name for i in style.images] == ["a.png", "b.jpg", "c.PNG"]
    assert [(i.caption, i.caption_from_fallback) for i in style.images] == [
        ("my char_v2", True), ("zkz, style", False), ("my char_v2", True)]
    assert char.images[0].path.is_absolute()
    assert scan.num_train_images == 6 and scan.num_reg_images == 0
    assert scan.skipped == []
    # exactly one warning for the folder with missing captions, naming it and the files
    assert len(scan.warnings) == 1
    assert "2 of 3" in scan.warnings[0] and str(style.path) in scan.warnings[0] and "a.png" in scan.warnings[0]


def test_tag_frequency_structure(dataset):
    freq = scan_dataset(dataset).tag_frequency()
    assert freq["10_凝光 角色"] == {"凝光": 3, "pose0": 1, "pose1": 1, "pose2": 1}
    assert freq["3_my char_v2"] == {"my char_v2": 2, "zkz": 1, "style": 1}


def test_corrupt_image_skipped_not_fatal(dataset):
    bad = dataset / "10_凝光 角色" / "broken.png"
    bad.write_bytes(b"\x89PNG garbage")
    scan = scan_dataset(dataset)
    assert [p for p, _ in scan.skipped] == [bad]
    assert scan.skipped[0][1]
    assert scan.num_train_images == 6


def test_non_utf8_caption_skips_image_with_reason(dataset):
    img = dataset / "10_凝光 角色" / "图 0.png"
    img.with_suffix(".txt").write_bytes("凝光，白发".encode("gb18030"))
    scan = scan_dataset(dataset)
    assert scan.skipped[0][0] == img and "UTF-8" in scan.skipped[0][1]


def test_bad_folder_names_warned_and_ignored(dataset, make_image):
    make_image(dataset / "mychar" / "x.png")
    make_image(dataset / "0_zero" / "x.png")
    scan = scan_dataset(dataset)
    assert len(scan.concepts) == 2
    text = "\n".join(scan.warnings)
    assert str(dataset / "mychar") in text and "<repeats>_<concept name>" in text
    assert str(dataset / "0_zero") in text and "1 or more" in text


def test_hidden_and_cache_entries_ignored(dataset, make_image):
    make_image(dataset / "10_凝光 角色" / ".hidden.png")
    make_image(dataset / CACHE_DIR_NAME / "x.png")
    make_image(dataset / ".5_secret" / "x.png")  # hidden folder
    (dataset / "10_凝光 角色" / "notes.md").write_text("hi")
    scan = scan_dataset(dataset)
    assert scan.num_train_images == 6 and len(scan.concepts) == 2
    assert len(scan.warnings) == 1


def test_empty_concept_and_unsupported_and_nested(dataset, make_image):
    (dataset / "2_empty").mkdir()
    make_image(dataset / "10_凝光 角色" / "anim.gif")
    make_image(dataset / "10_凝光 角色" / "more" / "x.png")
    scan = scan_dataset(dataset)
    assert len(scan.concepts) == 2
    text = "\n".join(scan.warnings)
    assert str(dataset / "2_empty") in text and "no images" in text
    assert "anim.gif" in text and "not searched" in text


def test_caption_extension_hint(tmp_path, make_image):
    img = make_image(tmp_path / "1_x" / "a.png")
    _caption(img, "zkz")
    scan = scan_dataset(tmp_path, caption_extension=".caption")
    assert scan.concepts[0].images[0].caption == "x"
    assert "set caption_extension to .txt" in scan.warnings[0]
    assert scan_dataset(tmp_path, caption_extension="txt").concepts[0].images[0].caption == "zkz"


def test_images_directly_in_train_dir_is_fatal_with_layout(tmp_path, make_image):
    make_image(tmp_path / "a.png")
    make_image(tmp_path / "b.jpg")
    with pytest.raises(DatasetError) as info:
        scan_dataset(tmp_path)
    err = info.value
    assert str(tmp_path) in err.message and "a.png" in err.message
    assert str(tmp_path / "10_mychar") in err.advice and "repeats" in err.advice


def test_loose_images_next_to_concepts_only_warn(dataset, make_image):
    make_image(dataset / "stray.png")
    scan = scan_dataset(dataset)
    assert scan.num_train_images == 6
    assert any("stray.png" in w for w in scan.warnings)


def test_pointing_at_the_concept_folder_itself(dataset):
    with pytest.raises(DatasetError) as info:
        scan_dataset(dataset / "10_凝光 角色")
    assert str(dataset) in info.value.advice and "parent" in info.value.advice


def test_missing_and_empty_roots(tmp_path, make_image):
    with pytest.raises(DatasetError, match="does not exist") as info:
        scan_dataset(tmp_path / "nope")
    assert str(tmp_path / "nope") in str(info.value) and "10_mychar" in info.value.advice
    with pytest.raises(DatasetError, match="no concept folders"):
        scan_dataset(tmp_path)
    make_image(tmp_path / "mychar" / "a.png")
    with pytest.raises(DatasetError) as info:
        scan_dataset(tmp_path)
    assert "'mychar' → '10_mychar'" in info.value.advice


def test_no_readable_images_is_fatal(tmp_path):
    folder = tmp_path / "5_x"
    folder.mkdir()
    (folder / "a.png").write_bytes(b"nope")
    with pytest.raises(DatasetError) as info:
        scan_dataset(tmp_path)
    assert "No usable images" in info.value.message and str(folder / "a.png") in info.value.message
    (folder / "a.png").unlink()
    with pytest.raises(DatasetError, match="No usable images"):
        scan_dataset(tmp_path)


def test_regularization_folders(dataset, tmp_path, make_image):
    reg = tmp_path / "reg imgs"
    for i in range(4):
        make_image(reg / "1_person" / f"{i}.png", size=(40, 40))
    scan = scan_dataset(dataset, reg)
    assert [c.is_reg for c in scan.concepts] == [False, False, True]
    assert scan.num_reg_images == 4 and len(scan.reg_concepts) == 1
    assert scan.reg_concepts[0].images[0].caption == "person"
    assert len(scan.warnings) == 1  # missing reg captions are normal: no warning
    assert set(scan.tag_frequency()) == {"10_凝光 角色", "3_my char_v2"}
    assert scan_dataset(dataset, "").num_reg_images == 0
    with pytest.raises(DatasetError, match="reg_data_dir"):
        scan_dataset(dataset, tmp_path / "missing reg")


def test_exif_rotated_size_recorded(tmp_path):
    folder = tmp_path / "1_x"
    folder.mkdir()
    exif = Image.Exif()
    exif[0x0112] = 8
    Image.new("RGB", (60, 20)).save(folder / "r.jpg", exif=exif)
    entry = scan_dataset(tmp_path).concepts[0].images[0]
    assert (entry.width, entry.height) == (20, 60)


def test_bundled_demo_dataset_is_clean():
    root = Path(__file__).resolve().parents[1] / "lora_trainer" / "demo_data" / "train"
    scan = scan_dataset(root)
    assert scan.warnings == [] and scan.skipped == []
    (concept,) = scan.concepts
    assert (concept.name, concept.repeats, len(concept.images)) == ("zkz shapes", 8, 8)
    assert all(i.caption.startswith("zkz, ") and not i.caption_from_fallback for i in concept.images)
    assert len({(i.width, i.height) for i in concept.images}) >= 2
    assert sum(p.stat().st_size for p in root.parent.rglob("*") if p.is_file()) < 100_000


def test_a_caption_of_only_commas_trains_with_the_concept_name_and_is_reported(tmp_path, make_image):
    image = make_image(tmp_path / "data" / "5_zkz" / "a.png")
    _caption(image, " , ,, ")
    _caption(make_image(tmp_path / "data" / "5_zkz" / "b.png"), "zkz, smile")
    scan = scan_dataset(tmp_path / "data")
    assert [(i.path.name, i.caption, i.caption_from_fallback) for i in scan.concepts[0].images] == [
        ("a.png", "zkz", True), ("b.png", "zkz, smile", False)]
    assert scan.warnings == [f"1 caption file(s) in {tmp_path / 'data' / '5_zkz'} hold only commas, no tags: a.png. "
                             f"They are trained with the concept name 'zkz' as caption; write the tags into them, "
                             f"separated by commas."]
