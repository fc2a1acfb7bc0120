#!/usr/bin/env bash
# End-to-end SAC training throughput: `stackrl train` against Stable-Baselines3's SAC with the
# same network sizes (256x256 ReLU, batch 256, one update per environment step, 100 warm-up
# steps), measured alternately in the same run, REPEATS times each; prints per-run figures
# and the medians side by side.
#
#   PY=/tmp/torchbench/bin/python BIN=target/release/stackrl scripts/bench_e2e.sh [ENV] [STEPS] [REPEATS] [THREADS]
#
# Steps/s count the steps after the first 500 (warm-up and start-up excluded on both sides):
# SB3 is timed by a callback (scripts/bench_e2e_sb3.py); stackrl by the `time_s` column of its
# train rows. See scripts/bench_e2e_sb3.py for the venv set-up.
set -euo pipefail
ENV_ID=${1:-Pendulum-v1}
STEPS=${2:-3000}
REPEATS=${3:-3}
THREADS=${4:-1}
PY=${PY:-/tmp/torchbench/bin/python}
BIN=${BIN:-target/release/stackrl}
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

ours=()
sb3=()
for r in $(seq 1 "$REPEATS"); do
  dir="$WORK/run$r"
  "$BIN" train --env "$ENV_ID" --seed "$r" --steps $((STEPS + 500)) --learning-starts 100 \
    --hidden 256,256 --batch-size 256 --eval-every 0 --checkpoint-every 0 --log-every 500 \
    --threads "$THREADS" --run-dir "$dir" > /dev/null
  s=$("$PY" - "$dir/metrics.jsonl" <<'PYEOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
train = [r for r in rows if r.get("event") == "train"]
a, b = train[0], train[-1]
print((b["step"] - a["step"]) / (b["time_s"] - a["time_s"]))
PYEOF
)
  ours+=("$s")
  j=$(cd "$WORK" && OMP_NUM_THREADS="$THREADS" "$PY" "$HERE/bench_e2e_sb3.py" --env "$ENV_ID" \
      --steps "$STEPS" --learning-starts 500 --threads "$THREADS" --seed "$r")
  t=$(echo "$j" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["sps_wall"])')
  sb3+=("$t")
  printf 'repeat %d: stackrl %.1f steps/s, SB3 %.1f steps/s\n' "$r" "$s" "$t"
done
"$PY" - "${ours[*]}" "${sb3[*]}" "$ENV_ID" "$THREADS" <<'PYEOF'
import statistics, sys
o = [float(x) for x in sys.argv[1].split()]
s = [float(x) for x in sys.argv[2].split()]
mo, ms = statistics.median(o), statistics.median(s)
print(f"{sys.argv[3]}, {sys.argv[4]} thread(s), 256x256 batch 256: stackrl {mo:.1f} steps/s, "
      f"SB3 {ms:.1f} steps/s (medians of {len(o)}): ratio {mo / ms:.2f}x")
PYEOF
