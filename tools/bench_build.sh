#!/usr/bin/env bash
# Fresh-clone release build time of several commits, interleaved so that machine noise hits all
# alike: for each repetition, for each commit, a `git clone` of this repository at that commit
# into a new temporary folder and `cargo build --release --locked` there with an empty target
# folder (the crate registry's downloads in ~/.cargo are shared, as on a machine that has built
# Rust before; nothing else is). Prints each build's wall time, then per commit the median.
#
# Usage: tools/bench_build.sh [--reps 1] [--features "avx512"] COMMIT...
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
reps=1 features=""
commits=()
while [ $# -gt 0 ]; do
    case "$1" in
        --reps) reps="$2"; shift 2 ;;
        --features) features="$2"; shift 2 ;;
        -*) echo "bench_build: unknown option '$1' (see the comment atop $0)" >&2; exit 2 ;;
        *) commits+=("$(git -C "$repo" rev-parse --short "$1")"); shift ;;
    esac
done
[ ${#commits[@]} -gt 0 ] || { echo "bench_build: give at least one commit" >&2; exit 2; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
times="$work/times.tsv"
echo "uptime before: $(uptime)"
for rep in $(seq "$reps"); do
    for c in "${commits[@]}"; do
        clone="$work/clone-$c-$rep"
        git clone --quiet "$repo" "$clone"
        git -C "$clone" checkout --quiet "$c"
        start=$(date +%s.%N)
        (cd "$clone" && cargo build --release --locked ${features:+--features "$features"} > "$work/log-$c-$rep.txt" 2>&1) \
            || { tail -20 "$work/log-$c-$rep.txt" >&2; echo "bench_build: build of $c failed" >&2; exit 1; }
        end=$(date +%s.%N)
        crates=$(grep -c '^ *Compiling ' "$work/log-$c-$rep.txt" || true)
        wall=$(echo "$end - $start" | bc)
        printf '%s\t%s\t%s\t%s\n' "$rep" "$c" "$wall" "$crates" | tee -a "$times"
        rm -rf "$clone"
    done
done
python3 - "$times" <<'PY'
import statistics, sys
rows = [l.split("\t") for l in open(sys.argv[1]).read().split("\n") if l]
walls, crates = {}, {}
for rep, c, wall, n in rows:
    walls.setdefault(c, []).append(float(wall))
    crates[c] = n
print(f"{'commit':>9} {'crates':>6} {'median':>8}  runs (s)")
for c, ws in walls.items():
    m = statistics.median(ws)
    print(f"{c:>9} {crates[c]:>6} {int(m // 60)}m{m % 60:04.1f}s  " + "/".join(f"{w:.0f}" for w in ws))
PY
echo "uptime after: $(uptime)"
