"""A1111's text conditioning of a LoRA, without its server: where a NaN in "the Unet" comes from.

  cd /work/hosts/a1111 && flock /work/hosts/host.lock env HF_HOME=/work/hosts/hf-home HF_HUB_OFFLINE=1 \
      venv/bin/python /path/to/benchmarks/a1111_conditioning.py LORA_DIR NAME CHECKPOINT [--ln-bias 0.1]

Runs in the WebUI's own Python (cwd = its root): loads the checkpoint and the built-in Lora extension as
A1111 1.10 does, then for LoRA text-encoder weights 0, 0.8 and 1 and a few prompts prints one JSON line:
whether the text encoder's output is finite, the mean A1111's "Original" emphasis divides by
(``z * (original_mean / new_mean)``, ``modules/sd_emphasis.py``) in float32 and float64, and the NaNs in
the conditioning the UNet receives. ``--ln-bias S`` gives the final layer norm a random bias of scale S
first (a trained CLIP has one; a random-weight checkpoint has bias 0, so every token's output has mean 0).
"""
import json
import os
import sys
import time

args = sys.argv[1:]
LN_BIAS = float(args[args.index("--ln-bias") + 1]) if "--ln-bias" in args else 0.0
LORA_DIR, NAME, CKPT = args[:3]
sys.path.insert(0, os.getcwd())
sys.argv = ["webui.py", "--skip-prepare-environment", "--skip-install", "--skip-torch-cuda-test",
            "--skip-python-version-check", "--no-download-sd-model", "--use-cpu", "all", "--no-half",
            "--no-half-vae", "--precision", "full", "--lora-dir", LORA_DIR, "--ckpt", CKPT]
from modules import initialize  # noqa: E402  (the WebUI's modules, from its root)

initialize.imports()
initialize.check_versions()
initialize.initialize()
from modules import script_callbacks, sd_emphasis, shared  # noqa: E402

script_callbacks.before_ui_callback()
import torch  # noqa: E402

model = shared.sd_model
while model is None or not hasattr(model, "cond_stage_model"):
    time.sleep(1)
    model = shared.sd_model
import networks  # noqa: E402  (extensions-builtin/Lora, on sys.path once its script loaded)

networks.list_available_networks()
norm = model.cond_stage_model.wrapped.transformer.text_model.final_layer_norm
if LN_BIAS:
    torch.manual_seed(0)
    with torch.no_grad():
        norm.bias.normal_(0, LN_BIAS)
print(json.dumps({"final_layer_norm": {"weight": [norm.weight.min().item(), norm.weight.max().item()],
                                        "bias": [norm.bias.min().item(), norm.bias.max().item()]}}), flush=True)
seen = {}
original = sd_emphasis.EmphasisOriginal.after_transformers


def logged(self):
    seen.update(encoder_finite=bool(torch.isfinite(self.z).all()), multipliers_all_one=bool((self.multipliers == 1).all()),
                mean_fp32=self.z.mean().item(), mean_fp64=self.z.double().mean().item())
    original(self)


sd_emphasis.EmphasisOriginal.after_transformers = logged
PROMPTS = ["a photo of a cat", "zkz, a red circle", "zkz", "a landscape with mountains", "zkz shapes, blue square",
           "portrait of a woman", "red circle", "zkz, green triangle, white background"]
for weight in (0.0, 0.8, 1.0):
    networks.load_networks([NAME] if weight else [], te_multipliers=[weight], unet_multipliers=[0.0], dyn_dims=[None])
    if weight and networks.loaded_networks:   # every module of the file found a layer (key mapping)
        from safetensors import safe_open
        with safe_open(networks.loaded_networks[0].network_on_disk.filename, framework="pt") as fh:
            in_file = {k.split(".")[0] for k in fh.keys()}
        mods = networks.loaded_networks[0].modules
        print(json.dumps({"modules_in_file": len(in_file), "matched": len(mods),
                          "text_encoder_matched": sum(k.startswith("transformer_text_model") for k in mods)}), flush=True)
    for prompt in PROMPTS:
        seen.clear()
        with torch.no_grad():
            cond = model.get_learned_conditioning([prompt])
        print(json.dumps({"te_weight": weight, "prompt": prompt, **seen,
                          "conditioning_nan": int(torch.isnan(cond).sum()), "conditioning_size": cond.numel()}),
              flush=True)
