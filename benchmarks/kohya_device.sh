#!/usr/bin/env bash
# kohya sd-scripts on the benchmark's six reference jobs, offline, on this GPU.
# Needs (not part of the repository): .bench/sd-scripts (an exported sd-scripts tree) and
# .bench/whl-kohya (its pinned wheels: transformers 4.54.1, tokenizers 0.21.4, huggingface-hub
# 0.34.3, diffusers 0.32.1, accelerate 1.6.0, toml, voluptuous, imagesize), kept apart from ours.
# Settings as ours: LoRA rank/alpha 32 on kohya's own targets, UNet only, bf16 autocast, SDPA,
# AdamW, max_grad_norm 1, cached latents (and SDXL text-encoder outputs).
# Usage: bash benchmarks/kohya_device.sh OUT_DIR [WORK_DIR]
#   KOHYA_JOBS: the jobs to run, by name (default: all six), e.g. "sdxl_b1_gc sd15_b1_gc"
set -uo pipefail
OUT=${1:?OUT_DIR}
W=${2:-/tmp/kohya_bench}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$OUT" "$W"
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$W/site" \
  "$ROOT"/.bench/whl-kohya/*.whl || exit 1
KPY=(env PYTHONPATH="$W/site" python3)
JOBS=${KOHYA_JOBS:-sd15_b1 sd15_b4 sd15_b1_gc sdxl_b1 sdxl_b4 sdxl_b1_gc}
MODELS=(); [[ " $JOBS" == *" sd15"* ]] && MODELS+=(sd15); [[ " $JOBS" == *" sdxl"* ]] && MODELS+=(sdxl)
"${KPY[@]}" "$ROOT/benchmarks/kohya_prepare.py" "$W" "${MODELS[@]}" 2>&1 | grep -v Warning | tail -3

job() {  # name script steps skip timeout [extra args]
  local name=$1 script=$2 steps=$3 skip=$4 limit=$5; shift 5
  [[ " $JOBS " == *" $name "* ]] || return 0
  local res=512 data=$W/data/512 model=$W/models/sd15
  if [[ $script == sdxl* ]]; then res=1024; data=$W/data/1024; model=$W/models/sdxl; fi
  echo "== $name" >>"$OUT/kohya.log"
  KOHYA_JOB=$name timeout "$limit" "${KPY[@]}" "$ROOT/benchmarks/kohya_timer.py" "$OUT/kohya.jsonl" "$skip" \
    "$ROOT/.bench/sd-scripts" "$script" --pretrained_model_name_or_path "$model" --train_data_dir "$data" \
    --resolution "$res" --output_dir "$W/out/$name" --output_name k --save_model_as safetensors \
    --network_module networks.lora --network_dim 32 --network_alpha 32 --network_train_unet_only \
    --cache_latents --sdpa --mixed_precision bf16 --optimizer_type AdamW --learning_rate 1e-4 \
    --max_grad_norm 1.0 --max_train_steps "$steps" --caption_extension .txt \
    --tokenizer_cache_dir "$W/tokenizers" --max_data_loader_n_workers 2 --seed 0 "$@" \
    >>"$OUT/kohya.log" 2>&1
  echo "$name rc=$?"; tail -1 "$OUT/kohya.jsonl" | cut -c1-400
}
job sd15_b1 train_network.py 40 10 150 --train_batch_size 1
job sd15_b4 train_network.py 40 10 150 --train_batch_size 4
job sd15_b1_gc train_network.py 40 10 150 --train_batch_size 1 --gradient_checkpointing
job sdxl_b1 sdxl_train_network.py 30 8 220 --train_batch_size 1 --cache_text_encoder_outputs
job sdxl_b4 sdxl_train_network.py 22 6 220 --train_batch_size 4 --cache_text_encoder_outputs
job sdxl_b1_gc sdxl_train_network.py 30 8 220 --train_batch_size 1 --cache_text_encoder_outputs --gradient_checkpointing
