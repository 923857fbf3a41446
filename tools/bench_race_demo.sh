#!/usr/bin/env bash
# The demo race against its full grid (issue 28), on one machine, one after the other:
# `gacha sweep` of sweeps/demo-race.toml as a race and as a grid (the same spec with
# strategy = "grid"), the pulls and wall time of each, then both final models scored on fresh
# demo images that no part of either sweep saw (`gacha demo-data --seed S` for each S in SEEDS).
# Usage: tools/bench_race_demo.sh [OUT]   (GACHA=path/to/gacha, SEEDS="11 12" to change)
set -euo pipefail
cd "$(dirname "$0")/.."
gacha=${GACHA:-target/release/gacha}
out=${1:-/tmp/gacha-race-demo}
seeds=${SEEDS:-11 12}
mkdir -p "$out"
data="$PWD/sweeps/demo/data.jsonl"
for strategy in race grid; do
    sed -e "s|^strategy = \"race\"|strategy = \"$strategy\"|" -e "s|^path = \"demo/data.jsonl\"|path = \"$data\"|" \
        sweeps/demo-race.toml >"$out/$strategy.toml"
done
for seed in $seeds; do
    [ -f "$out/fresh-$seed/data.jsonl" ] || "$gacha" demo-data --seed "$seed" --out "$out/fresh-$seed" -q
done
for strategy in race grid; do
    start=$(date +%s.%N)
    "$gacha" sweep "$out/$strategy.toml" --results "$out/$strategy" -q >"$out/$strategy.stdout"
    end=$(date +%s.%N)
    pulls=$(($(wc -l <"$out/$strategy/leaderboard.csv") - 1))
    echo "$strategy: $pulls pulls, $(echo "$end - $start" | bc) s"
    grep -E '^(race|final model|expected)' "$out/$strategy.stdout" || true
done
for strategy in race grid; do
    prompt=$(sed -n 's/^prompt = "\(.*\)"$/\1/p' "$out/$strategy/best/config.toml")
    for seed in $seeds; do
        echo "$strategy final model on fresh-$seed:"
        "$gacha" eval --model builtin:tiny --adapter "$out/$strategy/best/weights" --prompt "$prompt" \
            "$out/fresh-$seed/data.jsonl" -q
    done
done
