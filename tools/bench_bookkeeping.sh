#!/usr/bin/env bash
# Measure the sweep's bookkeeping (claims, trial folders, leaderboard, configs.csv, best/, the
# report) per trial: run scripted sweeps (`--debug-scripted-runner --debug-step-ms 0`, whose
# trials do next to no work) of N trials and print wall time / N, as /usr/bin/time reports it.
# Issue 11 asks for <= 5 ms per trial at 10,000 trials.
#
# Usage: tools/bench_bookkeeping.sh [--gacha PATH] [--against PATH] [--trials "500 1000 10000"]
#            [--dir DIR]
#   --gacha    the gacha binary (default: target/release/gacha, built if missing)
#   --against  another gacha binary (e.g. main's) to run first on the same specs, in the same
#              folder; its line is printed too, and the files the two sweeps leave are compared:
#              leaderboard.csv without its timing columns (`_s`, `_at`), configs.csv and
#              report.html byte for byte, best/ file by file (JSON without `_secs`/`_at` fields,
#              metrics.jsonl without `ms`). Exit 1 if they differ.
#   --trials   sweep sizes; each is 100 seeds times N/100 learning rates (N a multiple of 100)
#   --dir      where the specs and results go (default: a new folder under /tmp, removed after;
#              /tmp is often a disk, where each trial's fsyncs dominate: pass /dev/shm/NAME to
#              measure the bookkeeping without them)
# Prints one line per run: binary, trials, wall s, ms per trial, user s, sys s, max RSS.
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
gacha="" against="" trials="500 1000 10000" dir=""
while [ $# -gt 0 ]; do
    [ $# -ge 2 ] || { echo "bench_bookkeeping: $1 needs a value" >&2; exit 2; }
    case "$1" in
        --gacha) gacha="$2" ;;
        --against) against="$2" ;;
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

# sweep BINARY N RESULTS: run the N-trial spec into $dir/RESULTS, print the timing line.
sweep() {
    local binary n=$2 results=$3
    binary=$(realpath "$1")
    rm -rf "${dir:?}/$results"
    (cd "$dir" && /usr/bin/time -f '%e %U %S %M' -o "time-$results.txt" \
        "$binary" sweep "s$n.toml" --results "$results" --debug-scripted-runner --debug-step-ms 0 -q \
        >"out-$results.txt" 2>"err-$results.txt") || {
        echo "bench_bookkeeping: $binary on $n trials failed; see $dir/err-$results.txt" >&2
        exit 1
    }
    read -r wall user sys rss <"$dir/time-$results.txt"
    awk -v b="$(basename "$(dirname "$(dirname "$(dirname "$binary")")")")" -v n="$n" -v w="$wall" \
        -v u="$user" -v s="$sys" -v m="$rss" \
        'BEGIN { printf "%-10s %8d %9.2f %9.2f %8.2f %8.2f %10d\n", b, n, w, 1000 * w / n, u, s, m }'
}

# same A B: the files two results folders hold agree, timings aside.
same() {
    python3 - "$1" "$2" <<'PY'
import csv, json, os, sys
a, b = sys.argv[1:]
def sans_times_csv(path):
    rows = list(csv.reader(open(path)))
    keep = [i for i, c in enumerate(rows[0]) if not (c.endswith("_s") or c.endswith("_at"))]
    return [[row[i] for i in keep] for row in rows]
def sans_times_json(x):
    if isinstance(x, dict):
        return {k: sans_times_json(v) for k, v in x.items() if not (k.endswith("_secs") or k.endswith("_at"))}
    return [sans_times_json(v) for v in x] if isinstance(x, list) else x
def content(path):
    if path.endswith(".json"):
        return sans_times_json(json.load(open(path)))
    if path.endswith(".jsonl"):
        return [{k: v for k, v in json.loads(l).items() if k != "ms"} for l in open(path)]
    return open(path, "rb").read()
def tree(root):
    return sorted(os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs)
bad = []
if sans_times_csv(f"{a}/leaderboard.csv") != sans_times_csv(f"{b}/leaderboard.csv"):
    bad.append("leaderboard.csv")
for name in ["configs.csv", "report.html"]:
    if open(f"{a}/{name}", "rb").read() != open(f"{b}/{name}", "rb").read():
        bad.append(name)
if tree(f"{a}/best") != tree(f"{b}/best"):
    bad.append("best/ (file list)")
else:
    bad += [f"best/{f}" for f in tree(f"{a}/best") if content(f"{a}/best/{f}") != content(f"{b}/best/{f}")]
print("  same files (timings aside)" if not bad else "  DIFFERENT: " + ", ".join(bad))
sys.exit(1 if bad else 0)
PY
}

printf '%-10s %8s %9s %9s %8s %8s %10s\n' binary trials wall_s ms/trial user_s sys_s max_rss_kb
status=0
for n in $trials; do
    if [ $((n % 100)) -ne 0 ]; then
        echo "bench_bookkeeping: $n is not a multiple of 100" >&2
        exit 2
    fi
    seeds=$(seq -s ', ' 1 100)
    rates=$(seq $((n / 100)) | awk '{printf "%s%.6f", (NR > 1 ? ", " : ""), $1 * 0.0004}')
    printf 'name = "bench"\n[model]\npath = "builtin:tiny"\n[data]\npath = "data.jsonl"\n[train]\nsteps = 12\nlog_every = 4\n[sweep]\nseeds = [%s]\nvalid = [10]\nlearning_rate = [%s]\n' \
        "$seeds" "$rates" >"$dir/s$n.toml"
    if [ -n "$against" ]; then
        sweep "$against" "$n" "base$n"
    fi
    sweep "$gacha" "$n" "res$n"
    if [ -n "$against" ]; then
        same "$dir/base$n" "$dir/res$n" || status=1
    fi
done
exit $status
