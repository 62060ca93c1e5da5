from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, features

from lora_trainer.data.images import ImageLoadError, image_size, is_image_file, load_image
from lora_trainer.errors import DatasetError


def _two_halves(width=40, height=20) -> Image.Image:
    """Left half red, right half blue."""
    img = Image.new("RGB", (width, height), (0, 0, 255))
    img.paste((255, 0, 0), (0, 0, width // 2, height))
    return img


def _exif(orientation: int) -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif


def test_extensions_case_insensitive():
    assert is_image_file("a.PNG") and is_image_file("b.JpEg") and is_image_file("c.webp")
    assert not is_image_file("a.txt") and not is_image_file("a.gif")


def test_rgb_png_roundtrip_and_unicode_path(tmp_path, make_image):
    path = make_image(tmp_path / "10_凝光 角色" / "图 1.png", size=(30, 20), color=(10, 20, 30))
    img = load_image(path)
    assert img.mode == "RGB" and img.size == (30, 20)
    assert img.getpixel((5, 5)) == (10, 20, 30)  # still usable after the file is closed
    assert image_size(path) == (30, 20)


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_exif_orientation_applied(tmp_path, suffix):
    path = tmp_path / f"rotated{suffix}"
    _two_halves().save(path, exif=_exif(6))  # 6: display rotated 90° clockwise
    assert image_size(path) == (20, 40)
    img = load_image(path)
    assert img.size == (20, 40)
    top, bottom = img.getpixel((10, 5)), img.getpixel((10, 35))
    assert top[0] > 200 and top[2] < 60  # former left half (red) is now on top
    assert bottom[2] > 200 and bottom[0] < 60


def test_rgba_composited_on_white(tmp_path):
    img = Image.new("RGBA", (4, 2), (255, 0, 0, 0))
    img.putpixel((1, 0), (255, 0, 0, 255))
    img.putpixel((2, 0), (0, 0, 0, 128))
    img.save(tmp_path / "a.png")
    out = load_image(tmp_path / "a.png")
    assert out.mode == "RGB"
    assert out.getpixel((0, 0)) == (255, 255, 255)
    assert out.getpixel((1, 0)) == (255, 0, 0)
    assert all(120 <= v <= 135 for v in out.getpixel((2, 0)))


def test_la_and_palette_transparency_on_white(tmp_path):
    Image.new("LA", (3, 3), (0, 0)).save(tmp_path / "la.png")
    assert load_image(tmp_path / "la.png").getpixel((1, 1)) == (255, 255, 255)

    pal = Image.new("P", (3, 3), 0)
    pal.putpalette([0, 255, 0] + [0, 0, 0] * 255)
    pal.putpixel((2, 2), 1)
    pal.save(tmp_path / "p.png", transparency=0)
    out = load_image(tmp_path / "p.png")
    assert out.getpixel((0, 0)) == (255, 255, 255)  # index 0 is transparent
    assert out.getpixel((2, 2)) == (0, 0, 0)


def test_palette_without_transparency(tmp_path):
    Image.new("RGB", (4, 4), (12, 200, 40)).convert("P", palette=Image.Palette.ADAPTIVE).save(tmp_path / "p.bmp")
    assert load_image(tmp_path / "p.bmp").getpixel((0, 0)) == (12, 200, 40)


def test_cmyk_jpeg_becomes_rgb(tmp_path):
    Image.new("CMYK", (8, 8), (0, 255, 255, 0)).save(tmp_path / "c.jpg")
    r, g, b = load_image(tmp_path / "c.jpg").getpixel((4, 4))
    assert r > 200 and g < 60 and b < 60


def test_16bit_grayscale_scaled_not_white(tmp_path):
    ramp = np.linspace(0, 65535, 64, dtype=np.uint16).reshape(8, 8)
    Image.fromarray(ramp).save(tmp_path / "g16.png")
    out = load_image(tmp_path / "g16.png")
    assert out.mode == "RGB"
    low, mid, high = out.getpixel((0, 0)), out.getpixel((0, 4)), out.getpixel((7, 7))
    assert low == (0, 0, 0) and high == (255, 255, 255)
    assert 100 < mid[0] < 160 and mid[0] == mid[1] == mid[2]


def test_dark_16bit_stays_dark(tmp_path):
    Image.fromarray(np.full((4, 4), 200, dtype=np.uint16)).save(tmp_path / "dark.png")
    assert load_image(tmp_path / "dark.png").getpixel((0, 0)) == (1, 1, 1)


def test_grayscale_and_bilevel(tmp_path):
    Image.new("L", (4, 4), 77).save(tmp_path / "l.png")
    assert load_image(tmp_path / "l.png").getpixel((0, 0)) == (77, 77, 77)
    Image.new("1", (4, 4), 1).save(tmp_path / "b.bmp")
    assert load_image(tmp_path / "b.bmp").getpixel((0, 0)) == (255, 255, 255)


@pytest.mark.skipif(not features.check("webp"), reason="Pillow built without WebP")
def test_webp(tmp_path, make_image):
    path = make_image(tmp_path / "w.WEBP", size=(16, 8), format="WEBP", lossless=True)
    assert load_image(path).size == (16, 8) and image_size(path) == (16, 8)


def test_corrupt_file_raises_with_path(tmp_path):
    path = tmp_path / "bad dir" / "broken.png"
    path.parent.mkdir()
    path.write_bytes(b"this is not an image")
    for fn in (load_image, image_size):
        with pytest.raises(ImageLoadError) as info:
            fn(path)
        assert isinstance(info.value, DatasetError)
        assert str(path) in str(info.value) and info.value.path == path
        assert info.value.advice


def test_truncated_file(tmp_path):
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(tmp_path / "t.png")
    data = (tmp_path / "t.png").read_bytes()
    (tmp_path / "t.png").write_bytes(data[: len(data) // 2])
    assert image_size(tmp_path / "t.png") == (64, 64)  # header is intact
    with pytest.raises(ImageLoadError) as info:
        load_image(tmp_path / "t.png")
    assert str(tmp_path / "t.png") in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(ImageLoadError, match="does not exist"):
        load_image(tmp_path / "nope.png")


def _animated(path, fmt):
    frames = [Image.new("RGB", (16, 16), color) for color in ((255, 0, 0), (0, 0, 255))]
    try:
        frames[0].save(path, format=fmt, save_all=True, append_images=frames[1:], duration=100, loop=0)
    except (OSError, ValueError, KeyError) as err:   # a Pillow built without animated WebP
        pytest.skip(f"Pillow cannot write an animated {fmt}: {err}")
    return path


@pytest.mark.parametrize("name,fmt", [("moving.webp", "WEBP"), ("moving.png", "PNG")])
def test_an_animated_picture_is_reported_not_trained_as_its_first_frame(tmp_path, name, fmt):
    path = _animated(tmp_path / name, fmt)
    with pytest.raises(ImageLoadError) as info:
        image_size(path)
    assert info.value.reason == "it is animated (2 frames); only still pictures are trained"
    assert "PNG or JPEG" in info.value.advice


def test_a_fully_transparent_picture_is_refused_for_training(tmp_path):
    clear = tmp_path / "clear.png"
    Image.new("RGBA", (8, 8), (200, 10, 10, 0)).save(clear)
    assert load_image(clear).getpixel((0, 0)) == (255, 255, 255)   # shown or compared: white, as before
    with pytest.raises(ImageLoadError, match="fully transparent: it would train as a blank white picture"):
        load_image(clear, training=True)
    partly = Image.new("RGBA", (8, 8), (200, 10, 10, 0))
    partly.putpixel((3, 3), (200, 10, 10, 255))
    partly.save(tmp_path / "partly.png")
    assert load_image(tmp_path / "partly.png", training=True).getpixel((3, 3)) == (200, 10, 10)
