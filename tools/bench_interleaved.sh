#!/usr/bin/env bash
# gacha bench vs tools/bench_reference.py (transformers + PEFT) on one machine, interleaved so that
# machine noise hits both alike; prints per-configuration medians and the gacha/PyTorch time ratios.
#
#   tools/bench_interleaved.sh [ROUNDS=3] [CONFIG=small] [THREADS="1 2"] [STEPS=5]
#
# Needs target/release/gacha (cargo build --release) and a Python with tools/requirements.txt
# (PYTHON=/path/to/python to choose it). Raw JSON lines are kept in $OUT (default bench.jsonl).
set -euo pipefail
ROUNDS=${1:-3}
CONFIG=${2:-small}
THREADS=${3:-"1 2"}
STEPS=${4:-5}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
GACHA=${GACHA:-$ROOT/target/release/gacha}
PYTHON=${PYTHON:-python3}
OUT=${OUT:-bench.jsonl}
: > "$OUT"
for round in $(seq "$ROUNDS"); do
  for thr in $THREADS; do
    for trainable in lora attention; do
      echo "round $round: $thr thread(s), $trainable" >&2
      "$GACHA" bench --config "$CONFIG" --trainable "$trainable" --steps "$STEPS" --warmup 1 \
        --batch-size 4 --threads "$thr" --json >> "$OUT"
      "$PYTHON" "$ROOT/tools/bench_reference.py" --config "$CONFIG" --trainable "$trainable" \
        --steps "$STEPS" --warmup 1 --batch 4 --threads "$thr" --json 2>/dev/null >> "$OUT"
    done
  done
done
python3 - "$OUT" <<'PY'
import collections, json, statistics, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
groups = collections.defaultdict(list)
for r in rows:
    groups[(r["threads"], r["trainable"], r["tool"])].append(r)
med = lambda rs, k: statistics.median(r[k] for r in rs)
print(f"{'thr':>3} {'trainable':>9} {'tool':>18} {'n':>2} {'ms/step':>9} {'score ms':>9} {'peak MiB':>9}  ratio step / score")
for (thr, trainable, tool), rs in sorted(groups.items()):
    line = f"{thr:>3} {trainable:>9} {tool:>18} {len(rs):>2} {med(rs, 'ms_per_step'):>9.1f} {med(rs, 'score_ms_per_batch'):>9.1f} {med(rs, 'peak_mem_mib'):>9.0f}"
    ref = groups.get((thr, trainable, "bench_reference.py"))
    if tool == "gacha bench" and ref:
        line += f"  {med(rs, 'ms_per_step') / med(ref, 'ms_per_step'):.2f}x / {med(rs, 'score_ms_per_batch') / med(ref, 'score_ms_per_batch'):.2f}x"
    print(line)
PY
