"""Auto-tagging: the host's interrogators as taggers, a tiny WD14-style ONNX tagger built here (never a download),
a folder run with progress, stop, per-picture errors, its undo entry, and a preview. (Tags and options:
test_dataset_tags.py; the model download and onnxruntime on request: test_dataset_tagging_sources.py.)"""
from __future__ import annotations

import codecs
import importlib.util
import os
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lora_trainer.dataset import autotag, wd14, wd14_models
from lora_trainer.dataset.autotag import (available_taggers, concept_trigger, find_tagger, tag_folder, tag_image,
                                          wd14_status)
from lora_trainer.dataset.project import Project
from lora_trainer.dataset.tagging import TagOptions, Tagger, host_taggers
from lora_trainer.errors import DatasetError, MissingDependency

HAVE_ONNX = importlib.util.find_spec("onnx") is not None
HAVE_ORT = importlib.util.find_spec("onnxruntime") is not None
needs_onnx = pytest.mark.skipif(not (HAVE_ONNX and HAVE_ORT), reason="onnx and onnxruntime are not installed in this "
                                "environment (requirements/test.txt; the torch-free Python 3.10 stack has neither)")

# The tiny model's tags: (name, category, bias); "red_theme"/"blue_theme" follow the picture's colour.
TAGS = [("1girl", 0, 3.0), ("long_hair", 0, 0.4), ("simple_background", 0, -0.4), ("low_score", 0, -2.2),
        ("^_^", 0, 2.2), ("hatsune_miku", 4, 2.2), ("some_character", 4, 0.0), ("general", 9, 1.4),
        ("sensitive", 9, -1.4), ("red_theme", 0, -5.0), ("blue_theme", 0, -5.0)]
SIZE = 32


def build_tiny_tagger(folder: Path, tags=TAGS, input_name="input_1:0", output_name="predictions_sigmoid",
                      nchw=False) -> Path:
    """A model with the real WD14 signature: NHWC float32 [batch, S, S, 3] in, sigmoid scores [batch, N] out.
    Scores = sigmoid(mean colour (BGR, 0…1) · W + b): fixed per tag, except the two colour tags."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    folder.mkdir(parents=True, exist_ok=True)
    n = len(tags)
    weights = np.zeros((3, n), np.float32)
    names = [t[0] for t in tags]
    if "red_theme" in names:     # BGR: channel 2 is red
        weights[:, names.index("red_theme")] = (-10, -10, 10)
    if "blue_theme" in names:
        weights[:, names.index("blue_theme")] = (10, -10, -10)
    bias = np.array([t[2] for t in tags], np.float32)
    shape = ["batch", 3, SIZE, SIZE] if nchw else ["batch", SIZE, SIZE, 3]
    x = helper.make_tensor_value_info(input_name, TensorProto.FLOAT, shape)
    y = helper.make_tensor_value_info(output_name, TensorProto.FLOAT, ["batch", n])
    init = [numpy_helper.from_array(np.array(1 / 255, np.float32), "scale"),
            numpy_helper.from_array(weights, "W"), numpy_helper.from_array(bias, "B")]
    nodes = [helper.make_node("Mul", [input_name, "scale"], ["scaled"]),
             helper.make_node("ReduceMean", ["scaled"], ["mean"], axes=[2, 3] if nchw else [1, 2], keepdims=0),
             helper.make_node("MatMul", ["mean", "W"], ["logits"]),
             helper.make_node("Add", ["logits", "B"], ["biased"]),
             helper.make_node("Sigmoid", ["biased"], [output_name])]
    graph = helper.make_graph(nodes, "tiny_wd14", [x], [y], init)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    onnx.save(model, str(folder / wd14.MODEL_FILE))
    write_labels(folder, tags)
    return folder


def write_labels(folder: Path, tags=TAGS) -> None:
    lines = ["tag_id,name,category,count"] + [f"{i},{name},{cat},{100 - i}" for i, (name, cat, _) in enumerate(tags)]
    (folder / wd14.TAGS_FILE).write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    if not (HAVE_ONNX and HAVE_ORT):
        pytest.skip("onnx and onnxruntime are not installed in this environment")
    return build_tiny_tagger(tmp_path_factory.mktemp("models") / "模型 目录" / "wd14" / "wd tiny")


@pytest.fixture(scope="module")
def tiny(model_dir):
    tagger = wd14.WD14Tagger(model_dir, threads=1)
    yield tagger
    tagger.close()


def picture(path: Path, size=(40, 30), color=(230, 20, 20), mode="RGB", **save) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, color).save(path, **save)
    return path


def bad_pictures(folder: Path) -> dict[str, Path]:
    """Every awkward picture an artist's folder holds, made here."""
    out = {"plain": picture(folder / "plain red.png", size=(40, 40), color=(255, 0, 0))}
    out["corrupt"] = folder / "corrupt.png"
    out["corrupt"].write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(200))
    out["empty"] = folder / "empty.jpg"
    out["empty"].write_bytes(b"")
    truncated = picture(folder / "whole.jpg", size=(64, 64), quality=95).read_bytes()
    (folder / "whole.jpg").unlink()
    out["truncated"] = folder / "truncated.jpg"
    out["truncated"].write_bytes(truncated[: len(truncated) // 3])
    out["cmyk"] = picture(folder / "print cmyk.jpg", mode="CMYK", color=(0, 200, 200, 0))
    sixteen = Image.fromarray(np.full((30, 40), 40000, np.uint16))
    out["16bit"] = folder / "scan 16bit.png"
    sixteen.save(out["16bit"])
    palette = Image.new("P", (40, 30), 1)
    palette.putpalette([255, 255, 255, 220, 10, 10] + [0] * 762)
    out["palette"] = folder / "palette.png"
    palette.save(out["palette"], transparency=0)
    out["rgba"] = picture(folder / "alpha.png", mode="RGBA", color=(20, 20, 230, 128))
    exif = Image.Exif()
    exif[0x0112] = 6     # rotate 90°: stored 40×20, shown 20×40
    out["rotated"] = picture(folder / "phone photo.jpg", size=(40, 20), exif=exif.tobytes())
    out["unicode"] = picture(folder / "图片 with spaces ✓.webp", size=(40, 40), color=(0, 0, 255))
    return out


class FakeTagger(Tagger):
    """Answers fixed tags; records the sizes it saw; fails on pictures of one size when asked."""

    def __init__(self, tags=(("1girl", 0.9), ("long_hair", 0.7)), fail_on_size=None):
        self.name, self.label = "fake", "Fake tagger"
        self.tags, self.fail_on_size, self.seen = list(tags), fail_on_size, []

    def tag(self, image, options=None):
        self.seen.append((image.size, image.mode))
        if self.fail_on_size and image.size == self.fail_on_size:
            raise RuntimeError("the model ran out of memory")
        return list(self.tags)


def caption_of(path: Path) -> str:
    return path.with_suffix(".txt").read_text(encoding="utf-8")


# --- the WD14 tagger ---------------------------------------------------------------------------------
def test_the_picture_is_padded_to_a_white_square_resized_and_given_as_bgr():
    arr = wd14.prepare_image(Image.new("RGBA", (20, 10), (255, 0, 0, 255)), 8)
    assert arr.shape == (1, 8, 8, 3) and arr.dtype == np.float32
    assert tuple(arr[0, 0, 0]) == (255, 255, 255)                   # padding: white
    assert tuple(arr[0, 4, 4]) == (0, 0, 255)                       # red, in BGR order
    clear = wd14.prepare_image(Image.new("RGBA", (8, 8), (0, 0, 0, 0)), 8)
    assert float(clear.min()) == 255.0                              # transparent: on white


@needs_onnx
def test_the_tiny_model_reads_its_size_and_tags_with_both_thresholds(tiny):
    assert tiny.input_size == (SIZE, SIZE) and len(tiny.labels) == len(TAGS)
    red = Image.new("RGB", (200, 200), (255, 0, 0))
    tags = dict(tiny.tag(red))       # characters first, then general tags, each most confident first
    assert list(tags) == ["hatsune_miku", "red_theme", "1girl", "^_^", "long_hair", "simple_background"]
    assert "red_theme" in tags and "blue_theme" not in tags        # the colour reached the model as BGR
    assert "low_score" not in tags and "some_character" not in tags and "general" not in tags
    assert abs(tags["1girl"] - 1 / (1 + np.exp(-3.0))) < 1e-5
    strict = dict(tiny.tag(red, TagOptions(general_threshold=0.92, character_threshold=0.95)))
    assert set(strict) == {"1girl", "red_theme"}
    loose = dict(tiny.tag(red, TagOptions(character_threshold=0.4, include_ratings=True)))
    assert "some_character" in loose and "general" in loose and "sensitive" not in loose
    blue = dict(tiny.tag(Image.new("RGB", (60, 60), (0, 0, 255))))
    assert "blue_theme" in blue and "red_theme" not in blue


@needs_onnx
def test_a_v3_style_model_with_other_names_and_a_bad_model_say_what_is_wrong(tmp_path):
    v3 = build_tiny_tagger(tmp_path / "v3", input_name="input", output_name="output")
    assert "1girl" in dict(wd14.WD14Tagger(v3).tag(Image.new("RGB", (5, 5))))
    nchw = build_tiny_tagger(tmp_path / "nchw", nchw=True)
    with pytest.raises(DatasetError, match="not a WD14-style tagger"):
        wd14.WD14Tagger(nchw).load()
    mismatch = build_tiny_tagger(tmp_path / "mismatch")
    write_labels(mismatch, TAGS[:5])
    with pytest.raises(DatasetError, match="same repository"):
        wd14.WD14Tagger(mismatch).load()
    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / wd14.MODEL_FILE).write_bytes(b"not a model at all")
    write_labels(garbage)
    with pytest.raises(DatasetError, match="cannot be loaded by onnxruntime"):
        wd14.WD14Tagger(garbage).load()


def test_a_model_folder_and_its_tag_list_are_checked(tmp_path):
    with pytest.raises(DatasetError, match="no model.onnx"):
        wd14.WD14Tagger(tmp_path)
    (tmp_path / "selected_tags.csv").write_text("tag_id,name,category\n0,a,x\n", encoding="utf-8")
    with pytest.raises(DatasetError, match="line 2"):
        wd14.read_labels(tmp_path / "selected_tags.csv")
    (tmp_path / "selected_tags.csv").write_text("id,tag\n0,a\n", encoding="utf-8")
    with pytest.raises(DatasetError, match="no 'name' and 'category'"):
        wd14.read_labels(tmp_path / "selected_tags.csv")
    (tmp_path / "selected_tags.csv").write_text("\ufefftag_id,name,category,count\n0,a b,0,5\n", encoding="utf-8")
    assert wd14.read_labels(tmp_path / "selected_tags.csv").names == ("a b",)


def test_without_onnxruntime_the_error_says_how_to_install_it(tmp_path, monkeypatch):
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / wd14.MODEL_FILE).write_bytes(b"x")
    write_labels(folder)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)        # import onnxruntime → ModuleNotFoundError
    with pytest.raises(MissingDependency) as err:
        wd14.WD14Tagger(folder).load()
    assert "onnxruntime" in str(err.value) and "Install onnxruntime" in err.value.advice
    monkeypatch.setattr(autotag, "onnxruntime_available", lambda: False)
    assert available_taggers([FakeTagger()], [folder]) and len(available_taggers([], [folder])) == 0
    assert "needs onnxruntime" in wd14_status([folder])


@needs_onnx
def test_the_taggers_available_the_model_folders_found_and_one_picked_by_name(model_dir, tmp_path):
    models_root = model_dir.parent.parent                          # <models>, holding wd14/<name>
    host = host_taggers(["deepbooru"], lambda image, name: "1girl")
    taggers = available_taggers(host, [models_root])
    assert [t.name for t in taggers][0] == "deepbooru" and taggers[1].label == "WD14 (wd tiny)"
    assert available_taggers([], [models_root])[0] is taggers[1]     # one session per model folder
    assert wd14_status([models_root]) == "" and "No WD14 model" in wd14_status([tmp_path])
    assert find_tagger("wd14 (WD TINY)", taggers) is taggers[1] and find_tagger("deepbooru", taggers) is host[0]
    assert find_tagger(str(model_dir), []).label == "WD14 (wd tiny)"
    with pytest.raises(DatasetError, match="no tagger 'clip'"):
        find_tagger("clip", taggers)
    assert wd14_models.find_models(model_dir) == [model_dir] == wd14_models.find_models(model_dir.parent)
    autotag.release_taggers()


# --- a folder ----------------------------------------------------------------------------------------
@needs_onnx
def test_a_concept_folder_is_tagged_with_the_trigger_first_and_bad_pictures_listed(tmp_path, model_dir):
    project = Project.create(tmp_path / "我的 项目")
    concept = project.add_concept("zkz", 10, "woman")
    project.save()
    folder = project.concept_dir(concept)
    pics = bad_pictures(folder)
    assert concept_trigger(folder) == "zkz" and concept_trigger(tmp_path) == ""
    seen = []
    report = tag_folder(folder, autotag.wd14_tagger(model_dir), TagOptions(exclude="simple_background"),
                        progress=lambda done, total, current: seen.append((done, total, Path(current).name)))
    failed = {Path(f.path).name: f.reason for f in report.failed}
    assert set(failed) == {"corrupt.png", "empty.jpg", "truncated.jpg"}, report.summary()
    assert "empty" in failed["empty.jpg"] and "truncated" in failed["truncated.jpg"]
    assert report.total == len(pics) and len(report.written) == len(pics) - 3 and not report.stopped
    assert seen[0] == (0, len(pics), sorted(p.name for p in pics.values())[0])
    assert seen[-1] == (len(pics), len(pics), "")
    for key in ("plain", "cmyk", "16bit", "palette", "rgba", "rotated", "unicode"):
        raw = pics[key].with_suffix(".txt").read_bytes()
        assert not raw.startswith(codecs.BOM_UTF8) and raw.count(b"\n") == 1 and raw.endswith(b"\n")
        tags = raw.decode("utf-8").strip().split(", ")
        assert tags[:2] == ["zkz", "hatsune miku"] and "^_^" in tags and "simple background" not in tags
    assert "red theme" in caption_of(pics["plain"]) and "blue theme" in caption_of(pics["unicode"])
    assert not pics["corrupt"].with_suffix(".txt").exists()
    assert not [p for p in folder.iterdir() if ".tmp-" in p.name]
    assert "3 failed" in report.summary() and "corrupt.png" in report.summary()


def test_odd_pictures_reach_the_tagger_as_upright_rgb(tmp_path):
    pics = bad_pictures(tmp_path / "pics")
    fake = FakeTagger()
    report = tag_folder(tmp_path / "pics", fake)
    assert len(report.written) == len(pics) - 3
    assert all(mode == "RGB" for _, mode in fake.seen)
    assert (20, 40) in [size for size, _ in fake.seen]               # the EXIF-rotated photo, upright
    assert caption_of(pics["plain"]) == "1girl, long hair\n"          # any folder: no trigger


def test_a_decompression_bomb_or_an_odd_decoder_error_fails_that_picture_only(tmp_path, monkeypatch):
    picture(tmp_path / "huge.png", size=(100, 100))
    picture(tmp_path / "odd.png")
    picture(tmp_path / "fine.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 2000)             # 100×100 is over twice the limit
    real_load = autotag.load_image

    def load(path):
        if Path(path).name == "odd.png":
            raise EOFError("no more data")
        return real_load(path)

    monkeypatch.setattr(autotag, "load_image", load)
    report = tag_folder(tmp_path, FakeTagger())
    failed = {Path(f.path).name: f.reason for f in report.failed}
    assert "too large" in failed["huge.png"] and "EOFError" in failed["odd.png"]
    assert [Path(p).name for p in report.written] == ["fine.png"]


def test_append_replace_and_skip_existing_captions_in_any_encoding(tmp_path):
    folder = tmp_path / "any folder"
    a, b, c, d = (picture(folder / f"{n}.png") for n in "abcd")
    a.with_suffix(".txt").write_bytes(codecs.BOM_UTF8 + "smile, long_hair\n".encode())
    b.with_suffix(".txt").write_bytes("café, 1girl\r\nsecond line".encode("utf-16"))
    c.with_suffix(".txt").write_bytes(b"caf\xe9")               # Latin-1, not UTF-8
    report = tag_folder(folder, FakeTagger(), TagOptions(existing="append", trigger="zkz"))
    assert caption_of(a) == "zkz, smile, long_hair, 1girl\n"
    assert caption_of(b) == "zkz, café, 1girl, second line, long hair\n"
    assert caption_of(d) == "zkz, 1girl, long hair\n"
    assert [Path(f.path).name for f in report.failed] == ["c.png"] and "UTF-8" in str(report.failed[0].reason)
    assert c.with_suffix(".txt").read_bytes() == b"caf\xe9"     # an unreadable caption is never overwritten
    again = tag_folder(folder, FakeTagger(), TagOptions(existing="append", trigger="zkz"))
    assert {str(why) for _, why in again.skipped} == {"its caption holds every tag already"}
    skip = tag_folder(folder, FakeTagger([("new", 1.0)]), TagOptions(existing="skip"))
    assert len(skip.skipped) == 3 and skip.written == [] and caption_of(a) == "zkz, smile, long_hair, 1girl\n"
    replace = tag_folder(folder, FakeTagger([("new_tag", 1.0)]), TagOptions(existing="replace", trigger=""))
    assert len(replace.written) == 3 and caption_of(a) == "new tag\n" and caption_of(b) == "new tag\n"
    assert c.with_suffix(".txt").read_bytes() == b"caf\xe9" and len(replace.failed) == 1   # not even replaced
    none = tag_folder(folder, FakeTagger([]), TagOptions(existing="replace"))
    assert {str(why) for _, why in none.skipped} == {"no tag reached the thresholds"} and caption_of(a) == "new tag\n"


def test_a_run_is_one_undo_entry_and_a_caption_edited_meanwhile_is_left_alone(tmp_path):
    from lora_trainer.dataset.caption_edit import EditHistory

    project = Project.create(tmp_path / "proj")
    folder = project.concept_dir(project.add_concept("zkz", 10))
    project.save()
    a, b, c = (picture(folder / f"{n}.png", size=(40 + i, 30)) for i, n in enumerate("abc"))
    a.with_suffix(".txt").write_text("smile\nsecond line", encoding="utf-8")
    b.with_suffix(".txt").write_text("old", encoding="utf-8")

    class EditsMeanwhile(FakeTagger):
        def tag(self, image, options=None):
            if image.size == (41, 30):        # another tab saves b's caption while b is being tagged
                b.with_suffix(".txt").write_text("edited in another tab", encoding="utf-8")
            return super().tag(image, options)

    history = EditHistory(project.work_dir / "history")
    report = tag_folder(folder, EditsMeanwhile(), TagOptions(existing="replace"), history=history)
    assert [Path(f.path).name for f in report.failed] == ["b.png"]
    assert "changed elsewhere" in str(report.failed[0].reason)
    assert caption_of(b) == "edited in another tab" and caption_of(a) == caption_of(c) == "zkz, 1girl, long hair\n"
    assert report.history_entry and history.last_label() == "auto-tagging with Fake tagger"
    assert "changes" not in report.as_dict()
    undone = history.undo()
    assert len(undone.written) == 2 and not undone.conflicts
    assert caption_of(a) == "smile\nsecond line" and caption_of(c) == ""   # as before (no caption: empty)


def test_a_stop_request_ends_the_run_between_two_pictures(tmp_path):
    for i in range(5):
        picture(tmp_path / f"{i}.png")
    stop = threading.Event()

    def progress(done, total, current):
        if done == 2:
            stop.set()

    report = tag_folder(tmp_path, FakeTagger(), progress=progress, stop=stop)
    assert report.stopped and len(report.written) == 3 and report.done == 3
    assert sorted(p.name for p in tmp_path.glob("*.txt")) == ["0.txt", "1.txt", "2.txt"]
    assert tag_folder(tmp_path, FakeTagger(), stop=lambda: True).written == []


def test_a_tagger_failure_or_an_unwritable_caption_fails_one_picture_not_the_run(tmp_path, monkeypatch):
    picture(tmp_path / "a.png", size=(40, 30))
    picture(tmp_path / "b.png", size=(41, 30))
    picture(tmp_path / "c.png", size=(42, 30))
    (tmp_path / "old.gif").write_bytes(b"GIF89a")
    report = tag_folder(tmp_path, FakeTagger(fail_on_size=(41, 30)))
    assert [Path(f.path).name for f in report.failed] == ["b.png"]
    assert "Fake tagger failed" in str(report.failed[0].reason) and "out of memory" in str(report.failed[0].reason)
    assert len(report.written) == 2 and [Path(p).name for p in report.not_read] == ["old.gif"]
    real_write = autotag.write_caption

    def read_only(path, caption):
        if path.name == "c.txt":
            raise PermissionError(13, "Permission denied")
        real_write(path, caption)

    monkeypatch.setattr(autotag, "write_caption", read_only)
    report = tag_folder(tmp_path, FakeTagger([("other", 1.0)]), TagOptions(existing="replace"))
    assert [Path(f.path).name for f in report.failed] == ["c.png"]
    assert "Permission denied" in str(report.failed[0].reason)


def test_a_folder_that_cannot_be_tagged_is_a_clear_error(tmp_path):
    with pytest.raises(DatasetError, match="not a folder"):
        tag_folder(tmp_path / "missing", FakeTagger())
    (tmp_path / "x.gif").write_bytes(b"GIF89a")
    with pytest.raises(DatasetError, match="no pictures to tag.*x.gif"):
        tag_folder(tmp_path, FakeTagger())
    with pytest.raises(DatasetError, match="tagging settings"):
        tag_folder(tmp_path, FakeTagger(), TagOptions(existing="merge"))


def test_a_preview_writes_nothing_and_shows_the_caption_it_would_write(tmp_path):
    project = Project.create(tmp_path / "p q")
    folder = project.concept_dir(project.add_concept("zkz", 5))
    project.save()
    pic = picture(folder / "a b.png")
    pic.with_suffix(".txt").write_text("smile", encoding="utf-8")
    preview = tag_image(pic, FakeTagger(), TagOptions(exclude="1girl"))
    assert preview.tags == [("long hair", 0.7)] and preview.existing == "smile"
    assert preview.caption == "zkz, smile, long hair" and preview.as_dict()["path"] == str(pic)
    assert pic.with_suffix(".txt").read_text(encoding="utf-8") == "smile"
    with pytest.raises(DatasetError, match="Cannot read image"):
        tag_image(picture(tmp_path / "x.png").with_name("missing.png"), FakeTagger())
