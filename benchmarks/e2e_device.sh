#!/usr/bin/env bash
# The end-to-end job, ours then kohya sd-scripts, on one random SDXL model: 20 images at 1024²,
# REPEATS repeats (default 1), EPOCHS epochs, batch 1, one saved file per epoch, latents (and kohya's
# text-encoder outputs) cached first. Needs .bench/ as benchmarks/kohya_device.sh says (not for "ours"),
# and our wheels in $WHEELS. Both trainers' imports are run once first with bytecode written (benchmarks/bytecode.sh).
# Usage: bash benchmarks/e2e_device.sh OUT_DIR [EPOCHS] [REPEATS] [ours]
set -uo pipefail
OUT=${1:?OUT_DIR}
EPOCHS=${2:-10}
REPEATS=${3:-1}
ONLY=${4:-}
W=/tmp/kohya_bench
ROOT=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$OUT" "$W"
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
if [[ $ONLY != ours ]]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$W/site" \
    "$ROOT"/.bench/whl-kohya/*.whl || exit 1
fi
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
  "${WHEELS:-$ROOT/.whl}"/*.whl || exit 1
[[ -f $W/models/sdxl/model_index.json ]] || env PYTHONPATH="$W/site:/tmp/site" python3 "$ROOT/benchmarks/kohya_prepare.py" "$W" sdxl e2e 2>&1 | tail -1
if [[ $REPEATS != 1 && -d $W/data/e2e/1_zkz ]]; then mv "$W/data/e2e/1_zkz" "$W/data/e2e/${REPEATS}_zkz"; fi
source "$ROOT/benchmarks/bytecode.sh"   # times are those of a second run on either side
if [[ $ONLY == ours ]]; then
  prime_bytecode "$W" "$OUT/prime.log" "/tmp/site:$ROOT"
else
  prime_bytecode "$W" "$OUT/prime.log" "/tmp/site:$ROOT" "$W/site" "$ROOT/.bench/sd-scripts"
fi
rm -rf "$W/e2e_ours" "$W/e2e_kohya"
sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null  # both start from a cold page cache
env PYTHONPATH="/tmp/site:$ROOT" python3 "$ROOT/benchmarks/e2e.py" ours "$W/models/sdxl" "$W/data/e2e" "$W/e2e_ours" \
  "$EPOCHS" "$OUT/e2e.jsonl" >"$OUT/e2e_ours.log" 2>&1; tail -1 "$OUT/e2e_ours.log"
[[ $ONLY == ours ]] && exit 0
sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null
start=$(date +%s.%N)
KOHYA_JOB=e2e env PYTHONPATH="$W/site" python3 "$ROOT/benchmarks/kohya_timer.py" "$OUT/kohya_e2e.jsonl" 0 \
  "$ROOT/.bench/sd-scripts" sdxl_train_network.py --pretrained_model_name_or_path "$W/models/sdxl" \
  --train_data_dir "$W/data/e2e" --resolution 1024 --output_dir "$W/e2e_kohya" --output_name e2e \
  --save_model_as safetensors --network_module networks.lora --network_dim 32 --network_alpha 32 \
  --network_train_unet_only --cache_latents --cache_text_encoder_outputs --sdpa --mixed_precision bf16 \
  --optimizer_type AdamW --learning_rate 1e-4 --max_grad_norm 1.0 --max_train_epochs "$EPOCHS" \
  --save_every_n_epochs 1 --train_batch_size 1 --caption_extension .txt --tokenizer_cache_dir "$W/tokenizers" \
  --seed 0 >"$OUT/e2e_kohya.log" 2>&1
python3 "$ROOT/benchmarks/e2e.py" kohya "$start" "$OUT/kohya_e2e.jsonl" "$W/e2e_kohya" $((20 * REPEATS)) "$OUT/e2e.jsonl"
