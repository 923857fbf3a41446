#!/usr/bin/env bash
# Measure the sweep's bookkeeping (claims, trial folders, leaderboard, configs.csv, best/, the
# report) per trial: run scripted sweeps (`--debug-scripted-runner --debug-step-ms 0`, whose
# trials do next to no work) of N trials and print wall time / N, as /usr/bin/time reports it.
# Issue 11 asks for <= 5 ms per trial at 10,000 trials.
#
# Usage: tools/bench_bookkeeping.sh [--gacha PATH] [--trials "500 1000 10000"] [--dir DIR]
#   --gacha   the gacha binary (default: target/release/gacha, built if missing)
#   --trials  sweep sizes; each is 100 seeds times N/100 learning rates (N a multiple of 100)
#   --dir     where the specs and results go (default: a new folder under /tmp, removed after;
#             pass a folder on the disk the sweeps will run on, e.g. /dev/shm to leave fsyncs out)
# Prints one line per size: trials, wall s, ms per trial, user s, sys s, max RSS.
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
gacha="" trials="500 1000 10000" dir=""
while [ $# -gt 0 ]; do
    [ $# -ge 2 ] || { echo "bench_bookkeeping: $1 needs a value" >&2; exit 2; }
    case "$1" in
        --gacha) gacha="$2" ;;
        --trials) trials="$2" ;;
        --dir) dir="$2" ;;
        *) echo "bench_bookkeeping: unknown option $1" >&2; exit 2 ;;
    esac
    shift 2
done
if [ -z "$gacha" ]; then
    gacha="$repo/target/release/gacha"
    [ -x "$gacha" ] || (cd "$repo" && cargo build --release)
fi
if [ -z "$dir" ]; then
    dir="$(mktemp -d /tmp/bench-bookkeeping.XXXXXX)"
    trap 'rm -rf "$dir"' EXIT
fi
mkdir -p "$dir"

# 40 images alternating yes/no (the scripted runner never opens them).
for i in $(seq 0 39); do
    label=$([ $((i % 2)) -eq 0 ] && echo yes || echo no)
    echo "{\"prefix\": \"\", \"suffix\": \"$label\", \"image\": \"img/$i.png\"}"
done >"$dir/data.jsonl"

printf '%8s %9s %9s %8s %8s %10s\n' trials wall_s ms/trial user_s sys_s max_rss_kb
for n in $trials; do
    if [ $((n % 100)) -ne 0 ]; then
        echo "bench_bookkeeping: $n is not a multiple of 100" >&2
        exit 2
    fi
    seeds=$(seq -s ', ' 1 100)
    rates=$(seq $((n / 100)) | awk '{printf "%s%.6f", (NR > 1 ? ", " : ""), $1 * 0.0004}')
    spec="$dir/s$n.toml"
    printf 'name = "bench"\n[model]\npath = "builtin:tiny"\n[data]\npath = "data.jsonl"\n[train]\nsteps = 12\nlog_every = 4\n[sweep]\nseeds = [%s]\nvalid = [10]\nlearning_rate = [%s]\n' \
        "$seeds" "$rates" >"$spec"
    rm -rf "$dir/res$n"
    (cd "$dir" && /usr/bin/time -f '%e %U %S %M' -o "time$n.txt" \
        "$gacha" sweep "s$n.toml" --results "res$n" --debug-scripted-runner --debug-step-ms 0 -q \
        >"out$n.txt" 2>"err$n.txt") || {
        echo "bench_bookkeeping: the $n-trial sweep failed; see $dir/err$n.txt" >&2
        exit 1
    }
    read -r wall user sys rss <"$dir/time$n.txt"
    awk -v n="$n" -v w="$wall" -v u="$user" -v s="$sys" -v m="$rss" \
        'BEGIN { printf "%8d %9.2f %9.2f %8.2f %8.2f %10d\n", n, w, 1000 * w / n, u, s, m }'
done
