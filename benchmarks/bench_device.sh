#!/usr/bin/env bash
# Our side of the benchmark in one device run. Needs diffusers (and bitsandbytes for the 8-bit
# preset) as wheels in $WHEELS (default .whl/). Results: OUT/ours.jsonl (one JSON line per measurement) + logs.
# Usage: bash benchmarks/bench_device.sh OUT_DIR steps|sdxl|compile|presets|compile-sd15|...
#   steps:   eager / CUDA graphs / channels-last on the six reference jobs, graph equivalence
#   sdxl:    the SDXL half of steps, and the allocator's expandable segments
#   compile: regional torch.compile, SD1.5 batch 16, the VRAM presets under their memory caps
#   presets: the VRAM presets only; compile-sd15: compiled SD1.5 at batch 16
#   precision: bf16 without autocast against the former autocast step (+amp), checkpointing that
#            keeps the self-attention outputs against recomputing all (+fullgc), then the WebUI
#            runner against the CLI on the same job and a checkpointed CLI job with validation
#   memory:  graph equivalence and the reference jobs' memory after a change to it
#   final:   graph equivalence, the reference jobs with the current step, where the reserved
#            memory is, the SDXL batch-4 profile
#   reference: graph equivalence, the six reference jobs (first variant: train's default step),
#            the checkpointed jobs against keeping only the attention outputs (+attnonly)
#   train-memory: a whole checkpointed SDXL 1024² train run's peak memory, setup included
#            (benchmarks/train_memory.py); compiled jobs: parts compile-sd15 and compile
#   profile: the SDXL batch-4 profile of train's default step, eager and captured
#   compile-regions: SDXL batch 4 compiled as the blocks, as wider regions (+wide) and channels-last (+cl),
#            one process each (compiling cannot be undone in a process; about 2.5 minutes each, 8 in all)
#   preset-train: each SDXL VRAM preset as a whole `train` run under its memory cap, and one after
#            the character preset (shuffled captions); with graph equivalence first (text encoders too)
#   new-types: the demo dataset on the GPU (bf16, CUDA graphs on) as LoHa + DoRA, LoKr + LoCon, fp8 base with
#            block weights, DoRA + fp8 + checkpointing: loss, whether the graph capture fell back, the file check
#   fp8-presets: the fp8 tiers (sd1-4gb at 512², sdxl-6gb at 1024²) as whole `train` runs under their
#            caps, then each job again without the cap, fp8_base on and off (same seed), for the loss
#   before-after: the same steps from an earlier commit's code (BEFORE, default .bench/before: its lora_trainer
#            and benchmarks, e.g. `git archive COMMIT lora_trainer benchmarks | tar -x -C .bench/before`) and from
#            this tree, a process each: SD1.5 b1 and SDXL b1 checkpointed eager and captured, SDXL b4 captured
#            (OUT/before.jsonl, OUT/after.jsonl; about 9 minutes); BA_OPTS: more bench options for both
#            sides, e.g. "--alpha 16" (a scale of 1/2, as users train; needs a BEFORE whose bench has it)
#   fused:   graph equivalence, then each LoRA Linear as one autograd function against autograd's four nodes
#            (variants +autograd) on SD1.5 b1, SDXL b1 checkpointed and SDXL b4 (with its profile), alpha 16
#   fused-compile: SDXL b4 captured and compiled (compile + graphs; its FLOP count with the in-place
#            products), each with its profile (GPU time by kind of kernel)
#   geglu:   the GEGLU's jitted kernels (benchmarks/geglu_check.py: values, times, capture), then SDXL b4 captured
#            and SDXL b1 checkpointed captured and eager with them (+jitgeglu) and without
#   eager-gc: the checkpointed eager steps (SDXL 1024² b1, SD1.5 512² b1), reentrant as `train` runs them;
#            SDXL against the LoRA Linears through autograd (+autograd), SD1.5 against non-reentrant
#            (+nonreentrant), alternating, three and two times each
set -uo pipefail
OUT=${1:?OUT_DIR}
PART=${2:-steps}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
  "${WHEELS:-$ROOT/.whl}"/*.whl || exit 1
export PYTHONPATH=/tmp/site:$ROOT HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
cd "$ROOT"
python3 -c "import torch, diffusers, peft, transformers, accelerate; print('torch', torch.__version__, torch.cuda.get_device_name(), 'diffusers', diffusers.__version__, 'peft', peft.__version__, 'transformers', transformers.__version__, 'accelerate', accelerate.__version__)" | tee -a "$OUT/versions.txt"
bench() {  # timeout, then bench arguments
  local limit=$1; shift
  echo "== $*" >>"$OUT/bench.log"
  timeout "$limit" python3 -m benchmarks.bench --json "$OUT/ours.jsonl" "$@" 2>>"$OUT/bench.log" \
    | tee -a "$OUT/bench.log" | cut -c1-330
  echo "rc=${PIPESTATUS[0]} ($*)"
}
if [[ $PART == steps ]]; then
  timeout 120 python3 benchmarks/graph_check.py 6 2>>"$OUT/bench.log" | tee "$OUT/graph_check.log"
  bench 100 --model sd15 --batch 1 --variants eager,graphs,eager+cl,graphs+cl
  bench 100 --model sd15 --batch 4 --variants eager,graphs,eager+cl,graphs+cl
  bench 80 --model sd15 --batch 1 --gradient-checkpointing --variants eager,graphs
fi
if [[ $PART == steps || $PART == sdxl ]]; then
  [[ $PART == sdxl ]] && timeout 150 python3 benchmarks/graph_check.py 6 2>>"$OUT/bench.log" | tee "$OUT/graph_check.log"
  bench 110 --model sdxl --batch 1 --variants eager,graphs
  bench 140 --model sdxl --batch 4 --variants eager,graphs,graphs+cl --profile "$OUT/profile_sdxl_b4.txt"
  bench 110 --model sdxl --batch 1 --gradient-checkpointing --variants eager,graphs
  # the allocator's expandable segments: less reserved beside the same allocated memory?
  export PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True
  bench 60 --model sd15 --batch 1 --no-baseline --variants eager,graphs
  bench 90 --model sdxl --batch 1 --gradient-checkpointing --no-baseline --variants eager,graphs
  unset PYTORCH_CUDA_ALLOC_CONF
fi
if [[ $PART == compile ]]; then
  bench 80 --model sd15 --batch 16 --no-baseline --variants eager,graphs
  bench 330 --model sdxl --batch 4 --no-baseline --variants compile+graphs
fi
if [[ $PART == compile || $PART == presets ]]; then
  for tier in 8 12 16 24; do bench 100 --memory-preset "sdxl-${tier}gb"; done
fi
if [[ $PART == compile-regions ]]; then
  for v in compile+graphs compile+graphs+wide compile+graphs+cl; do
    bench 200 --model sdxl --batch 4 --no-baseline --variants "$v"
  done
fi
if [[ $PART == before-after ]]; then
  for side in before after; do
    tree=$ROOT; [[ $side == before ]] && tree=${BEFORE:-$ROOT/.bench/before}
    for job in "sd15 --batch 1 --variants eager,graphs" "sdxl --batch 1 --gradient-checkpointing --variants eager,graphs" \
               "sdxl --batch 4 --variants graphs"; do
      echo "== $side: $job" >>"$OUT/bench.log"
      # shellcheck disable=SC2086  # the job's words are bench's arguments
      (cd "$tree" && PYTHONPATH=/tmp/site:$tree timeout 100 python3 -m benchmarks.bench --json "$OUT/$side.jsonl" \
        --no-baseline ${BA_OPTS:-} --model $job 2>>"$OUT/bench.log" | tee -a "$OUT/bench.log" | cut -c1-330)
    done
  done
fi
if [[ $PART == fused ]]; then
  timeout 150 python3 benchmarks/graph_check.py 6 2>>"$OUT/bench.log" | tee "$OUT/graph_check.log"
  bench 100 --model sd15 --batch 1 --alpha 16 --no-baseline --variants eager,eager+autograd,graphs,graphs+autograd
  bench 150 --model sdxl --batch 1 --gradient-checkpointing --alpha 16 --no-baseline \
    --variants graphs,graphs+autograd,eager,eager+autograd
  bench 150 --model sdxl --batch 4 --alpha 16 --no-baseline --variants graphs,graphs+autograd \
    --profile "$OUT/profile_sdxl_b4.txt"
fi
if [[ $PART == fused-compile ]]; then
  bench 120 --model sdxl --batch 4 --alpha 16 --no-baseline --variants graphs --profile "$OUT/profile_sdxl_b4_graphs.txt"
  bench 240 --model sdxl --batch 4 --alpha 16 --no-baseline --variants compile+graphs \
    --profile "$OUT/profile_sdxl_b4_compiled.txt"
fi
if [[ $PART == eager-gc ]]; then
  bench 200 --model sdxl --batch 1 --gradient-checkpointing --alpha 16 --no-baseline --steps 15 \
    --variants eager,eager+autograd,eager,eager+autograd,eager,eager+autograd
  bench 100 --model sd15 --batch 1 --gradient-checkpointing --alpha 16 --no-baseline \
    --variants eager+nonreentrant,eager,eager+nonreentrant,eager
fi
if [[ $PART == geglu ]]; then
  timeout 120 python3 -m benchmarks.geglu_check "$OUT/geglu_check.jsonl" 2>>"$OUT/bench.log" | tee "$OUT/geglu_check.log"
  bench 150 --model sdxl --batch 4 --alpha 16 --no-baseline --variants graphs,graphs+jitgeglu,graphs,graphs+jitgeglu
  bench 150 --model sdxl --batch 1 --gradient-checkpointing --alpha 16 --no-baseline --steps 15 \
    --variants graphs,graphs+jitgeglu,eager,eager+jitgeglu
fi
if [[ $PART == compile-sd15 ]]; then
  bench 200 --model sd15 --batch 16 --no-baseline --variants compile+graphs
fi
if [[ $PART == precision ]]; then
  bench 60 --model sd15 --batch 1 --no-baseline --variants graphs,graphs+amp,eager
  bench 60 --model sd15 --batch 1 --gradient-checkpointing --no-baseline --variants graphs,graphs+fullgc
  bench 80 --model sdxl --batch 1 --no-baseline --variants graphs,graphs+amp
  bench 100 --model sdxl --batch 1 --gradient-checkpointing --no-baseline --variants graphs,graphs+fullgc,eager
  bench 90 --model sdxl --batch 4 --no-baseline --variants graphs,graphs+amp
  W=/tmp/runner_bench
  timeout 90 python3 benchmarks/kohya_prepare.py "$W" sd15 2>>"$OUT/bench.log" | tail -1
  timeout 200 python3 benchmarks/runner_vs_cli.py "$W/models/sd15" "$W/data/512" "$W/runs" 400 "$OUT/runner_vs_cli.jsonl" 2 \
    2>>"$OUT/runner.log" | tee -a "$OUT/runner.log" | cut -c1-300
  timeout 90 python3 -m lora_trainer train --pretrained_model_name_or_path "$W/models/sd15" \
    --train_data_dir "$W/data/512" --output_dir "$W/val" --output_name val --max_train_epochs none \
    --max_train_steps 60 --validation_split 0.25 --gradient_checkpointing true --save_state false \
    >"$OUT/validation_run.log" 2>&1; echo "rc=$? (validation run)"
  grep -h '"validation"' "$W"/val/logs/*/metrics.jsonl | tee "$OUT/validation_events.jsonl"
  grep -h 'cuda_graphs' "$W"/val/logs/*/metrics.jsonl | head -2
fi
if [[ $PART == final ]]; then
  timeout 150 python3 benchmarks/graph_check.py 6 2>>"$OUT/bench.log" | tee "$OUT/graph_check.log"
  bench 110 --model sdxl --batch 1 --gradient-checkpointing --no-baseline --variants graphs,graphs+fullgc,eager \
    --memory-breakdown "$OUT/memory.md"
  bench 60 --model sdxl --batch 1 --no-baseline --variants graphs --memory-breakdown "$OUT/memory.md"
  bench 45 --model sd15 --batch 1 --no-baseline --variants graphs
  bench 45 --model sd15 --batch 1 --gradient-checkpointing --no-baseline --variants graphs,eager
  bench 45 --model sd15 --batch 4 --no-baseline --variants graphs
  bench 60 --model sd15 --batch 16 --no-baseline --variants graphs
  bench 140 --model sdxl --batch 4 --variants eager,graphs --profile "$OUT/profile_sdxl_b4.txt"
fi
if [[ $PART == memory ]]; then
  timeout 150 python3 benchmarks/graph_check.py 6 2>>"$OUT/bench.log" | tee "$OUT/graph_check.log"
  bench 80 --model sdxl --batch 1 --gradient-checkpointing --no-baseline --variants graphs --memory-breakdown "$OUT/memory.md"
  bench 50 --model sdxl --batch 1 --no-baseline --variants graphs
  bench 40 --model sd15 --batch 1 --no-baseline --variants graphs
  bench 40 --model sd15 --batch 1 --gradient-checkpointing --no-baseline --variants graphs
  bench 50 --model sd15 --batch 4 --no-baseline --variants graphs
fi
if [[ $PART == reference ]]; then
  timeout 150 python3 benchmarks/graph_check.py 6 2>>"$OUT/bench.log" | tee "$OUT/graph_check.log"
  bench 70 --model sd15 --batch 1 --no-baseline --variants graphs,eager
  bench 70 --model sd15 --batch 4 --no-baseline --variants graphs
  bench 70 --model sd15 --batch 1 --gradient-checkpointing --no-baseline --variants graphs,graphs+attnonly
  bench 90 --model sdxl --batch 1 --no-baseline --variants graphs
  bench 110 --model sdxl --batch 4 --no-baseline --variants graphs,eager
  bench 120 --model sdxl --batch 1 --gradient-checkpointing --no-baseline --variants graphs,graphs+attnonly,graphs+fullgc
fi
if [[ $PART == train-memory ]]; then
  W=/tmp/train_memory
  timeout 150 python3 benchmarks/kohya_prepare.py "$W" sdxl 2>>"$OUT/bench.log" | tail -1
  timeout 200 python3 benchmarks/train_memory.py "$OUT/train_memory.jsonl" sdxl-gc-b1 -- \
    --pretrained_model_name_or_path "$W/models/sdxl" --train_data_dir "$W/data/1024" --output_dir "$W/out" \
    --output_name m --resolution 1024 --train_batch_size 1 --gradient_checkpointing true --network_dim 32 \
    --network_alpha 32 --network_train_unet_only true --cache_latents true --mixed_precision bf16 \
    --optimizer_type AdamW --max_grad_norm 1.0 --max_train_epochs none --max_train_steps 60 --save_state false \
    --save_every_n_epochs none >"$OUT/train_memory.log" 2>&1
  tail -1 "$OUT/train_memory.log"
fi
if [[ $PART == profile ]]; then
  bench 140 --model sdxl --batch 4 --no-baseline --variants eager,graphs --profile "$OUT/profile_sdxl_b4.txt"
  bench 110 --model sdxl --batch 4 --no-baseline --variants graphs --profile "$OUT/profile_sdxl_b4_graphs.txt"
fi
if [[ $PART == preset-train ]]; then
  timeout 200 python3 benchmarks/graph_check.py 6 2>>"$OUT/bench.log" | tee "$OUT/graph_check.log"
  W=/tmp/preset_train
  timeout 150 python3 benchmarks/kohya_prepare.py "$W" sdxl 2>>"$OUT/bench.log" | tail -1
  for presets in sdxl-8gb sdxl-12gb sdxl-16gb sdxl-24gb character,sdxl-12gb; do
    tier=${presets##*sdxl-}; tier=${tier%gb}
    # the cap the benchmark's check uses: the card's GiB less 0.5 GiB of CUDA context
    timeout 150 python3 benchmarks/train_memory.py "$OUT/preset_train.jsonl" "$presets" --preset "$presets" \
      --cap-gib "$((tier - 1)).5" -- \
      --pretrained_model_name_or_path "$W/models/sdxl" --train_data_dir "$W/data/1024" --output_dir "$W/out_${presets/,/_}" \
      --output_name m --mixed_precision bf16 --max_train_epochs none --max_train_steps 30 --save_state false \
      --save_every_n_epochs none >"$OUT/preset_train_${presets/,/_}.log" 2>&1
    tail -1 "$OUT/preset_train_${presets/,/_}.log" | cut -c1-500
  done
fi
if [[ $PART == fp8-presets ]]; then
  W=/tmp/fp8_presets
  timeout 240 python3 benchmarks/kohya_prepare.py "$W" sd15 sdxl 2>>"$OUT/bench.log" | tail -2
  for job in "sd1-4gb sd15 512" "sdxl-6gb sdxl 1024"; do
    read -r preset model size <<<"$job"
    tier=${preset##*-}; tier=${tier%gb}
    common=(--pretrained_model_name_or_path "$W/models/$model" --train_data_dir "$W/data/$size" --output_name m
            --mixed_precision bf16 --max_train_epochs none --max_train_steps 60 --save_state false
            --save_every_n_epochs none --seed 0)
    # the cap the benchmark's check uses: the card's GiB less 0.5 GiB of CUDA context
    timeout 200 python3 benchmarks/train_memory.py "$OUT/fp8_presets.jsonl" "$preset" --preset "$preset" \
      --cap-gib "$((tier - 1)).5" -- "${common[@]}" --output_dir "$W/out_$preset" >"$OUT/fp8_$preset.log" 2>&1
    tail -1 "$OUT/fp8_$preset.log" | cut -c1-500
    for fp8 in true false; do
      timeout 200 python3 benchmarks/train_memory.py "$OUT/fp8_presets.jsonl" "$preset-fp8-$fp8" --preset "$preset" \
        -- "${common[@]}" --fp8_base "$fp8" --output_dir "$W/out_${preset}_$fp8" >"$OUT/fp8_${preset}_$fp8.log" 2>&1
      tail -1 "$OUT/fp8_${preset}_$fp8.log" | cut -c1-500
    done
  done
fi
if [[ $PART == new-types ]]; then
  BASE=$(python3 -c "from lora_trainer.cli.demo import write_demo_base; print(write_demo_base('/tmp/new_types'))" | tail -1)
  for extra in "--algo loha --dora_wd true" "--algo lokr --conv_dim 4" "--fp8_base true --down_lr_weight 0,1,1 --weight_decay 0.05" \
               "--dora_wd true --fp8_base true --gradient_checkpointing true"; do
    name=$(echo "$extra" | tr -cd 'a-z0-9_' | cut -c1-40)
    timeout 150 python3 -m lora_trainer train --pretrained_model_name_or_path "$BASE" --train_data_dir lora_trainer/demo_data/train \
      --output_dir "/tmp/new_types/$name" --output_name g --resolution 64 --min_bucket_reso 64 --max_bucket_reso 128 \
      --max_train_epochs 4 --train_batch_size 4 --mixed_precision bf16 --learning_rate 1e-2 --network_dim 8 --network_alpha 8 \
      $extra >"$OUT/new_types_$name.log" 2>&1
    echo "rc=$? $extra"
    python3 - "/tmp/new_types/$name" <<'PY'
import glob, json, sys
rows = [json.loads(line) for line in open(glob.glob(sys.argv[1] + "/logs/*/metrics.jsonl")[0])]
loss = [r["loss"] for r in rows if r.get("type") == "step"]
failed = [r for r in rows if r.get("kind") == "cuda_graphs_failed"]
print(f"  steps {len(loss)}, loss {sum(loss[:8]) / 8:.3f} -> {sum(loss[-8:]) / 8:.3f}, graph capture failed: {failed or 'no'}")
PY
    grep -h "CUDA graphs are off" "$OUT/new_types_$name.log" | head -1
    python3 -m lora_trainer inspect "/tmp/new_types/$name/g.safetensors" | grep -E "type:|check:"
  done
fi
