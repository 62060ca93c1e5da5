#!/usr/bin/env bash
# The user jobs (benchmarks/user_jobs.py), ours then kohya sd-scripts, on this GPU: random-weight models and data
# sets prepared once (kept in $UJ_WORK across calls), each run under its own timeout, from a cold page cache.
# Results: OUT/user_jobs.jsonl (a line per job and trainer, crashed and timed-out runs included), OUT/report.txt;
# logs: OUT/setup.log, OUT/ours.log, OUT/kohya.log.
# Needs: our wheels installed to /tmp/site by the caller (PYTHONPATH=/tmp/site); $BENCH (default .bench) with
# sd-scripts/, whl-kohya/ (kohya's pinned wheels, installed here to $UJ_WORK/ksite) and site-extra/
# (bitsandbytes, prodigyopt: on the path of both trainers); kohya also takes torchvision, opencv and einops from
# the machine's Python, as benchmarks/kohya_device.sh did.
# Jobs that would not finish before UJ_DEADLINE_S (default 570) seconds after the start are recorded as skipped.
# Other settings: UJ_SIDES ("ours kohya"), UJ_OPTS (runner options for both, e.g. "--epochs 4"), UJ_LIMIT_S (one
# timeout for every run instead of the job table's), UJ_TINY=1 (CPU smoke test: tiny models for ours; kohya needs
# the full-size SD1.5, prepared with UJ_OPTS="--full sd15"), PY (python3).
# Seen on an H200 (2026-12-04, both trainers, setup and a cold page cache included): preparing 88 s, U1-bf16 and
# U1-fp16 about 2.2 min each, U2-prodigy about 3 min; U2-adafactor and U3 are estimated at 3 and 4 min. So two calls:
#   bash benchmarks/user_jobs_device.sh OUT U1-fp16 U1-bf16 U2-prodigy;  bash ... OUT U2-adafactor U3
# The issue's job sizes (longer: one job a call): UJ_LIMIT_S=330 UJ_OPTS="--images 50 --epochs 3" ... U2-prodigy
# (150 steps, about 6.5 minutes with preparing) and UJ_LIMIT_S=200 UJ_OPTS="--repeats 10 --epochs 1" ... U1-bf16.
# The models and images stay in $UJ_WORK while the machine is kept. Results are appended to OUT/user_jobs.jsonl;
# for one table of several calls' files: cat them and run python benchmarks/user_jobs.py report ALL.jsonl.
# Bytecode: both trainers' imports are run once first with bytecode written (benchmarks/bytecode.sh), so that setup
# and end-to-end times are those of a second run on either side. Likewise benchmarks/gpu_prime.py runs torch's
# attention once per configuration before the jobs: the kernels a fresh GPU machine compiles at their first use
# (about 10 s) were otherwise paid by whichever job ran first, always ours.
# Usage: bash benchmarks/user_jobs_device.sh OUT [JOB ...]   (jobs: U1-fp16 U1-bf16 U2-prodigy U2-adafactor U3)
set -uo pipefail
OUT=${1:?OUT_DIR}; shift
JOBS=("$@"); [[ ${#JOBS[@]} -gt 0 ]] || JOBS=(U1-fp16 U1-bf16 U2-prodigy U2-adafactor U3)
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BENCH=${BENCH:-$ROOT/.bench}
W=${UJ_WORK:-/tmp/user_jobs}
PY=${PY:-python3}
DEADLINE=${UJ_DEADLINE_S:-570}
read -r -a SIDES <<<"${UJ_SIDES:-ours kohya}"
read -r -a RUN_OPTS <<<"${UJ_OPTS:-}"
UJ=("$ROOT/benchmarks/user_jobs.py")
mkdir -p "$OUT" "$W"
OUT=$(cd "$OUT" && pwd)
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false UJ_WORK=$W
OURS=(env PYTHONPATH="$ROOT:${PYTHONPATH:-/tmp/site}:$BENCH/site-extra" "$PY")
KOHYA=(env PYTHONPATH="$W/ksite:$BENCH/site-extra" "$PY")
if [[ " ${SIDES[*]} " == *" kohya "* && ! -d $W/ksite/transformers ]]; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$W/ksite" \
    "$BENCH"/whl-kohya/*.whl >>"$OUT/setup.log" 2>&1 \
    || { echo "kohya's wheels: install failed"; tail -5 "$OUT/setup.log"; exit 1; }
fi
source "$ROOT/benchmarks/bytecode.sh"
if [[ " ${SIDES[*]} " == *" kohya "* ]]; then
  prime_bytecode "$W" "$OUT/setup.log" "$ROOT:${PYTHONPATH:-/tmp/site}:$BENCH/site-extra" \
    "$W/ksite:$BENCH/site-extra" "$BENCH/sd-scripts"
else
  prime_bytecode "$W" "$OUT/setup.log" "$ROOT:${PYTHONPATH:-/tmp/site}:$BENCH/site-extra"
fi
if [[ ${UJ_TINY:-} != 1 ]]; then   # the GPU's first-use kernel compilation, once for both trainers
  "${OURS[@]}" "$ROOT/benchmarks/gpu_prime.py" 2>>"$OUT/setup.log" | tee -a "$OUT/setup.log"
fi
PREP=("${KOHYA[@]}"); TINY=()
if [[ ${UJ_TINY:-} == 1 ]]; then PREP=("${OURS[@]}"); TINY=(--tiny); fi   # tiny models need our diffusers
echo "== prepare $(date +%T)" >>"$OUT/setup.log"
"${PREP[@]}" "${UJ[@]}" prepare "${TINY[@]}" "${RUN_OPTS[@]}" "${JOBS[@]}" >>"$OUT/setup.log" 2>&1 \
  || { echo "prepare failed"; tail -15 "$OUT/setup.log"; exit 1; }
grep -E '^(U[0-9]|[a-z0-9]+: random)' "$OUT/setup.log" | tail -8
echo "prepared at ${SECONDS}s"

for job in "${JOBS[@]}"; do
  for side in "${SIDES[@]}"; do
    limit=${UJ_LIMIT_S:-$("$PY" "${UJ[@]}" limit "$job" "$side")} || limit=300
    left=$((DEADLINE - SECONDS - 15))
    log="$W/$side-$job.log"
    if (( left < 60 )); then
      echo "$job $side: skipped, ${left}s left" | tee -a "$OUT/$side.log"
      printf '{"job": "%s", "trainer": "%s", "status": "skipped", "steps": 0, "files": 0, "reason": "%s"}\n' \
        "$job" "$side" "${left}s left of UJ_DEADLINE_S" >>"$OUT/user_jobs.jsonl"
      continue
    fi
    (( limit > left )) && limit=$left
    rm -rf "$W/runs/$side-$job" "$W/raw/$side-$job".*
    sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null   # each run starts from a cold page cache
    start=$(date +%s.%N)
    if [[ $side == ours ]]; then
      timeout -k 10 "$limit" "${OURS[@]}" "${UJ[@]}" ours "$job" --start "$start" "${RUN_OPTS[@]}" >"$log" 2>&1
    else
      timeout -k 10 "$limit" "${KOHYA[@]}" "${UJ[@]}" kohya "$job" --start "$start" --sd-scripts "$BENCH/sd-scripts" \
        "${RUN_OPTS[@]}" >"$log" 2>&1
    fi
    rc=$?
    end=$(date +%s.%N)
    { echo "===== $job $side rc=$rc limit=${limit}s"; tr '\r' '\n' <"$log" | grep -v '^\s*$'; } >>"$OUT/$side.log"
    "$PY" "${UJ[@]}" record "$side" "$job" --rc "$rc" --start "$start" --end "$end" --log "$log" \
      --out "$OUT/user_jobs.jsonl" "${RUN_OPTS[@]}" | cut -c1-400
  done
done
"$PY" "${UJ[@]}" report "$OUT/user_jobs.jsonl" | tee "$OUT/report.txt"
