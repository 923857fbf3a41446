#!/usr/bin/env bash
# Score every kept pull of a sweep (and its best/) on images no part of the sweep saw, to see
# how the sweep's choice compares with the field:
#
#   tools/score_pulls.sh RESULTS_DIR DATA.jsonl [MODEL]
#
# Prints one line per trial with weights (id, learning rate, prompt, precision, tp/fp), the field's mean
# single-pull precision, and best/'s precision. MODEL defaults to builtin:tiny; the prompt is
# each trial's own (its config.toml). Needs a built gacha (target/release/gacha or $GACHA).
set -euo pipefail
results=${1:?usage: tools/score_pulls.sh RESULTS_DIR DATA.jsonl [MODEL]}
data=${2:?usage: tools/score_pulls.sh RESULTS_DIR DATA.jsonl [MODEL]}
model=${3:-builtin:tiny}
gacha=${GACHA:-$(dirname "$0")/../target/release/gacha}

# Prints "tp fp precision" for the weights in $1 with the prompt of the config.toml in $2.
score() {
  local prompt
  prompt=$(sed -n 's/^prompt = "\(.*\)"$/\1/p' "$2" | head -1)
  "$gacha" eval -q --model "$model" --adapter "$1" --prompt "$prompt" "$data" |
    awk '/^tp=/ { split($1, a, "="); split($3, b, "="); tp = a[2]; fp = b[2] }
         END { printf "%d %d %s\n", tp, fp, (tp + fp) ? sprintf("%.4f", tp / (tp + fp)) : "-" }'
}

sum=0 n=0
for trial in "$results"/trials/*/; do
  [ -d "$trial/weights" ] || continue
  read -r tp fp precision < <(score "$trial/weights" "$trial/config.toml")
  rate=$(sed -n 's/^learning_rate = //p' "$trial/config.toml" | head -1)
  prompt=$(sed -n 's/^prompt = "\([^"]\{0,24\}\).*$/\1/p' "$trial/config.toml" | head -1)
  echo "$(basename "$trial") lr $rate \"$prompt…\" precision $precision (tp $tp, fp $fp)"
  if [ "$precision" != "-" ]; then sum=$(awk -v s="$sum" -v p="$precision" 'BEGIN { print s + p }'); n=$((n + 1)); fi
done
[ "$n" -gt 0 ] && echo "field: mean single-pull precision $(awk -v s="$sum" -v n="$n" 'BEGIN { printf "%.4f", s / n }') over $n pulls"
read -r tp fp precision < <(score "$results/best/weights" "$results/best/config.toml")
echo "best/: precision $precision (tp $tp, fp $fp)"
