#!/usr/bin/env bash
# Compare `gacha bench` with the PyTorch reference (tools/bench_reference.py: transformers + PEFT)
# on the same config, batch, dtype and trainable set, in ONE run, interleaved so that machine noise
# hits both alike: for each repetition, for each thread count, for lora then attention: gacha, then
# PyTorch (g p g p …). Prints the median over repetitions of each side's median ms, and the ratio
# gacha / PyTorch per row (< 1 means gacha is faster).
#
# Usage: tools/bench_compare.sh [--config small] [--reps 5] [--threads "1 2"] [--steps 10]
#            [--warmup 2] [--batch 4] [--dtype f32] [--device cpu] [--gacha PATH] [--python PATH]
#            [--out DIR]
#   --gacha   the gacha binary (default: target/release/gacha, built if missing)
#   --python  a Python with tools/requirements.txt installed (default: $GACHA_REF_PYTHON, else
#             /work/venv-ref/bin/python, else python3). To make one:
#               python3 -m venv .venv-ref && .venv-ref/bin/pip install -r tools/requirements.txt
#   --out     folder for runs.jsonl (every run's JSON object) and summary.txt
#             (default: bench-compare-out)
# Threads: gacha gets RAYON_NUM_THREADS=T, PyTorch torch.set_num_threads(T); both also get
# OMP_NUM_THREADS=T and MKL_NUM_THREADS=T. PyTorch's OpenMP threads spin while they wait, which on
# cores shared with other work made its 2-thread steps several times slower: OMP_WAIT_POLICY is
# PASSIVE unless already set (the summary says which was used). candle's element-wise ops run on
# its own pool of CANDLE_NUM_THREADS (default: RAYON_NUM_THREADS) threads whose waits spin: set
# CANDLE_NUM_THREADS=1 in the environment to keep them on one thread (the summary says).
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
config=small reps=5 threads="1 2" steps=10 warmup=2 batch=4 dtype=f32 device=cpu
gacha="" out="bench-compare-out"
python="${GACHA_REF_PYTHON:-}"
while [ $# -gt 0 ]; do
    [ $# -ge 2 ] || { echo "bench_compare: $1 needs a value" >&2; exit 2; }
    case "$1" in
        --config) config="$2" ;;
        --reps) reps="$2" ;;
        --threads) threads="$2" ;;
        --steps) steps="$2" ;;
        --warmup) warmup="$2" ;;
        --batch) batch="$2" ;;
        --dtype) dtype="$2" ;;
        --device) device="$2" ;;
        --gacha) gacha="$2" ;;
        --python) python="$2" ;;
        --out) out="$2" ;;
        *) echo "bench_compare: unknown option '$1' (see the comment atop $0)" >&2; exit 2 ;;
    esac
    shift 2
done
if [ -z "$python" ]; then
    if [ -x /work/venv-ref/bin/python ]; then python=/work/venv-ref/bin/python; else python=python3; fi
fi
if [ -z "$gacha" ]; then
    gacha="${CARGO_TARGET_DIR:-$repo/target}/release/gacha"
    [ -x "$gacha" ] || (cd "$repo" && cargo build --release)
fi
[ -x "$gacha" ] || { echo "bench_compare: gacha binary '$gacha' not found" >&2; exit 2; }
"$python" -c 'import torch, transformers, peft' 2>/dev/null \
    || { echo "bench_compare: '$python' lacks torch/transformers/peft: pip install -r tools/requirements.txt" >&2; exit 2; }

export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
mkdir -p "$out"
runs="$out/runs.jsonl"
: > "$runs"
log="$out/log.txt"
: > "$log"
echo "bench_compare: $config, batch $batch, $dtype on $device, threads [$threads], $reps reps of $steps steps (+$warmup warm-up), OMP_WAIT_POLICY=$OMP_WAIT_POLICY" >&2
echo "bench_compare: gacha $gacha; python $python; raw runs in $runs" >&2

# One run: tool, threads, trainable, rep; appends {"rep":…, "run": <the tool's JSON>} to runs.jsonl.
run_one() {
    local tool="$1" t="$2" trainable="$3" rep="$4" json
    export RAYON_NUM_THREADS="$t" OMP_NUM_THREADS="$t" MKL_NUM_THREADS="$t"
    if [ "$tool" = gacha ]; then
        json="$("$gacha" -q bench --config "$config" --trainable "$trainable" --steps "$steps" \
            --warmup "$warmup" --batch-size "$batch" --dtype "$dtype" --device "$device" --json 2>>"$log")"
    else
        json="$("$python" "$repo/tools/bench_reference.py" --config "$config" --trainable "$trainable" \
            --steps "$steps" --warmup "$warmup" --batch "$batch" --dtype "$dtype" --device "$device" \
            --threads "$t" --json 2>>"$log")"
    fi
    printf '{"tool": "%s", "threads": %s, "trainable": "%s", "rep": %s, "run": %s}\n' \
        "$tool" "$t" "$trainable" "$rep" "$json" >> "$runs"
    echo "  rep $rep, $t thread(s), $trainable: $tool done" >&2
}

for rep in $(seq 1 "$reps"); do
    for t in $threads; do
        for trainable in lora attention; do
            run_one gacha "$t" "$trainable" "$rep"
            run_one pytorch "$t" "$trainable" "$rep"
        done
    done
done

"$python" - "$runs" "$config" "$batch" "$dtype" "$device" <<'EOF' | tee "$out/summary.txt"
import json, os, statistics, sys

runs_path, config, batch, dtype, device = sys.argv[1:]
runs = [json.loads(line) for line in open(runs_path)]

def ms(r, what):
    """Train ms per step or score ms per batch of one run (both tools print the same keys)."""
    return r["run"]["ms_per_step" if what == "train" else "score_ms_per_batch"]

rows = [("LoRA train step", "lora", "train"), ("attention train step", "attention", "train"),
        ("scoring (LoRA attached)", "lora", "score"), ("scoring (attention as trainable)", "attention", "score")]
threads = sorted({r["threads"] for r in runs})
reps = len({r["rep"] for r in runs})
print(f"config {config}, batch {batch}, {dtype} on {device}; median over {reps} interleaved repetitions "
      f"of each run's median ms (train: per step; scoring: per batch of {batch})")
head = f"{'row':34} {'threads':>7} {'gacha ms':>10} {'PyTorch ms':>11} {'gacha/PyTorch':>14}  gacha runs | PyTorch runs"
print(head)
print("-" * len(head))
for label, trainable, what in rows:
    for t in threads:
        side = {tool: [ms(r, what) for r in runs
                       if r["tool"] == tool and r["threads"] == t and r["trainable"] == trainable]
                for tool in ("gacha", "pytorch")}
        g, p = statistics.median(side["gacha"]), statistics.median(side["pytorch"])
        spread = lambda xs: "/".join(f"{x:.0f}" for x in xs)
        print(f"{label:34} {t:>7} {g:>10.1f} {p:>11.1f} {g / p:>13.2f}x  {spread(side['gacha'])} | {spread(side['pytorch'])}")
versions = next((r["run"].get("versions") for r in runs if r["tool"] == "pytorch"), {})
print(f"PyTorch side: {', '.join(f'{k} {v}' for k, v in versions.items() if k in ('torch', 'transformers', 'peft'))}; "
      f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}; gacha side: CANDLE_NUM_THREADS="
      f"{os.environ.get('CANDLE_NUM_THREADS', 'unset')}")
EOF
