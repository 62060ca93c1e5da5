#!/usr/bin/env bash
# One device run: CUDA checks of the trainer core, then the step benchmark.
# Usage (on a CUDA machine, from the repository root): bash benchmarks/gpu_check.sh OUT_DIR
set -uo pipefail
OUT=${1:-gpu_out}
mkdir -p "$OUT"
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
python3 -c "import torch, diffusers, peft, transformers, accelerate; print('torch', torch.__version__, torch.cuda.get_device_name(), 'diffusers', diffusers.__version__, 'peft', peft.__version__, 'transformers', transformers.__version__, 'accelerate', accelerate.__version__)"
# 1. the demo dataset on the GPU in bf16 with an 8-bit optimizer, through accelerate launch
python3 - <<'PY'
from lora_trainer.demo import write_demo_base
write_demo_base("/tmp/gpu_demo")
PY
accelerate launch --num_processes 1 --mixed_precision bf16 -m lora_trainer train \
  --pretrained_model_name_or_path /tmp/gpu_demo/base/tiny-sd15.safetensors \
  --train_data_dir lora_trainer/demo_data/train --output_dir /tmp/gpu_demo/out --output_name gpu \
  --resolution 64 --min_bucket_reso 64 --max_bucket_reso 128 --max_train_epochs 3 --train_batch_size 4 \
  --mixed_precision bf16 --optimizer_type AdamW8bit --learning_rate 2e-3 --network_dim 8 --network_alpha 8 \
  > "$OUT/gpu_train.log" 2>&1; echo "train rc=$?" | tee -a "$OUT/gpu_train.log"
tail -5 "$OUT/gpu_train.log"
python3 -m lora_trainer inspect /tmp/gpu_demo/out/gpu.safetensors | tail -3
# 2. the step benchmark
for args in "--model sd15 --batch 1" "--model sd15 --batch 4" "--model sd15 --batch 1 --gradient-checkpointing" \
            "--model sdxl --batch 1" "--model sdxl --batch 4" "--model sdxl --batch 1 --gradient-checkpointing"; do
  python3 -m lora_trainer bench $args --steps 20 --warmup 5 --json "$OUT/bench.jsonl" 2>&1 | grep -v Warning | tail -2
done
python3 -m lora_trainer bench --model sd15 --batch 1 --steps 5 --no-baseline --profile "$OUT/profile_sd15_b1.txt" | tail -1
python3 -m lora_trainer bench --model sdxl --batch 4 --steps 5 --no-baseline --profile "$OUT/profile_sdxl_b4.txt" | tail -1
