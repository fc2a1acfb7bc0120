#!/usr/bin/env bash
# Paper 000, Figure 1 (d)-(f) at this machine's budget: AC vs STAC (λ = 500) on Reacher-v5,
# Hopper-v5 and Walker2d-v5, k = 80 critic steps, the paper's 64x64 tanh networks and its
# code's plain gradient steps (αθ = 0.1, αw = 0.01), 4000 steps per epoch, seeds 0-2,
# through `stackrl train`. Results: docs/stac.md ("Figure 1 on MuJoCo").
#
#   scripts/fig1_mujoco.sh                 # all 18 runs, 2 at a time, then the summary
#   STEPS=300000 SEEDS="0 1 2" JOBS=2 ROOT=runs/fig1_mujoco scripts/fig1_mujoco.sh
#   (also ENVS, ALGOS="ac stac", LAMBDA=500 (STAC's λ), THREADS, BIN=path/to/stackrl)
#   ENVS=Hopper-v5 ALGOS=stac LAMBDA=5000 ROOT=runs/fig1_mujoco_lambda5000 scripts/fig1_mujoco.sh
#
# Killed runs are resumed (exactly) and finished ones skipped when the script runs again.
set -euo pipefail
cd "$(dirname "$0")/.."

SEEDS=${SEEDS:-"0 1 2"}
ENVS=${ENVS:-"Reacher-v5 Hopper-v5 Walker2d-v5"}
STEPS=${STEPS:-300000}
ALGOS=${ALGOS:-"ac stac"}
LAMBDA=${LAMBDA:-500}
JOBS=${JOBS:-2}
ROOT=${ROOT:-runs/fig1_mujoco}
THREADS=${THREADS:-1}
BIN=${BIN:-target/release/stackrl}

if [ "$BIN" = target/release/stackrl ]; then cargo build --release --bin stackrl; fi

# One line per run: DIR ARGS...
commands() {
  for seed in $SEEDS; do
    for env in $ENVS; do
      for algo in $ALGOS; do
        line="$ROOT/$env/$algo/$seed --env $env --algo $algo --seed $seed --steps $STEPS"
        line="$line --critic-steps 80 --eval-every 20000 --eval-episodes 10"
        # (no trailing blank: xargs -L would join the next line)
        # The paper's step: the implicit term unbounded (the trainer's default bounds it).
        if [ "$algo" = stac ]; then line="$line --lambda $LAMBDA --implicit-max-ratio off"; fi
        echo "$line"
      done
    done
  done
}

run_one() { # DIR ARGS...: resumes killed runs, skips finished ones
  local dir=$1; shift
  if [ -f "$dir/config.json" ]; then
    nice -n 10 "$BIN" train --resume "$dir" --progress none --threads "$THREADS"
  else
    nice -n 10 "$BIN" train --run-dir "$dir" --progress none --threads "$THREADS" "$@"
  fi
}
export -f run_one
export BIN THREADS

commands | xargs -P "$JOBS" -L 1 bash -c 'run_one "$@"' _

cargo run --release --example stac_fig1_mujoco -- "$ROOT" docs
