#!/usr/bin/env bash
# Trials per hour of a sweep at several pack sizes, thread counts and numbers of CPU workers,
# interleaved so that machine noise hits all alike: for each repetition, for each thread count,
# for each worker count, for each pack size, one fresh run of the whole sweep
# (`RAYON_NUM_THREADS=T gacha sweep SPEC --workers W`, with `pack = K` written into a copy of the
# spec's [sweep] table in place of its own `pack` line; each of the W workers runs T threads).
# Prints each run's wall time, then per (threads, workers, pack) the median wall time, trials per
# hour, the ratio to pack 1 with one worker at the same thread count, and the ratio to the first
# combination; checks that every run's leaderboard equals the first run's once the timing columns
# are dropped.
#
# Usage: tools/bench_pack.sh [--spec sweeps/demo.toml] [--packs "1 4 8"] [--threads "1 2"]
#            [--workers "1"] [--reps 3] [--gacha target/release/gacha] [--out bench-pack-out]
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
spec="$repo/sweeps/demo.toml" packs="1 4 8" threads="1 2" workers="1" reps=3
gacha="$repo/target/release/gacha" out="bench-pack-out"
while [ $# -gt 0 ]; do
    [ $# -ge 2 ] || { echo "bench_pack: $1 needs a value" >&2; exit 2; }
    case "$1" in
        --spec) spec="$2" ;;
        --packs) packs="$2" ;;
        --threads) threads="$2" ;;
        --workers) workers="$2" ;;
        --reps) reps="$2" ;;
        --gacha) gacha="$2" ;;
        --out) out="$2" ;;
        *) echo "bench_pack: unknown option '$1' (see the comment atop $0)" >&2; exit 2 ;;
    esac
    shift 2
done
[ -x "$gacha" ] || { echo "bench_pack: gacha binary '$gacha' not found (cargo build --release)" >&2; exit 2; }
grep -q '^\[sweep\]' "$spec" || { echo "bench_pack: $spec has no [sweep] table" >&2; exit 2; }
mkdir -p "$out"
out="$(cd "$out" && pwd)"
dir="$(dirname "$spec")"
times="$out/times.tsv"
: > "$times"
echo "uptime before: $(uptime)" | tee "$out/summary.txt"
for rep in $(seq "$reps"); do
    for t in $threads; do
      for w in $workers; do
        for k in $packs; do
            copy="$dir/.bench-pack-$$-$k.toml"
            sed -e '/^pack *=/d' -e "s/^\[sweep\]/[sweep]\npack = $k/" "$spec" > "$copy"
            results="$out/results-$t-$w-$k"
            rm -rf "$results"
            start=$(date +%s.%N)
            RAYON_NUM_THREADS=$t "$gacha" sweep "$copy" --results "$results" --workers "$w" > /dev/null \
                2> "$out/stderr-$t-$w-$k.txt" \
                || { rm -f "$copy"; echo "bench_pack: run failed, see $out/stderr-$t-$w-$k.txt" >&2; exit 1; }
            end=$(date +%s.%N)
            rm -f "$copy"
            trials=$(($(wc -l < "$results/leaderboard.csv") - 1))
            wall=$(echo "$end - $start" | bc)
            printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$rep" "$t" "$w" "$k" "$wall" "$trials" | tee -a "$times"
            python3 - "$out/results-1st.csv" "$results/leaderboard.csv" <<'PY'
import csv, os, shutil, sys
first, this = sys.argv[1], sys.argv[2]
strip = lambda p: [{k: v for k, v in r.items() if not (k.endswith("_s") or k.endswith("_at"))} for r in csv.DictReader(open(p))]
if not os.path.exists(first):
    shutil.copy(this, first)
elif strip(first) != strip(this):
    sys.exit(f"bench_pack: {this} differs from the first run's leaderboard")
PY
        done
      done
    done
done
python3 - "$times" <<'PY' | tee -a "$out/summary.txt"
import statistics, sys
rows = [l.split("\t") for l in open(sys.argv[1]).read().split("\n") if l]
walls = {}
for rep, t, w, k, wall, trials in rows:
    walls.setdefault((int(t), int(w), int(k)), []).append(float(wall))
    n = int(trials)
first = statistics.median(walls[next(iter(walls))])
print(f"{n} trials per run; median wall over {len(rows) // len(walls)} interleaved runs")
print(f"{'threads':>7} {'workers':>7} {'pack':>4} {'wall s':>7} {'trials/h':>9} {'vs 1 worker pack 1':>18} {'vs first':>8}  runs")
for (t, w, k), ws in sorted(walls.items()):
    m = statistics.median(ws)
    base = statistics.median(walls.get((t, 1, 1), ws))
    runs = "/".join(f"{x:.1f}" for x in ws)
    print(f"{t:>7} {w:>7} {k:>4} {m:>7.1f} {3600 * n / m:>9.0f} {base / m:>17.2f}x {first / m:>7.2f}x  {runs}")
PY
echo "uptime after: $(uptime)" | tee -a "$out/summary.txt"
echo "every run's leaderboard equals the first's (timing columns aside)" | tee -a "$out/summary.txt"
