"""Crop and resize: originals/ → img/ at the training size or its buckets, focal points, previews, warnings,
every bad picture a listed failure with the fix, originals never changed, a second run only redoes changes."""
from __future__ import annotations

import json
import os
import struct
import sys
import types
import zlib

import numpy as np
import pytest
from PIL import Image, ImageDraw

from lora_trainer.data.buckets import BucketSet, cover_geometry
from lora_trainer.data.dataset import build_items
from lora_trainer.data.folders import scan_dataset
from lora_trainer.dataset import focus
from lora_trainer.dataset.focus import (CUTOUT, FACE, PLAIN, apply_proposals, detector_status, propose_focal_point,
                                        propose_focal_points, set_focal_point)
from lora_trainer.dataset.plan import PrepareSettings, plan_preparation
from lora_trainer.dataset.prepare import crop_view, prepare_project, preview_image
from lora_trainer.dataset.project import Project
from lora_trainer.dataset.scan import file_digest
from lora_trainer.errors import DatasetError, TrainerError


@pytest.fixture
def project(tmp_path):
    project = Project.create(tmp_path / "我的 项目")
    project.add_concept("zkz", 10)
    project.preparation.resolution = 128
    project.save()
    return project


def originals(project, trigger="zkz"):
    return project.originals_dir(project.concept(trigger))


def out_dir(project, trigger="zkz"):
    return project.concept_dir(project.concept(trigger))


def halves(size=(200, 100), left=(255, 0, 0), right=(0, 0, 255), mode="RGB"):
    """Left half one colour, right half another."""
    img = Image.new("RGB", size, right)
    img.paste(left, (0, 0, size[0] // 2, size[1]))
    return img.convert(mode)


def save(img, path, **kwargs):
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, **kwargs)
    return path


def png_header_only(path, width, height):
    """A PNG whose header claims ``width`` × ``height`` (a decompression bomb, without the memory)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))
    return path


def digests(folder):
    return {p.name: (file_digest(p), p.stat().st_mtime_ns) for p in sorted(folder.iterdir())}


# --- bad input -----------------------------------------------------------------------------------------------
def test_every_bad_picture_is_a_listed_failure_and_the_batch_goes_on(project, tmp_path):
    folder = originals(project)
    save(halves(), folder / "good.png")
    (folder / "corrupt.png").write_bytes(os.urandom(2000))
    (folder / "zero bytes.jpg").write_bytes(b"")
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 255, (300, 300, 3), dtype=np.uint8))
    save(noise, tmp_path / "full.jpg", quality=95)
    data = (tmp_path / "full.jpg").read_bytes()
    (folder / "truncated.jpg").write_bytes(data[: len(data) // 2])
    save(Image.new("RGB", (40, 300), "red"), folder / "tiny.png")
    png_header_only(folder / "bomb.png", 40000, 40000)
    (folder / "photo.heic").write_bytes(b"\0\0\0\x18ftypheic" + os.urandom(200))
    save(Image.new("RGBA", (100, 100), (10, 20, 30, 0)), folder / "clear.png")

    plan = plan_preparation(project)
    refused = {os.path.basename(p.source): p for p in plan.refused}
    assert set(refused) == {"corrupt.png", "zero bytes.jpg", "tiny.png", "bomb.png", "photo.heic", "clear.png"}
    assert "not a valid image" in str(refused["corrupt.png"].error)
    assert "empty (0 bytes)" in str(refused["zero bytes.jpg"].error)
    assert "too small" in str(refused["tiny.png"].error) and "40×300" in str(refused["tiny.png"].error)
    assert "too large" in str(refused["bomb.png"].error)
    assert ".heic format cannot be read" in str(refused["photo.heic"].error)
    assert "PNG" in str(refused["photo.heic"].advice)
    assert "fully transparent" in str(refused["clear.png"].error)
    assert all(p.advice for p in plan.refused)
    assert json.loads(json.dumps(plan.as_dict()))["refused"] == 6
    assert any("cannot be used" in str(w) for w in plan.warnings)

    report = prepare_project(project)            # never raises for a picture's own problem
    failed = {os.path.basename(f.path): f for f in report.failed}
    assert set(failed) == set(refused) | {"truncated.jpg"}
    assert "truncated" in str(failed["truncated.jpg"].reason) and failed["truncated.jpg"].advice
    assert [os.path.basename(p) for p in report.written] == ["good.png"]
    assert len(json.loads(json.dumps(report.as_dict()))["failed"]) == 7
    assert sorted(p.name for p in out_dir(project).iterdir()) == ["good.png"]   # nothing half-written


def test_odd_modes_exif_and_animation_become_plain_rgb(project):
    folder = originals(project)
    save(Image.new("CMYK", (160, 160), (0, 255, 255, 0)), folder / "cmyk.jpg")
    save(Image.fromarray(np.full((160, 160), 0x8000, dtype=np.uint16)), folder / "sixteen.png")
    palette = Image.new("P", (160, 160), 1)
    palette.putpalette([0, 0, 0, 0, 200, 0] + [0] * 762)
    palette.paste(0, (0, 0, 80, 160))
    save(palette, folder / "palette.png", transparency=0)
    save(halves((200, 100)), folder / "rotated.jpg", exif=_exif(6), quality=95)
    save(halves((1600, 800)), folder / "rotated big.jpg", exif=_exif(6), quality=95)   # decoded at 1/4 scale
    frames = [Image.new("RGB", (160, 160), c) for c in ((0, 0, 250), (250, 0, 0), (0, 250, 0))]
    save(frames[0], folder / "moving.png", save_all=True, append_images=frames[1:], duration=100)
    save(Image.new("LA", (160, 160), (90, 255)), folder / "grey alpha.png")
    save(frames[1], folder / "clip.gif", save_all=True, append_images=[frames[0]], duration=100)  # not trained as is

    plan = plan_preparation(project)
    notes = {os.path.basename(p.source): [str(n) for n in p.notes] for p in plan.pictures}
    assert any("animated (3 frames): only the first frame" in n for n in notes["moving.png"])
    assert any("animated" in str(w) for w in plan.warnings)
    rotated = next(p for p in plan.pictures if p.source.endswith("rotated.jpg"))
    assert (rotated.width, rotated.height) == (100, 200) and rotated.output[1] > rotated.output[0]

    report = prepare_project(project)
    assert not report.failed, report.failed
    out = {p.stem: Image.open(p) for p in out_dir(project).glob("*.png")}
    assert all(img.mode == "RGB" for img in out.values())
    red = out["cmyk"].getpixel((80, 60))
    assert red[0] > 200 and red[1] < 60 and red[2] < 60
    assert all(120 <= v <= 136 for v in out["sixteen"].getpixel((60, 60)))
    assert out["palette"].getpixel((5, 60)) == (255, 255, 255) and out["palette"].getpixel((120, 60)) == (0, 200, 0)
    top, bottom = out["rotated"].getpixel((20, 5)), out["rotated"].getpixel((20, out["rotated"].height - 5))
    assert top[0] > 200 > top[2] and bottom[2] > 200 > bottom[0]           # the left half is now on top
    big = out["rotated big"]
    assert big.size == rotated.output
    assert big.getpixel((20, 5))[0] > 200 > big.getpixel((20, 5))[2]
    assert big.getpixel((20, big.height - 5))[2] > 200 > big.getpixel((20, big.height - 5))[0]
    assert out["moving"].getpixel((50, 50))[2] > 200                     # the first frame
    assert all(80 <= v <= 100 for v in out["grey alpha"].getpixel((50, 50)))
    assert out["clip"].getpixel((50, 50))[0] > 200


def test_the_loader_keeps_white_for_training_and_takes_another_colour_on_request(tmp_path):
    from lora_trainer.data.images import load_image, read_header

    path = save(Image.new("RGBA", (80, 80), (0, 0, 0, 0)), tmp_path / "clear.png")
    assert load_image(path).getpixel((1, 1)) == (255, 255, 255)
    assert load_image(path, background=(0, 0, 255)).getpixel((1, 1)) == (0, 0, 255)
    header = read_header(path)
    assert (header.width, header.height, header.has_alpha, header.animated) == (80, 80, True, False)
    rotated = read_header(save(halves((40, 20)), tmp_path / "r.jpg", exif=_exif(6)))
    assert (rotated.width, rotated.height, rotated.format) == (20, 40, "JPEG")


def _exif(orientation):
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif


def test_huge_pictures_are_downscaled_and_bombs_refused(project, monkeypatch):
    folder = originals(project)
    save(halves((8400, 200)), folder / "wide.png")
    plan = plan_preparation(project)
    wide = plan.pictures[0]
    assert wide.ok and any("huge (8400×200" in str(n) for n in wide.notes)
    assert any("huge picture" in str(w) for w in plan.warnings)
    assert [os.path.basename(p) for p in prepare_project(project).written] == ["wide.png"]
    with Image.open(out_dir(project) / "wide.png") as img:
        assert img.size == wide.output
    # above Pillow's decompression-bomb warning size: a JPEG decodes at a reduced scale, other formats are refused
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 300_000)
    save(halves((800, 600)), folder / "big photo.jpg", quality=90)
    save(halves((800, 600)), folder / "big drawing.png")
    plan = plan_preparation(project)
    by_name = {os.path.basename(p.source): p for p in plan.pictures}
    assert by_name["big photo.jpg"].ok and any("reduced scale" in str(n) for n in by_name["big photo.jpg"].notes)
    assert "too large to decode safely" in str(by_name["big drawing.png"].error)
    report = prepare_project(project)
    assert [os.path.basename(p) for p in report.written] == ["big photo.png"]
    assert sorted(os.path.basename(f.path) for f in report.failed) == ["big drawing.png", "wide.png"]  # over it too
    with Image.open(out_dir(project) / "big photo.png") as img:
        assert img.size == by_name["big photo.jpg"].output


# --- paths, captions, originals ----------------------------------------------------------------------------
def test_unicode_paths_keep_their_captions_and_originals_stay_untouched(tmp_path):
    project = Project.create(tmp_path / "数据 集" / "my project")
    concept = project.add_concept("凝光 char", 4)
    project.preparation.resolution = 128
    folder = project.originals_dir(concept)
    save(halves((300, 200)), folder / "图 1 (copy).jpg")
    save(Image.new("RGBA", (200, 300), (0, 128, 0, 128)), folder / "ü 2.png")
    (folder / "图 1 (copy).txt").write_text("凝光 char, red", encoding="utf-8")
    img_dir = project.concept_dir(concept)
    (img_dir / "ü 2.txt").write_text("凝光 char, edited by hand", encoding="utf-8")
    before = digests(folder)

    report = prepare_project(project)
    assert not report.failed and len(report.written) == 2
    assert digests(folder) == before
    assert (img_dir / "图 1 (copy).txt").read_text(encoding="utf-8") == "凝光 char, red"     # copied over
    assert (img_dir / "ü 2.txt").read_text(encoding="utf-8") == "凝光 char, edited by hand"  # never touched
    assert sorted(p.name for p in img_dir.iterdir()) == ["ü 2.png", "ü 2.txt", "图 1 (copy).png", "图 1 (copy).txt"]
    prepare_project(project, force=True)
    assert digests(folder) == before


def test_the_copy_an_import_left_is_replaced_and_hand_made_files_are_not_overwritten(project):
    folder, img_dir = originals(project), out_dir(project)
    save(halves(), folder / "a.jpg", quality=95)
    (img_dir / "a.jpg").write_bytes((folder / "a.jpg").read_bytes())      # as imported
    save(halves(), folder / "b.png")
    save(Image.new("RGB", (200, 100), "yellow"), img_dir / "b.png")        # put there by hand
    save(halves(), folder / "c.png")
    save(Image.new("RGB", (90, 90), "green"), img_dir / "c.webp")          # another picture named c
    report = prepare_project(project)
    assert [os.path.basename(p) for p in report.written] == ["a.png"]
    assert report.removed == [str(img_dir / "a.jpg")]
    failed = {os.path.basename(f.path): f for f in report.failed}
    assert "not made by Prepare" in str(failed["b.png"].reason) and "overwrite" in str(failed["b.png"].advice)
    assert "another picture named 'c'" in str(failed["c.png"].reason)
    assert Image.open(img_dir / "b.png").getpixel((0, 0)) == (255, 255, 0)
    report = prepare_project(project, force=True)
    assert str(img_dir / "b.png") in report.written
    assert Image.open(img_dir / "b.png").size != (200, 100)


def test_two_originals_with_one_stem_and_removed_originals(project):
    folder, img_dir = originals(project), out_dir(project)
    save(halves(), folder / "a.jpg")
    save(halves(), folder / "a.png")
    save(halves(), folder / "b.png")
    plan = plan_preparation(project)
    second = next(p for p in plan.pictures if p.source.endswith("a.png"))
    assert "same name as a.jpg" in str(second.error) and "rename" in str(second.advice)
    prepare_project(project)
    (img_dir / "b.txt").write_text("zkz", encoding="utf-8")
    os.remove(folder / "b.png")
    plan = plan_preparation(project)
    assert plan.stale == [str(img_dir / "b.png")] and any("no original any more" in str(w) for w in plan.warnings)
    report = prepare_project(project)
    assert str(img_dir / "b.png") in report.removed and not (img_dir / "b.png").exists()
    assert (img_dir / "b.txt").exists()                                   # a caption is never deleted


# --- geometry --------------------------------------------------------------------------------------------------
def test_a_focal_point_moves_the_crop(project):
    project.preparation.buckets = False
    save(halves((400, 200)), originals(project) / "wide.png")
    plan = plan_preparation(project)
    assert plan.pictures[0].crop_box == (100, 0, 300, 200) and plan.pictures[0].output == (128, 128)
    prepare_project(project)
    centre = Image.open(out_dir(project) / "wide.png").convert("RGB")
    assert centre.getpixel((5, 64))[0] > 200 and centre.getpixel((122, 64))[2] > 200

    project.preparation.focal_points["zkz/wide.png"] = [0.1, 0.5]     # as far left as the picture allows
    plan = plan_preparation(project)
    assert plan.pictures[0].crop_box == (0, 0, 200, 200) and not plan.pictures[0].up_to_date
    report = prepare_project(project)
    assert len(report.written) == 1
    left = Image.open(out_dir(project) / "wide.png").convert("RGB")
    assert left.getpixel((5, 64))[0] > 200 and left.getpixel((122, 64))[0] > 200
    project.preparation.focal_points["zkz/wide.png"] = [0.9, 0.5]
    prepare_project(project)
    assert Image.open(out_dir(project) / "wide.png").getpixel((5, 64))[2] > 200
    project.preparation.focal_points["zkz/wide.png"] = [1.5, "x"]
    picture = plan_preparation(project).pictures[0]
    assert picture.focal is None and "not two numbers" in str(picture.notes[0])


SHAPES = [(300, 200), (200, 300), (250, 250), (600, 150), (111, 259), (640, 290), (70, 210), (1000, 999)]


@pytest.mark.parametrize("buckets", [True, False])
def test_prepared_pictures_keep_their_bucket_when_training_scans_them(project, buckets):
    """The bucket a prepared picture is given is the one training assigns to it, and it fits it exactly."""
    project.preparation.buckets = buckets
    for i, size in enumerate(SHAPES):
        save(halves(size), originals(project) / f"p{i}.png")
    settings = PrepareSettings.from_project(project)
    plan = plan_preparation(project, settings)
    report = prepare_project(project, settings)
    assert not report.failed and len(report.written) == len(SHAPES)
    training_buckets = BucketSet.build(128, 64, 256, 64) if buckets else None
    scan = scan_dataset(project.img_dir)
    items = build_items(scan, training_buckets, 128, buckets)
    planned = {os.path.basename(p.target): p for p in plan.pictures}
    for item in items:
        size = (item.image.width, item.image.height)
        assert item.bucket == size == planned[item.image.path.name].output
        assert cover_geometry(*size, item.bucket) == (*size, 0, 0)          # no further resize or crop
        if buckets:
            original = planned[item.image.path.name]
            assert training_buckets.assign(original.width, original.height) == item.bucket
    assert sum(plan.histogram.values()) == len(SHAPES)
    assert all(w % 64 == 0 and h % 64 == 0 for w, h in plan.histogram)


def test_settings_from_a_training_config_match_its_buckets(project):
    from lora_trainer.config.schema import TrainConfig

    cfg = TrainConfig(resolution="128", min_bucket_reso=64, max_bucket_reso=192, bucket_no_upscale=True)
    settings = PrepareSettings.from_config(cfg)
    for i, size in enumerate(SHAPES):
        save(halves(size), originals(project) / f"p{i}.png")
    prepare_project(project, settings)
    train = BucketSet.build(cfg.resolution_wh, cfg.min_bucket_reso, cfg.max_bucket_reso, cfg.bucket_reso_steps)
    for item in build_items(scan_dataset(project.img_dir), train, cfg.resolution_wh, True, True):
        assert item.bucket == (item.image.width, item.image.height)
    assert all(not p.enlarged for p in plan_preparation(project, settings).pictures)


def test_background_colour_and_what_a_change_redoes(project):
    folder = originals(project)
    cutout = Image.new("RGBA", (128, 128), (0, 0, 0, 0))
    ImageDraw.Draw(cutout).rectangle([40, 40, 88, 88], fill=(200, 0, 0, 255))
    save(cutout, folder / "cutout.png")
    save(halves((128, 128)), folder / "opaque.png")
    prepare_project(project)
    assert Image.open(out_dir(project) / "cutout.png").getpixel((2, 2)) == (255, 255, 255)    # white by default
    project.preparation.background = "#00ff00"
    report = prepare_project(project)
    assert [os.path.basename(p) for p in report.written] == ["cutout.png"]      # the opaque one is unchanged
    out = Image.open(out_dir(project) / "cutout.png")
    assert out.getpixel((2, 2)) == (0, 255, 0) and out.getpixel((64, 64)) == (200, 0, 0)
    project.preparation.background = "not a colour"
    with pytest.raises(DatasetError, match="not a colour"):
        plan_preparation(project)


def test_a_second_run_skips_unchanged_pictures(project):
    folder = originals(project)
    for i in range(3):
        save(halves((200 + 20 * i, 150)), folder / f"p{i}.png")
    first = prepare_project(project)
    assert len(first.written) == 3
    times = {p.name: p.stat().st_mtime_ns for p in out_dir(project).iterdir()}
    again = prepare_project(project)
    assert again.written == [] and len(again.kept) == 3 and "3 already up to date" in again.summary()
    assert {p.name: p.stat().st_mtime_ns for p in out_dir(project).iterdir()} == times
    assert all(p.up_to_date for p in plan_preparation(project).pictures)
    save(halves((260, 150), left=(0, 255, 0)), folder / "p1.png")               # one original changed
    assert [os.path.basename(p) for p in prepare_project(project).written] == ["p1.png"]
    project.preparation.resolution = 192                                         # a setting changed: all
    assert len(prepare_project(project).written) == 3


def test_progress_and_stop(project):
    for i in range(5):
        save(halves(), originals(project) / f"p{i}.png")
    seen = []
    report = prepare_project(project, progress=lambda done, total: seen.append((done, total)),
                             should_stop=lambda: len(seen) >= 2)
    assert report.stopped and len(report.written) == 2 and seen == [(1, 5), (2, 5)]
    assert "Stopped" in report.summary()
    report = prepare_project(project)
    assert len(report.written) == 3 and len(report.kept) == 2


def test_a_read_only_output_folder_is_a_clear_error_naming_it(project, monkeypatch):
    save(halves(), originals(project) / "a.png")
    folder = out_dir(project)
    os.chmod(folder, 0o555)
    try:
        if hasattr(os, "geteuid") and os.geteuid() == 0:       # root writes anyway: answer as the OS would
            import lora_trainer.dataset.prepare as prepare_module

            def refuse(*args, **kwargs):
                raise PermissionError(13, "Permission denied")
            monkeypatch.setattr(prepare_module.tempfile, "mkstemp", refuse)
        with pytest.raises(DatasetError) as err:
            prepare_project(project)
    finally:
        os.chmod(folder, 0o755)
    assert str(folder) in err.value.message and "Permission denied" in err.value.message
    assert "writable" in err.value.advice
    assert list(folder.iterdir()) == []


def test_bad_settings_are_clear_errors(project):
    with pytest.raises(DatasetError, match="multiple of 64") as err:
        plan_preparation(project, PrepareSettings(resolution=500))
    assert "512" in err.value.advice
    with pytest.raises(TrainerError):
        plan_preparation(project, PrepareSettings(resolution=512, min_bucket_reso=300))
    with pytest.raises(DatasetError, match="no concept"):
        plan_preparation(project, concepts=["nobody"])


# --- preview ---------------------------------------------------------------------------------------------------
def test_preview_tells_what_each_picture_becomes(project):
    project.preparation.resolution = 256
    folder = originals(project)
    save(halves((96, 160)), folder / "small.png")
    save(halves((400, 400)), folder / "square.png")
    save(halves((400, 400)), folder / "square 2.png")
    plan = plan_preparation(project)
    small = plan.picture("zkz/small.png")
    assert small.enlarged and small.scale == pytest.approx(2.0) and small.output == (192, 320)
    assert any("enlarged ×2.00 (96×160 → 192×320)" in str(n) for n in small.notes)
    assert any("smaller than the training size" in str(w) and "×2.00" in str(w) for w in plan.warnings)
    square = plan.picture("zkz/square.png")
    assert square.crop_box == (0, 0, 400, 400) and square.scale == pytest.approx(0.64) and not square.enlarged
    assert plan.histogram == {(256, 256): 2, (192, 320): 1}
    assert square.as_dict()["crop_box"] == (0, 0, 400, 400)
    preview = preview_image(plan, "zkz/small.png", max_side=96)
    assert preview.size == (58, 96) and preview.getpixel((5, 50))[0] > 200 and preview.getpixel((52, 50))[2] > 200
    view = crop_view(plan, square, max_side=100)
    assert view.size == (100, 100)
    assert list(out_dir(project).iterdir()) == []                              # a preview writes nothing
    project.preparation.buckets = False
    save(halves((400, 200)), folder / "wide.png")
    assert any("Buckets are off" in str(w) and "wide.png" in str(w) for w in plan_preparation(project).warnings)


# --- focal point proposals -------------------------------------------------------------------------------------
def test_without_opencv_the_detector_says_so_and_finds_subjects(project, monkeypatch):
    monkeypatch.setitem(sys.modules, "cv2", None)
    monkeypatch.setattr(focus, "_cascade_cache", {})
    available, text = detector_status()
    assert not available and "OpenCV (cv2) is not installed" in text
    figure = Image.new("RGBA", (300, 600), (0, 0, 0, 0))                    # a cut-out standing figure
    ImageDraw.Draw(figure).rectangle([200, 100, 260, 500], fill=(20, 20, 20, 255))
    proposal = propose_focal_point(figure.convert("RGB"), figure.getchannel("A"))
    assert proposal.method == CUTOUT and abs(proposal.x - 230 / 300) < 0.02 and proposal.y < 0.3
    plain = Image.new("RGB", (400, 300), (240, 240, 240))
    ImageDraw.Draw(plain).ellipse([20, 100, 120, 200], fill=(30, 90, 200))
    proposal = propose_focal_point(plain)
    assert proposal.method == PLAIN and abs(proposal.x - 70 / 400) < 0.02 and abs(proposal.y - 0.5) < 0.02
    noise = Image.fromarray(np.random.default_rng(1).integers(0, 255, (200, 200, 3), dtype=np.uint8))
    assert propose_focal_point(noise) is None

    save(plain, originals(project) / "plain.png")
    save(noise, originals(project) / "noise.png")
    found = propose_focal_points(project)
    assert list(found.proposals) == ["zkz/plain.png"] and found.nothing_found == ["zkz/noise.png"]
    assert apply_proposals(project, found.proposals) == 1
    assert project.preparation.focal_points["zkz/plain.png"] == found.proposals["zkz/plain.png"].point
    assert plan_preparation(project).picture("zkz/plain.png").crop_box[0] == 0     # the crop moved left
    set_focal_point(project, "zkz/plain.png", 0.25, 0.5)                  # a click on the picture
    assert project.preparation.focal_points["zkz/plain.png"] == [0.25, 0.5]
    assert apply_proposals(project, found.proposals) == 0                  # a user's point stays
    with pytest.raises(DatasetError, match="outside the picture"):
        set_focal_point(project, "zkz/plain.png", 1.5, 0.5)
    set_focal_point(project, "zkz/plain.png", None)
    assert "zkz/plain.png" not in project.preparation.focal_points


def test_faces_through_opencv_when_it_is_there(monkeypatch):
    calls = {}

    class Cascade:
        def __init__(self, path):
            calls["path"] = path

        def empty(self):
            return False

        def detectMultiScale(self, grey, **kwargs):     # noqa: N802  (OpenCV's name)
            calls["shape"] = grey.shape
            return [(300, 40, 60, 60), (10, 10, 12, 12)]

    fake = types.ModuleType("cv2")
    fake.__version__ = "4.x"
    fake.CascadeClassifier = Cascade
    fake.equalizeHist = lambda grey: grey
    fake.data = types.SimpleNamespace(haarcascades="/opencv/data/")
    monkeypatch.setitem(sys.modules, "cv2", fake)
    monkeypatch.setattr(focus, "_cascade_cache", {})
    assert detector_status()[0] and "frontal-face Haar cascade" in detector_status()[1]
    proposal = propose_focal_point(Image.new("RGB", (400, 300), "grey"))
    assert calls["path"] == "/opencv/data/haarcascade_frontalface_default.xml" and calls["shape"] == (300, 400)
    assert proposal.method == FACE and proposal.x == pytest.approx(330 / 400) and proposal.y == pytest.approx(70 / 300)
