"""Captions longer than 75 tokens: kohya's chunks of 75 (max_token_length 150 / 225), their encoding on the
tiny models, and what a run says about the captions its limit cuts."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from lora_trainer.models.tiny import build_tiny_components  # noqa: E402
from lora_trainer.train.conditioning import encode_cached, encode_ids, tokenize_captions  # noqa: E402
from lora_trainer.train.tokens import count_tokens, long_caption_warning, token_ids  # noqa: E402

BOS, EOS, RED = 49406, 49407, 736   # "red" is one CLIP token


@pytest.fixture(scope="module")
def sd1():
    return build_tiny_components("sd1")


@pytest.fixture(scope="module")
def sdxl():
    return build_tiny_components("sdxl")


def test_chunks_are_kohyas_for_both_padding_kinds(sd1, sdxl):
    """100 tokens at 150: BOS + the first 75 + closing id, then BOS + the other 25 + EOS and padding. SD1's
    tokenizer pads with EOS; SDXL's second (like SD2's) pads with "!" (0) and gets kohya's extra EOS."""
    caption = " ".join(["red"] * 100)
    eos_pad = token_ids(sd1["tokenizer"], [caption], 150)[0]
    assert eos_pad.shape == (2, 77)
    assert eos_pad[0].tolist() == [BOS] + [RED] * 75 + [EOS]
    assert eos_pad[1].tolist() == [BOS] + [RED] * 25 + [EOS] * 51
    zero_pad = token_ids(sdxl["tokenizer_2"], [caption], 150)[0]
    assert zero_pad[0].tolist() == [BOS] + [RED] * 75 + [EOS]          # kohya closes a full chunk with EOS
    assert zero_pad[1].tolist() == [BOS] + [RED] * 25 + [EOS] + [0] * 50
    short = token_ids(sdxl["tokenizer_2"], ["red"], 225)[0]
    assert short.shape == (3, 77)
    assert short[0].tolist() == [BOS, RED, EOS] + [0] * 74
    assert short[1].tolist() == short[2].tolist() == [BOS, EOS] + [0] * 75   # an empty chunk: BOS EOS pad …
    assert token_ids(sd1["tokenizer"], [caption], 75).shape == (1, 77)     # 75: one plain sequence
    assert token_ids(sd1["tokenizer"], [" ".join(["red"] * 300)], 225)[0, 2].tolist() == [BOS] + [RED] * 75 + [EOS]


def test_150_tokens_encode_each_chunk_and_join_them_as_kohya(sd1, sdxl):
    captions = [" ".join(["red"] * 100), "blue circle"]
    with torch.no_grad():
        ids = tokenize_captions("sd1", [sd1["tokenizer"]], captions, "cpu", 150)[0]
        assert ids.shape == (2, 2, 77)
        hidden = encode_ids("sd1", [sd1["text_encoder"]], [ids], None)["encoder_hidden_states"]
        first, second = (sd1["text_encoder"](ids[:, k])[0] for k in range(2))
    assert hidden.shape == (2, 152, first.shape[-1])   # BOS + 75 + 75 + the last chunk's last position
    expected = torch.cat([first[:, :1], first[:, 1:76], second[:, 1:76], second[:, 76:]], dim=1)
    torch.testing.assert_close(hidden, expected)

    encoders = [sdxl["text_encoder"], sdxl["text_encoder_2"]]
    with torch.no_grad():
        ids = tokenize_captions("sdxl", [sdxl["tokenizer"], sdxl["tokenizer_2"]], captions, "cpu", 225)
        out = encode_ids("sdxl", encoders, ids, None)
        pooled_first = sdxl["text_encoder_2"](ids[1][:, 0])[0]
    assert out["encoder_hidden_states"].shape == (2, 227, 16 + 24)
    torch.testing.assert_close(out["text_embeds"], pooled_first)   # the pooled output of the first chunk


def test_the_prompt_cache_keeps_the_long_outputs(sdxl):
    cache = {}
    encoders = [sdxl["text_encoder"], sdxl["text_encoder_2"]]
    tokenizers = [sdxl["tokenizer"], sdxl["tokenizer_2"]]
    with torch.no_grad():
        out = encode_cached(cache, "sdxl", encoders, tokenizers, ["zkz, red", "zkz, red"], None, "cpu", 150)
        direct = encode_ids("sdxl", encoders, tokenize_captions("sdxl", tokenizers, ["zkz, red"], "cpu", 150), None)
    assert out["encoder_hidden_states"].shape == (2, 152, 40) and out["text_embeds"].shape == (2, 16)
    torch.testing.assert_close(out["encoder_hidden_states"][:1], direct["encoder_hidden_states"])


def test_the_run_names_the_captions_its_limit_cuts(sd1):
    tok = sd1["tokenizer"]
    captions = [("1_a/long.png", " ".join(["red"] * 109)), ("1_a/short.png", "zkz, red"),
                ("1_a/huge.png", " ".join(["red"] * 180))]
    assert count_tokens(tok, "zkz, red") == 4
    text = long_caption_warning(tok, captions, 75)
    assert text.startswith("2 of 3 captions are longer than max_token_length (75 tokens)")
    assert "huge.png (180), 1_a/long.png (109)" in text and "set max_token_length 225" in text
    assert "huge.png (180)" in long_caption_warning(tok, captions, 150, shuffled=True)
    assert "shuffled" in long_caption_warning(tok, captions, 150, shuffled=True)
    assert long_caption_warning(tok, captions, 225) is None
    assert "shorten them (225 is the longest" in long_caption_warning(tok, [("x.png", "red " * 300)], 225)
