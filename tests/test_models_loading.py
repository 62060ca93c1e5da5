"""load_base_model: single files (round trip through diffusers' from_single_file), diffusers folders,
v-prediction rules, clear errors, and peak memory."""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest

pytest.importorskip("diffusers")

import torch

from conftest import one_stack
from lora_trainer.errors import ModelLoadError
from lora_trainer.models.loading import BaseModel, load_base_model
from lora_trainer.models.tiny import build_tiny_components, save_single_file, text_encoders_of

REPO = Path(__file__).resolve().parents[1]
FAMILIES = ["sd1", "sd2", "sdxl"]


@pytest.fixture(scope="module")
def tiny():
    return {f: build_tiny_components(f, seed=1) for f in FAMILIES}


def _unet_inputs(unet, family):
    g = torch.Generator().manual_seed(0)
    kw = {}
    if family == "sdxl":
        kw["added_cond_kwargs"] = {"text_embeds": torch.randn(2, 16, generator=g),
                                   "time_ids": torch.randn(2, 6, generator=g)}
    ctx = torch.randn(2, 77, unet.config.cross_attention_dim, generator=g)
    return torch.randn(2, 4, 8, 8, generator=g), torch.tensor([10, 900]), ctx, kw


@torch.no_grad()
def _assert_same_outputs(comps, model: BaseModel, family, atol=0.0):
    def same(a, b, atol=atol):
        assert a.shape == b.shape
        if atol:
            assert torch.allclose(a.float(), b.float(), atol=atol)
        else:
            assert torch.equal(a, b)

    x, t, ctx, kw = _unet_inputs(comps["unet"], family)
    dt = next(model.unet.parameters()).dtype
    same(comps["unet"](x, t, ctx, **kw).sample, model.unet(x.to(dt), t, ctx.to(dt), **kw).sample)
    img = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(1)) * 2 - 1
    lat_a = comps["vae"].encode(img).latent_dist.mean
    lat_b = model.vae.encode(img.to(dt)).latent_dist.mean
    same(lat_a, lat_b)
    same(comps["vae"].decode(lat_a).sample, model.vae.decode(lat_a.to(dt)).sample)
    for te_a, te_b, tok in zip(text_encoders_of(comps), model.text_encoders, model.tokenizers):
        ids = tok(["a photo of a cat", "二次元 girl, 1girl"], padding="max_length", max_length=77,
                  truncation=True, return_tensors="pt").input_ids
        out_a, out_b = te_a(ids, output_hidden_states=True), te_b(ids, output_hidden_states=True)
        # transformers 4.36-4.4x pick SDPA for a loaded CLIP but eager attention for one built from a
        # config: same weights, last-bit differences. A wrong conversion differs by far more.
        te_atol = max(atol, 1e-5)
        same(out_a.hidden_states[-2], out_b.hidden_states[-2], te_atol)
        same(out_a[0], out_b[0], te_atol)
        if hasattr(out_a, "text_embeds"):
            same(out_a.text_embeds, out_b.text_embeds, te_atol)


@pytest.mark.parametrize("family", FAMILIES)
def test_single_file_round_trip(tiny, family, tmp_path):
    comps = tiny[family]
    path = save_single_file(comps, tmp_path / f"tiny-{family}.safetensors", family)
    model = load_base_model(path)
    assert isinstance(model, BaseModel)
    assert model.family == family and model.model_name == f"tiny-{family}" and model.source_path == str(path)
    assert len(model.text_encoders) == len(model.tokenizers) == (2 if family == "sdxl" else 1)
    assert model.v_prediction is (family == "sd2")
    assert type(model.noise_scheduler).__name__ == "DDPMScheduler"
    assert model.noise_scheduler.config.prediction_type == ("v_prediction" if family == "sd2" else "epsilon")
    assert model.noise_scheduler.config.num_train_timesteps == 1000
    assert not any(p.requires_grad for m in (model.unet, model.vae, *model.text_encoders) for p in m.parameters())
    _assert_same_outputs(comps, model, family)
    if family == "sdxl":  # diffusers tells the two encoders apart by width
        assert [te.config.hidden_size for te in model.text_encoders] == [16, 24]


@pytest.mark.parametrize("family", ["sd1", "sdxl"])
def test_fp16_file_upcast_and_ckpt(tiny, family, tmp_path):
    comps = tiny[family]
    half = save_single_file(comps, tmp_path / "half.safetensors", family, dtype=torch.float16)
    m32 = load_base_model(half, dtype=torch.float32)  # loaded as fp16, upcast afterwards
    assert {p.dtype for p in m32.unet.parameters()} == {torch.float32}
    ref = {k: v.half().float() for k, v in comps["unet"].state_dict().items()}
    assert all(torch.equal(ref[k], v) for k, v in m32.unet.state_dict().items())
    m16 = load_base_model(half, dtype=torch.float16)
    assert {p.dtype for m in (m16.unet, m16.vae, *m16.text_encoders) for p in m.parameters()} == {torch.float16}

    ckpt = save_single_file(comps, tmp_path / "tiny.ckpt", family)
    _assert_same_outputs(comps, load_base_model(ckpt), family)


def test_unicode_path_with_spaces(tiny, tmp_path):
    path = save_single_file(tiny["sd1"], tmp_path / "模型 目录" / "底模 v1.safetensors", "sd1")
    model = load_base_model(str(path))
    assert model.model_name == "底模 v1" and model.family == "sd1"
    _assert_same_outputs(tiny["sd1"], model, "sd1")


def _save_pipeline(comps, family, folder):
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

    if family == "sdxl":
        pipe = StableDiffusionXLPipeline(vae=comps["vae"], text_encoder=comps["text_encoder"],
                                         text_encoder_2=comps["text_encoder_2"], tokenizer=comps["tokenizer"],
                                         tokenizer_2=comps["tokenizer_2"], unet=comps["unet"],
                                         scheduler=comps["scheduler"])
    else:
        pipe = StableDiffusionPipeline(vae=comps["vae"], text_encoder=comps["text_encoder"],
                                       tokenizer=comps["tokenizer"], unet=comps["unet"], scheduler=comps["scheduler"],
                                       safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(str(folder))
    return folder


@pytest.mark.parametrize("family", FAMILIES)
def test_diffusers_folder(tiny, family, tmp_path):
    folder = _save_pipeline(tiny[family], family, tmp_path / "my model")
    model = load_base_model(folder)
    assert model.family == family and model.model_name == "my model"
    assert model.v_prediction is (family == "sd2")  # from the folder's scheduler config
    _assert_same_outputs(tiny[family], model, family)
    assert [t.pad_token_id for t in model.tokenizers] == {"sd1": [49407], "sd2": [0], "sdxl": [49407, 0]}[family]
    assert all(str(folder) in t.name_or_path for t in model.tokenizers)  # the folder's own tokenizers


def test_v_prediction_rules(tiny, tmp_path):
    sd2 = save_single_file(tiny["sd2"], tmp_path / "sd2 base.safetensors", "sd2")
    assert load_base_model(sd2).v_prediction is True
    assert load_base_model(sd2, v_parameterization=False).noise_scheduler.config.prediction_type == "epsilon"
    (tmp_path / "sd2 base.yaml").write_text('model:\n  params:\n    parameterization: "eps"\n', encoding="utf-8")
    assert load_base_model(sd2).v_prediction is False  # A1111 sidecar says epsilon (SD 2.x 512-base)
    sd1 = save_single_file(tiny["sd1"], tmp_path / "vpred.safetensors", "sd1")
    assert load_base_model(sd1).v_prediction is False
    (tmp_path / "vpred.yaml").write_text("model:\n  params:\n    parameterization: v\n", encoding="utf-8")
    model = load_base_model(sd1)
    assert model.v_prediction is True and model.noise_scheduler.config.prediction_type == "v_prediction"
    assert load_base_model(sd1, v_parameterization=False).v_prediction is False


def test_errors_are_clear(tiny, tmp_path):
    from safetensors.torch import save_file

    good = save_single_file(tiny["sd1"], tmp_path / "good.safetensors", "sd1")
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ModelLoadError, match="truncated") as err:
        load_base_model(cut)
    assert "re-download" in err.value.advice

    lora = tmp_path / "my_lora.safetensors"
    save_file({"lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight": torch.zeros(4, 16),
               "lora_unet_down_blocks_0_attentions_0_proj_in.lora_up.weight": torch.zeros(16, 4),
               "lora_unet_down_blocks_0_attentions_0_proj_in.alpha": torch.tensor(4.0)}, str(lora))
    with pytest.raises(ModelLoadError, match="LoRA") as err:
        load_base_model(lora)
    assert "my_lora.safetensors" in str(err.value)

    odd = tmp_path / "odd.safetensors"
    save_file({"backbone.layers.0.weight": torch.zeros(2), "head.bias": torch.zeros(2)}, str(odd))
    with pytest.raises(ModelLoadError, match="unknown model architecture"):
        load_base_model(odd)

    # A tiny SD1 file without its embedded configs does not fit the standard SD 1.5 shapes.
    from safetensors import safe_open

    with safe_open(str(good), "pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    bare = tmp_path / "bare.safetensors"
    save_file(tensors, str(bare))
    with pytest.raises(ModelLoadError, match="do not match a standard SD1 model"):
        load_base_model(bare)
    malformed = tmp_path / "malformed.safetensors"  # unusable embedded configs: ignored, same outcome
    save_file(tensors, str(malformed), metadata={"lora_trainer.diffusers_config": '{"family": "sd1", "unet": 3}'})
    with pytest.raises(ModelLoadError, match="do not match a standard SD1 model"):
        load_base_model(malformed)

    with pytest.raises(ModelLoadError, match="not a diffusers model"):
        load_base_model(tmp_path)
    with pytest.raises(ModelLoadError, match="not found"):
        load_base_model(tmp_path / "missing.safetensors")


def test_pipeline_runs_with_loaded_components(tiny, tmp_path):
    """The tiny VAE's scale factor (8) matches the config: a diffusers pipeline makes a 64 px image."""
    from diffusers import StableDiffusionXLPipeline

    model = load_base_model(save_single_file(tiny["sdxl"], tmp_path / "xl.safetensors", "sdxl"))
    pipe = StableDiffusionXLPipeline(vae=model.vae, text_encoder=model.text_encoders[0],
                                     text_encoder_2=model.text_encoders[1], tokenizer=model.tokenizers[0],
                                     tokenizer_2=model.tokenizers[1], unet=model.unet,
                                     scheduler=tiny["sdxl"]["scheduler"])
    pipe.set_progress_bar_config(disable=True)
    out = pipe("a cat", num_inference_steps=2, height=64, width=64, output_type="np",
               generator=torch.Generator().manual_seed(0)).images
    assert out.shape == (1, 64, 64, 3)


# --- memory -----------------------------------------------------------------------------------------

_MAKE = """
import json, sys, torch
from diffusers import AutoencoderKL, PNDMScheduler, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel
from lora_trainer.models.tiny import SHIPPED_CONFIGS, save_single_file
root = SHIPPED_CONFIGS / "sd15"
cfg = {k: v for k, v in UNet2DConditionModel.load_config(str(root / "unet")).items() if not k.startswith("_")}
cfg["block_out_channels"] = [96, 192, 384, 384]  # SD1.5 layout, narrower: ~590 MB in fp16 with full VAE + CLIP-L
comps = {"unet": UNet2DConditionModel(**cfg), "vae": AutoencoderKL.from_config(AutoencoderKL.load_config(str(root / "vae"))),
         "text_encoder": CLIPTextModel(CLIPTextConfig.from_pretrained(str(root / "text_encoder"))),
         "scheduler": PNDMScheduler.from_config(PNDMScheduler.load_config(str(root / "scheduler")))}
save_single_file(comps, sys.argv[1], "sd1", dtype=torch.float16)
"""

_MEASURE = """
import json, os, sys, threading, time, torch
from lora_trainer.models.loading import load_base_model
from lora_trainer.models.tokenizers import load_clip_tokenizers
import diffusers, transformers  # imports are not what we measure
load_clip_tokenizers("sd1")

def status():
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, value = line.split(":", 1)
            if key in ("VmRSS", "VmHWM", "RssAnon"):
                out[key] = int(value.split()[0]) * 1024
    return out

try:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the peak-RSS mark
except OSError:
    pass
before = status()
peak_anon, done = [before["RssAnon"]], []
def sample():
    while not done:
        peak_anon[0] = max(peak_anon[0], status()["RssAnon"])
        time.sleep(0.005)
sampler = threading.Thread(target=sample, daemon=True)
sampler.start()
model = load_base_model(sys.argv[1], dtype=getattr(torch, sys.argv[2]))
with torch.no_grad():  # touch every weight, so memory-mapped pages count too
    for module in (model.unet, model.vae, *model.text_encoders):
        for p in module.parameters():
            p.float().sum()
done.append(1)
sampler.join()
after = status()
print(json.dumps({"peak_growth": after["VmHWM"] - before["VmRSS"], "anon_growth": peak_anon[0] - before["RssAnon"]}))
"""


def _run(code, *args):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code), *map(str, args)], capture_output=True,
                         text=True, env=env, cwd=str(REPO), timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


@one_stack
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc to read peak RSS")
def test_peak_memory_of_loading_a_big_file(tmp_path):
    path = tmp_path / "big sd15.safetensors"
    _run(_MAKE, path)
    size = path.stat().st_size
    assert 450e6 < size < 700e6
    same = json.loads(_run(_MEASURE, path, "float16").strip().splitlines()[-1])
    print(f"fp16 file {size / 2**20:.0f} MiB, fp16 load: peak RSS +{same['peak_growth'] / 2**20:.0f} MiB "
          f"({same['peak_growth'] / size:.2f}x)")
    assert same["peak_growth"] < 1.6 * size  # the weights are held once, not file + copy
    up = json.loads(_run(_MEASURE, path, "float32").strip().splitlines()[-1])
    print(f"fp32 load: peak RSS +{up['peak_growth'] / 2**20:.0f} MiB ({up['peak_growth'] / size:.2f}x), "
          f"peak anonymous +{up['anon_growth'] / 2**20:.0f} MiB ({up['anon_growth'] / size:.2f}x)")
    # the fp32 model is 2x the fp16 file; upcasting module by module adds little private memory on top
    assert up["anon_growth"] < 2.4 * size


@pytest.mark.parametrize("file_dtype,asked,placed", [
    (torch.float16, torch.bfloat16, torch.bfloat16),   # an fp16 file trained in bf16
    (torch.float16, torch.float32, torch.float32),     # … in fp32
    (torch.bfloat16, torch.float16, torch.float32),    # the VAE of a bf16 file trained in fp16: via fp16
])
def test_cast_later_places_the_same_weights(tiny, tmp_path, file_dtype, asked, placed):
    path = save_single_file(tiny["sdxl"], tmp_path / "m.safetensors", "sdxl", dtype=file_dtype)
    now = load_base_model(path, dtype=asked)
    later = load_base_model(path, dtype=asked, cast_later=True)
    assert {p.dtype for p in later.unet.parameters()} == {file_dtype}   # not converted while loading
    for a, b in zip((now.unet, now.vae, *now.text_encoders), (later.unet, later.vae, *later.text_encoders)):
        now.place(a, "cpu", placed)
        later.place(b, "cpu", placed)
        later.place(b, "cpu", placed)   # a second move does not cast again
        sa, sb = a.state_dict(), b.state_dict()
        assert sa.keys() == sb.keys()
        assert all(sa[k].dtype == sb[k].dtype and torch.equal(sa[k], sb[k]) for k in sa)
    assert later.pending_cast == {}


@pytest.mark.parametrize("file_dtype,asked,placed", [
    (torch.bfloat16, torch.float16, torch.float16),    # a bf16 folder trained in fp16 (cast on the CPU before)
    (torch.float16, torch.float32, torch.float32),
])
def test_cast_later_places_the_same_weights_from_a_diffusers_folder(tiny, tmp_path, file_dtype, asked, placed):
    import copy
    comps = {name: (copy.deepcopy(part).to(file_dtype) if isinstance(part, torch.nn.Module) else part)
             for name, part in tiny["sdxl"].items()}
    folder = _save_pipeline(comps, "sdxl", tmp_path / "folder")
    now = load_base_model(folder, dtype=asked)
    later = load_base_model(folder, dtype=asked, cast_later=True)
    assert {p.dtype for p in later.unet.parameters()} == {file_dtype}   # not converted while loading
    assert {p.dtype for p in now.unet.parameters()} == {asked}
    for a, b in zip((now.unet, now.vae, *now.text_encoders), (later.unet, later.vae, *later.text_encoders)):
        now.place(a, "cpu", placed)
        later.place(b, "cpu", placed)
        sa, sb = a.state_dict(), b.state_dict()
        assert sa.keys() == sb.keys()
        assert all(sa[k].dtype == sb[k].dtype and torch.equal(sa[k], sb[k]) for k in sa)
    assert later.pending_cast == {}
