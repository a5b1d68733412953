#!/usr/bin/env bash
# Runs on the GPU machine, over what scripts/gpu-carry.sh put in carry/, and writes every result
# under $OUT (default ./gpu-out). Device time is scarce, so the work comes in stages that fit one
# call each, every step under its own time limit so that one slow step cannot eat the rest:
#
#   scripts/gpu-check.sh checks     # doctor, CUDA graph and CUDA parity tests, agent benchmark (~3 min)
#   scripts/gpu-check.sh train      # collect, then QAM and BC offline -> online, and the plot (~8 min)
#
# Sizes of the train stage: QAM_OFFLINE, QAM_ONLINE, EPISODES, ENVS (environment variables); DEVICE=cpu
# tries the script out on a machine without a GPU.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
stage="${1:-checks}"
out="${OUT:-$root/gpu-out}"
mkdir -p "$out"
torch_lib="${QAMLAB_TORCH_LIB:-/opt/torch/.venv/lib/python3.12/site-packages/torch/lib}"
export LD_LIBRARY_PATH="$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
[ -f carry/qamlab.gz ] || { echo "gpu-check: carry/qamlab.gz is missing: run scripts/gpu-carry.sh on the dev machine and carry carry/" >&2; exit 2; }
bin="${TMPDIR:-/tmp}/qamlab-carry/qamlab"
mkdir -p "$(dirname "$bin")"
gunzip -c carry/qamlab.gz >"$bin.tmp" && chmod +x "$bin.tmp" && mv "$bin.tmp" "$bin"

# step NAME LIMIT_S COMMAND...: runs COMMAND with its output in $out/NAME.txt and its exit status
# and wall time appended to $out/steps.txt.
step() {
    local name="$1" limit="$2"
    shift 2
    local t0=$SECONDS
    timeout --signal=INT --kill-after=10 "$limit" "$@" >"$out/$name.txt" 2>&1
    local rc=$?
    echo "$name rc=$rc wall=$((SECONDS - t0))s" | tee -a "$out/steps.txt"
    tail -n 40 "$out/$name.txt"
}

case "$stage" in
checks)
    nvidia-smi >"$out/nvidia-smi.txt" 2>&1
    step doctor 60 "$bin" doctor
    step cuda-graphs-test 120 carry/cuda_graphs --nocapture --test-threads 1
    if [ -d carry/fixtures ]; then
        step cuda-parity-test 120 env QAMLAB_FIXTURES=carry/fixtures carry/fixture_parity --nocapture --test-threads 1
    fi
    step bench-agent 300 "$bin" bench agent --device cuda --size paper --updates 200
    ;;
train)
    offline="${QAM_OFFLINE:-20000}"
    online="${QAM_ONLINE:-20000}"
    episodes="${EPISODES:-1000}"
    envs="${ENVS:-16}"
    device="${DEVICE:-cuda}"
    # Datasets and checkpoints stay on the machine (they are large); their runs' small files come back.
    work="${TMPDIR:-/tmp}/qamlab-gpu-runs"
    rm -rf "$work" && mkdir -p "$work"
    data="$work/cube-single-play.npz"
    step collect 120 "$bin" collect --task cube-single --episodes "$episodes" --envs 16 --seed 0 --out "$data"
    # The demo's GPU agent (paper-size networks, cube-double's inv_temp) at this stage's sizes.
    cat >"$work/run.toml" <<TOML
task = "cube-single"
dataset = "$data"
offline_steps = $offline
online_steps = $online
envs = $envs
eval_interval = $(((offline + online) / 8))
eval_episodes = 50
checkpoint_interval = $(((offline + online) / 4))
device = "$device"
seed = 0

[agent]
inv_temp = 1.0
TOML
    common=(--config "$work/run.toml" --quiet)
    step train-bc 120 "$bin" train "${common[@]}" --agent bc --out "$work/bc"
    step train-qam 420 "$bin" train "${common[@]}" --agent qam --out "$work/qam"
    step plot 30 "$bin" plot "$work/qam" "$work/bc" --out "$out/qam-vs-bc.png"
    for run in qam bc; do
        mkdir -p "$out/$run"
        for f in config.toml summary.json eval.csv metrics.jsonl learning_curve.png; do
            [ -f "$work/$run/$f" ] && cp "$work/$run/$f" "$out/$run/"
        done
    done
    ;;
*)
    echo "gpu-check: unknown stage '$stage' (checks or train)" >&2
    exit 2
    ;;
esac
