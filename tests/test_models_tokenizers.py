"""CLIP tokenizers come from local sources only, with SD's padding per encoder."""
import json
import os
import shutil

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest

pytest.importorskip("transformers")

from lora_trainer.errors import ModelLoadError
from lora_trainer.models import tokenizers
from lora_trainer.models.tokenizers import SHIPPED_DIR, load_clip_tokenizers, shipped_tokenizer_folder

CAT = [49406, 320, 1125, 539, 320, 2368, 49407]


@pytest.fixture
def empty_cache(tmp_path):
    d = tmp_path / "hf-cache"
    d.mkdir()
    return str(d)


@pytest.mark.parametrize("family,pads", [("sd1", [49407]), ("sd2", [0]), ("sdxl", [49407, 0])])
def test_ids_and_padding(family, pads, empty_cache):
    toks = load_clip_tokenizers(family, cache_dir=empty_cache)
    assert len(toks) == len(pads)
    for tok, pad_id in zip(toks, pads):
        assert type(tok).__name__ == "CLIPTokenizer"
        assert tok("a photo of a cat").input_ids == CAT
        ids = tok("a photo of a cat", padding="max_length", max_length=tok.model_max_length,
                  truncation=True).input_ids
        assert tok.model_max_length == 77 and len(ids) == 77
        assert ids[:7] == CAT and ids[7:] == [pad_id] * 70
        assert tok.pad_token_id == pad_id
        long = tok("cat " * 200, truncation=True, max_length=77).input_ids
        assert len(long) == 77 and long[-1] == 49407


def _fake_cache_repo(cache, repo, pad):
    """A snapshot of ``repo`` in an HF cache layout, holding our vocabulary with a marker."""
    root = cache / ("models--" + repo.replace("/", "--"))
    snap = root / "snapshots" / "0123456789abcdef"
    snap.mkdir(parents=True)
    (root / "refs").mkdir()
    (root / "refs" / "main").write_text("0123456789abcdef")
    for name in ("vocab.json", "merges.txt"):
        shutil.copy(shipped_tokenizer_folder() / name, snap / name)
    cfg = json.loads((SHIPPED_DIR / "tokenizer_config.json").read_text(encoding="utf-8"))
    cfg["pad_token"] = pad
    (snap / "tokenizer_config.json").write_text(json.dumps(cfg), encoding="utf-8")
    return snap


def test_hf_cache_is_used_before_shipped_files_and_pad_is_enforced(tmp_path):
    cache = tmp_path / "cache"
    snap_l = _fake_cache_repo(cache, tokenizers.CLIP_L_REPO, "<|endoftext|>")
    snap_g = _fake_cache_repo(cache, tokenizers.BIGG_REPO, "<|endoftext|>")  # laion's repo pads with eos
    tok_l, tok_g = load_clip_tokenizers("sdxl", cache_dir=str(cache))
    assert str(snap_l) in tok_l.name_or_path and str(snap_g) in tok_g.name_or_path
    assert tok_l.pad_token_id == 49407
    assert tok_g.pad_token == "!" and tok_g.pad_token_id == 0  # SDXL's second encoder pads with "!"
    assert tok_g("a photo of a cat").input_ids == CAT


def test_diffusers_folder_tokenizer_wins(tmp_path, empty_cache):
    folder = tmp_path / "model"
    (folder / "tokenizer").mkdir(parents=True)
    for name in ("vocab.json", "merges.txt", "special_tokens_map.json"):
        shutil.copy(shipped_tokenizer_folder() / name, folder / "tokenizer" / name)
    cfg = json.loads((SHIPPED_DIR / "tokenizer_config.json").read_text(encoding="utf-8"))
    cfg["model_max_length"] = 150  # marker: only this copy says 150
    (folder / "tokenizer" / "tokenizer_config.json").write_text(json.dumps(cfg), encoding="utf-8")
    (tok,) = load_clip_tokenizers("sd1", diffusers_dir=folder, cache_dir=empty_cache)
    assert tok.model_max_length == 150
    # a folder without tokenizer/ falls back to the shipped files
    (tok,) = load_clip_tokenizers("sd1", diffusers_dir=tmp_path / "nothing", cache_dir=empty_cache)
    assert tok.model_max_length == 77


def test_broken_sources_are_skipped_and_missing_vocab_is_a_clear_error(tmp_path, monkeypatch, empty_cache):
    folder = tmp_path / "model"
    (folder / "tokenizer").mkdir(parents=True)
    (folder / "tokenizer" / "vocab.json").write_text('{"a": 0}', encoding="utf-8")  # not CLIP
    (folder / "tokenizer" / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
    (tok,) = load_clip_tokenizers("sd1", diffusers_dir=folder, cache_dir=empty_cache)
    assert len(tok) == 49408  # fell back to the shipped vocabulary

    monkeypatch.setattr(tokenizers, "SHIPPED_DIR", tmp_path / "gone")
    with pytest.raises(ModelLoadError) as err:
        load_clip_tokenizers("sdxl", cache_dir=empty_cache)
    msg = str(err.value)
    assert "No CLIP tokenizer found locally" in msg and "gone" in msg and tokenizers.CLIP_L_REPO in msg
    assert err.value.advice


def test_unknown_family():
    with pytest.raises(ModelLoadError):
        load_clip_tokenizers("sd3")
