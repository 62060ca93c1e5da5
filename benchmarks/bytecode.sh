# Sourced by the device scripts that time whole processes (user_jobs_device.sh, e2e_device.sh).
# The GPU machine's Python writes no bytecode (PYTHONDONTWRITEBYTECODE is set there; a run that failed at its first
# check spent 6.5 of its 18 s compiling 1,813 modules from source, every time), which a user's machine has after its
# first run. prime_bytecode turns bytecode writing on (kept under PYTHONPYCACHEPREFIX, default $1/pycache) and runs
# both trainers' imports once, so that setup and end-to-end times are those of a second run on either side.
# Usage: prime_bytecode WORK LOG OURS_PYTHONPATH [KOHYA_PYTHONPATH SD_SCRIPTS]   (PY: python3)
prime_bytecode() {
  local work=$1 log=$2 ours=$3 kohya=${4:-} sd_scripts=${5:-} py=${PY:-python3} start=$SECONDS
  export PYTHONPYCACHEPREFIX=${PYTHONPYCACHEPREFIX:-$work/pycache}
  unset PYTHONDONTWRITEBYTECODE   # a failure below only costs the cache
  env PYTHONPATH="$ours" "$py" -c "import lora_trainer.cli.main, lora_trainer.train.loop, \
lora_trainer.models.loading, diffusers, transformers, peft, accelerate; from diffusers import UNet2DConditionModel, \
AutoencoderKL; from transformers import CLIPTextModel, CLIPTextModelWithProjection
for optional in ('bitsandbytes', 'prodigyopt'):
    try: __import__(optional)
    except ImportError: pass" >>"$log" 2>&1 || echo "priming ours failed"
  if [[ -n $kohya ]]; then
    (cd "$sd_scripts" && env PYTHONPATH="$kohya" "$py" -c "import train_network, sdxl_train_network" >>"$log" 2>&1) \
      || echo "priming kohya failed"
  fi
  echo "bytecode primed in $((SECONDS - start))s"
}
