from __future__ import annotations

import codecs
import random

import pytest

from lora_trainer.data.captions import caption_path, process_caption, read_caption, tag_frequency
from lora_trainer.errors import DatasetError


def _process(caption, seed=0, **kw):
    args = dict(shuffle_caption=False, keep_tokens=0, caption_dropout_rate=0.0)
    args.update(kw)
    return process_caption(caption, rng=random.Random(seed), **args)


def test_missing_caption_is_none(tmp_path):
    assert read_caption(tmp_path / "a.png") is None


@pytest.mark.parametrize("ext", [".txt", "txt", ".caption"])
def test_caption_beside_image_extension_with_or_without_dot(tmp_path, ext):
    name = "v1.2 final." + ext.lstrip(".")
    (tmp_path / name).write_text("zkz, red circle\n", encoding="utf-8")
    assert caption_path(tmp_path / "v1.2 final.png", ext) == tmp_path / name
    assert read_caption(tmp_path / "v1.2 final.png", ext) == "zkz, red circle"


def test_unicode_path_and_content(tmp_path):
    folder = tmp_path / "10_凝光 角色"
    folder.mkdir()
    (folder / "图 1.txt").write_text("凝光, 白发 ", encoding="utf-8")
    assert read_caption(folder / "图 1.png") == "凝光, 白发"


@pytest.mark.parametrize("encoded", [
    codecs.BOM_UTF8 + "zkz, ümlaut".encode("utf-8"),
    "zkz, ümlaut".encode("utf-16"),  # with BOM (native order)
    codecs.BOM_UTF16_BE + "zkz, ümlaut".encode("utf-16-be"),
])
def test_bom_encodings(tmp_path, encoded):
    (tmp_path / "a.txt").write_bytes(encoded)
    assert read_caption(tmp_path / "a.png") == "zkz, ümlaut"


def test_non_utf8_raises_with_file_and_fix(tmp_path):
    (tmp_path / "a.txt").write_bytes("凝光，白发".encode("gb18030"))
    with pytest.raises(DatasetError) as info:
        read_caption(tmp_path / "a.png")
    assert str(tmp_path / "a.txt") in str(info.value)
    assert "UTF-8" in info.value.advice


def test_only_first_nonblank_line_and_empty_file(tmp_path):
    (tmp_path / "a.txt").write_text("\n  first, line \r\nsecond line\n", encoding="utf-8")
    assert read_caption(tmp_path / "a.png") == "first, line"
    (tmp_path / "b.txt").write_text("  \n", encoding="utf-8")
    assert read_caption(tmp_path / "b.png") == ""


def test_process_caption_unchanged_without_options():
    assert _process("a,b ,  c") == "a,b ,  c"


def test_shuffle_keeps_first_tokens_and_all_tags():
    caption = "zkz, red circle, blue background, left, small, round"
    seen = set()
    for seed in range(30):
        out = _process(caption, seed, shuffle_caption=True, keep_tokens=1).split(", ")
        assert out[0] == "zkz"
        assert sorted(out) == sorted(caption.split(", "))
        seen.add(tuple(out))
    assert len(seen) > 5  # it really shuffles
    assert _process(caption, 7, shuffle_caption=True) == _process(caption, 7, shuffle_caption=True)


def test_caption_dropout():
    assert _process("a, b", caption_dropout_rate=1.0) == ""
    rng = random.Random(1)
    dropped = sum(
        process_caption("a, b", shuffle_caption=False, keep_tokens=0, caption_dropout_rate=0.3, rng=rng) == ""
        for _ in range(2000)
    )
    assert 500 < dropped < 700


def test_tag_dropout_spares_kept_tokens():
    out = _process("zkz, style, a, b, c", keep_tokens=2, caption_tag_dropout_rate=1.0)
    assert out == "zkz, style"
    rng = random.Random(3)
    lengths = [
        len(process_caption("k, a, b, c, d", shuffle_caption=False, keep_tokens=1, caption_dropout_rate=0,
                            caption_tag_dropout_rate=0.5, rng=rng).split(", "))
        for _ in range(500)
    ]
    assert min(lengths) == 1 and max(lengths) == 5 and 2.6 < sum(lengths) / 500 < 3.4


def test_keep_tokens_separator_fixed_prefix_and_suffix():
    caption = "zkz, solo ||| a, b, c, d ||| masterpiece, best"
    for seed in range(20):
        out = _process(caption, seed, shuffle_caption=True, keep_tokens=4,
                       keep_tokens_separator="|||").split(", ")
        assert out[:2] == ["zkz", "solo"] and out[-2:] == ["masterpiece", "best"]
        assert sorted(out[2:-2]) == ["a", "b", "c", "d"]
    # the separator never reaches the text encoder, even without shuffling
    assert _process("x ||| y, z", keep_tokens_separator="|||") == "x, y, z"


def test_tag_frequency():
    freq = tag_frequency(["zkz, red circle, left", "zkz, red circle", " zkz ,, ", ""])
    assert freq == {"zkz": 3, "red circle": 2, "left": 1}
