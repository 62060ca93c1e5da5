"""Output names: safe on every file system, Chinese kept, and the files a run would replace (no gradio)."""
import pytest

from lora_trainer.ui.names import files_to_overwrite, sanitize_output_name


@pytest.mark.parametrize("typed, expected", [
    ("ningguang", "ningguang"),
    ("  凝光 v2 ", "凝光 v2"),
    ("my_lora.safetensors", "my_lora"),
    ("../../etc/passwd", "_.._etc_passwd"),
    ("C:\\Users\\me\\lora", "C__Users_me_lora"),
    ('what?*<is>"this"|', "what___is__this__"),
    ("con", "con_"),
    ("name. . ", "name"),
    ("", "lora"),
    ("///", "lora"),
])
def test_names_become_plain_file_names(typed, expected):
    name, notes = sanitize_output_name(typed)
    assert name == expected
    assert bool(notes) == (typed.strip() != expected)


def test_folder_separators_are_explained_and_long_names_cut():
    name, notes = sanitize_output_name("loras/ningguang")
    assert name == "loras_ningguang" and "Output folder" in notes[0]
    name, notes = sanitize_output_name("x" * 300)
    assert len(name) == 100 and "shortened" in notes[0]


def test_files_to_overwrite_lists_only_this_runs_files(tmp_path):
    for entry in ("ning.safetensors", "ning-000002.safetensors", "ning-interrupted.safetensors",
                  "ning-v2.safetensors", "ning-000002.json", "ningguang.safetensors", "other.safetensors"):
        (tmp_path / entry).write_bytes(b"")
    (tmp_path / "ning-000002-state").mkdir()   # an older version's state: a new run writes none here
    found = [p.split("/")[-1] for p in files_to_overwrite(str(tmp_path), "ning")]
    assert found == ["ning-000002.safetensors", "ning-interrupted.safetensors", "ning.safetensors"]
    assert files_to_overwrite(str(tmp_path / "missing"), "ning") == []
