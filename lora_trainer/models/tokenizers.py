"""CLIP tokenizers from local sources only (never the network).

SD1 uses OpenAI CLIP-L's tokenizer (pads with ``<|endoftext|>``); SD2 (OpenCLIP-H) and SDXL's
second encoder (OpenCLIP-bigG) use the same vocabulary but pad with ``"!"`` (id 0).
Sources, in order: a diffusers folder's ``tokenizer/`` (``tokenizer_2/``), the local Hugging Face
cache, then the BPE merges shipped in ``configs/clip_tokenizer``. Only ``merges.txt`` is shipped:
CLIP's ``vocab.json`` follows from it (byte symbols, the merges in order, two special tokens) and
is derived once into a cache folder.
"""
from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

from ..errors import ModelLoadError
from ..text.messages import Joined, msg, sentence
from . import messages  # noqa: F401  (registers the sentences)

log = logging.getLogger(__name__)

SHIPPED_DIR = Path(__file__).parent / "configs" / "clip_tokenizer"
OPEN_CLIP_VARIANT_DIR = SHIPPED_DIR / "open_clip"  # tokenizer_config/special_tokens_map padding with "!"

CLIP_L_REPO = "openai/clip-vit-large-patch14"
BIGG_REPO = "laion/CLIP-ViT-bigG-14-laion2B-39B-b160k"
SD2_REPO = "stabilityai/stable-diffusion-2-1"

# One entry per text encoder: (diffusers subfolder, HF-cache candidates (repo, subfolder), pad token).
_SLOTS = {
    "sd1": [("tokenizer", [(CLIP_L_REPO, None)], "<|endoftext|>")],
    "sd2": [("tokenizer", [(SD2_REPO, "tokenizer"), (BIGG_REPO, None)], "!")],
    "sdxl": [
        ("tokenizer", [(CLIP_L_REPO, None)], "<|endoftext|>"),
        ("tokenizer_2", [(BIGG_REPO, None)], "!"),
    ],
}

N_VOCAB = 49408
N_MERGES = 49152 - 256 - 2


def load_clip_tokenizers(family: str, diffusers_dir=None, *, cache_dir=None) -> list:
    """Return the CLIPTokenizer(s) for ``family`` ("sd1" | "sd2" | "sdxl"): one, or two for SDXL.

    ``cache_dir`` overrides the Hugging Face cache folder (tests); the default cache is used otherwise.
    """
    if family not in _SLOTS:
        raise ModelLoadError(msg("models.unknown_family", family=family), msg("models.unknown_family.advice"))
    return [_load_one(family, sub, cands, pad, diffusers_dir, cache_dir) for sub, cands, pad in _SLOTS[family]]


def _load_one(family, subfolder, candidates, pad, diffusers_dir, cache_dir):
    tried = []
    if diffusers_dir is not None:
        folder = Path(diffusers_dir) / subfolder
        tried.append(str(folder))
        tok = _try_folder(folder)
        if tok is not None:
            return tok
    for repo, sub in candidates:
        tried.append(sentence("models.hf_cache", repo=repo + (f"/{sub}" if sub else "")))
        folder = _cached_folder(repo, sub, cache_dir)
        tok = _try_folder(folder) if folder is not None else None
        if tok is not None:
            return _with_pad(tok, pad)
    tried.append(str(SHIPPED_DIR))
    extra = {}
    if pad != "<|endoftext|>":
        with open(OPEN_CLIP_VARIANT_DIR / "special_tokens_map.json", encoding="utf-8") as f:
            extra["pad_token"] = json.load(f)["pad_token"]
    shipped = shipped_tokenizer_folder()
    tok = _try_folder(shipped, **extra) if shipped is not None else None
    if tok is not None:
        return tok
    raise ModelLoadError(msg("models.no_tokenizer", family=family, subfolder=subfolder, tried=Joined(tried, "; ")),
                         msg("models.no_tokenizer.advice", subfolder=subfolder))


def _try_folder(folder: Path, **overrides):
    """A CLIPTokenizer read from ``folder``, or None if it has no usable CLIP vocabulary."""
    from transformers import CLIPTokenizer

    has_bpe = (folder / "vocab.json").is_file() and (folder / "merges.txt").is_file()
    if not (has_bpe or (folder / "tokenizer.json").is_file()):
        return None  # transformers 4.x reads vocab.json + merges.txt, 5.x also tokenizer.json alone
    try:
        tok = CLIPTokenizer.from_pretrained(str(folder), local_files_only=True, **overrides)
    except Exception as exc:
        log.warning("Could not read the tokenizer in %s (%s); trying other sources.", folder, exc)
        return None
    # transformers 5 silently builds an empty tokenizer when files are missing: check the vocabulary.
    ids = tok.convert_tokens_to_ids(["<|startoftext|>", "<|endoftext|>"])
    if len(tok) < N_VOCAB or ids != [49406, 49407]:
        log.warning("The tokenizer in %s is not a CLIP tokenizer; trying other sources.", folder)
        return None
    return tok


def _cached_folder(repo: str, subfolder, cache_dir):
    """The snapshot folder holding ``repo``'s tokenizer in the local HF cache, or None."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    name = f"{subfolder}/vocab.json" if subfolder else "vocab.json"
    found = try_to_load_from_cache(repo, name, cache_dir=cache_dir)
    return Path(found).parent if isinstance(found, str) else None


def _with_pad(tok, pad: str):
    """SD's conditioning depends on the pad id; cached CLIP repos do not always pad like SD does."""
    if tok.pad_token != pad:
        tok.pad_token = pad
    return tok


# --- the shipped vocabulary ------------------------------------------------------------------

def byte_alphabet() -> list[str]:
    """The 256 printable stand-ins for bytes used by byte-level BPE, in CLIP's id order."""
    visible = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table = {b: chr(b) for b in visible}
    hidden = [b for b in range(256) if b not in table]
    for n, b in enumerate(hidden):
        table[b] = chr(256 + n)
    return [table[b] for b in visible + hidden]


def vocab_from_merges(merges: list[str]) -> dict[str, int]:
    """CLIP's token ids: byte symbols, the same with ``</w>``, one token per merge, the two specials."""
    if len(merges) != N_MERGES or any(len(m.split(" ")) != 2 for m in merges):
        raise ValueError("not the CLIP BPE merge list")  # internal: shipped_tokenizer_folder says which file
    chars = byte_alphabet()
    tokens = chars + [c + "</w>" for c in chars] + [m.replace(" ", "") for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    vocab = {t: i for i, t in enumerate(tokens)}
    if len(vocab) != N_VOCAB:
        raise ValueError(f"expected {N_VOCAB} distinct tokens, got {len(vocab)}")  # internal: as above
    return vocab


def _cache_root() -> Path:
    base = os.environ.get("LORA_TRAINER_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "lora_trainer")
    try:
        os.makedirs(base, exist_ok=True)
        if os.access(base, os.W_OK):
            return Path(base)
    except OSError:
        pass
    return Path(tempfile.gettempdir()) / "lora_trainer"


def shipped_tokenizer_folder() -> Path | None:
    """A CLIP-L tokenizer folder built from the shipped merges (vocab.json derived), or None if the
    shipped files are missing. Built once per merges content, into a temp folder renamed when complete."""
    merges_path = SHIPPED_DIR / "merges.txt"
    try:
        raw = merges_path.read_bytes()
    except OSError:
        return None
    folder = _cache_root() / f"clip_tokenizer-{hashlib.sha1(raw).hexdigest()[:12]}"
    if (folder / "vocab.json").is_file():
        return folder
    lines = raw.decode("utf-8").split("\n")
    try:
        vocab = vocab_from_merges([m for m in lines[1:] if m][:N_MERGES])
    except ValueError:
        log.warning("%s is damaged; it is not the CLIP merge list.", merges_path)
        return None
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".clip_tokenizer-", dir=folder.parent))
    for name in ("merges.txt", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(SHIPPED_DIR / name, tmp / name)
    (tmp / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    try:
        os.replace(tmp, folder)
    except OSError:  # another process built it first
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def write_clip_merges(bpe_gz: str | os.PathLike, out_dir: str | os.PathLike) -> None:
    """Write the shipped ``merges.txt`` (transformers' CLIPTokenizer format) from open_clip's
    ``bpe_simple_vocab_16e6.txt.gz``; how the shipped file was made."""
    with gzip.open(bpe_gz, "rt", encoding="utf-8") as f:
        merges = f.read().split("\n")[1 : N_MERGES + 1]
    vocab_from_merges(merges)  # validates
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "merges.txt", "w", encoding="utf-8", newline="\n") as f:
        f.write("#version: 0.2\n" + "\n".join(merges) + "\n")
