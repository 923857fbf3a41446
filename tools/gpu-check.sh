#!/usr/bin/env bash
# One call on a GPU machine (issue 6): parity of the committed tiny fixture on CUDA in f32, a bf16
# scoring run, the PaliGemma-3B benchmark of gacha and of PyTorch, and whether 3B LoRA training at
# batch 2 fits a 12 GB card. Writes results.md (the table) and the logs to $OUT, else
# ./gpu-check-out; at most 8 files. Under 8 minutes: every step has its own time limit.
#
# Usage: tools/gpu-check.sh [GACHA_BINARY] [--cpu] [--dry-run]
#   GACHA_BINARY  a `--features cuda` build (default: the first of target/cuda-sm80/release/gacha,
#                 /work/target-cuda/release/gacha that exists; with --cpu target/release/gacha).
#                 A stripped copy (`strip`) is about 58 MB, the unstripped one 143 MB.
#   --cpu         the same steps on the CPU with the `small` config instead of the 3B one, to test
#                 this script on a machine without a GPU (numbers meaningless)
#   --dry-run     print the steps' commands, run nothing
# Environment: OUT (result folder), PYTHON (default python3: torch, transformers and peft for the
# PyTorch side; no pypng needed), GACHA_CUDA_LIBS (extra folders for LD_LIBRARY_PATH).
#
# The CUDA binary needs libcublas.so.13, libcublasLt.so.13, libnvrtc.so.13, libcurand.so.10 and
# libcudart.so.13 (tools/build-cuda.sh prints the list): taken from the nvidia-* wheels of $PYTHON
# (PyTorch cu13 brings them) and GACHA_CUDA_LIBS.
#
# Steps and what they compare:
#   parity  `gacha score --device cuda --dtype f32` on tests/fixtures/tiny-paligemma/data.jsonl
#           against reference.json (transformers, CPU, f32): p_yes within 1e-4, loss within 1e-4
#           relative (the CPU parity tolerances of issue 3);
#   bf16    the same with `--dtype bf16` (frozen weights in bf16): the largest differences, for
#           information;
#   bench   `gacha bench --config paligemma-3b-224 --trainable lora,attention --batch-size 2` (bf16
#           frozen weights), with nvidia-smi sampling the device memory every 200 ms;
#   torch   tools/bench_reference.py on the same config, batch, dtype, for lora and attention;
#   pack    `gacha bench --pack 1,4,8` on the same config, batch and dtype (LoRA): ms per step of
#           K trials trained together and trials per hour against K = 1, in gacha-pack.jsonl;
#   guard   `gacha check --device` on a one-trial LoRA spec of the same model and batch: the memory
#           guard's estimate and the GPU's free memory as it reads it (nvidia-smi), beside the
#           bench's LoRA peak and what the process held beyond the pool (against its 1 GiB allowance);
#   12 GB   the LoRA row's peak (memory-pool high-water) plus what the process held beyond the
#           pool (nvidia-smi's peak − the largest pool peak: CUDA context, cuBLAS workspace, pool
#           slack) against 12282 MiB (an RTX 4070) less 512 MiB for the display and driver.
set -uo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
bin="" mode=cuda dry=0
for arg in "$@"; do
    case "$arg" in
        --cpu) mode=cpu ;;
        --dry-run) dry=1 ;;
        -*) echo "gpu-check: unknown option '$arg' (see the comment atop $0)" >&2; exit 2 ;;
        *) bin="$arg" ;;
    esac
done
if [ -z "$bin" ]; then
    candidates=("$repo/target/cuda-sm80/release/gacha" /work/target-cuda/release/gacha)
    [ "$mode" = cpu ] && candidates=("$repo/target/release/gacha")
    for candidate in "${candidates[@]}"; do
        if [ -x "$candidate" ]; then bin="$candidate"; break; fi
    done
fi
[ -n "$bin" ] && [ -x "$bin" ] || { echo "gpu-check: no gacha binary (pass its path)" >&2; exit 2; }
bin="$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")"
out="${OUT:-$PWD/gpu-check-out}"
[ "$dry" = 1 ] && out="$(mktemp -d)"  # a dry run writes nothing where results go
mkdir -p "$out"
out="$(cd "$out" && pwd)"
python="${PYTHON:-python3}"
fixture="$repo/tests/fixtures/tiny-paligemma"
log="$out/log.txt"
results="$out/results.md"
if [ "$mode" = cuda ]; then
    device=cuda config=paligemma-3b-224
else
    device=cpu config=small
fi
batch=2 steps=5 warmup=2
start_s=$SECONDS

# Shared libraries of the CUDA build, from the Python's nvidia-* wheels and GACHA_CUDA_LIBS.
site="$("$python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])' 2>/dev/null || true)"
libs="${GACHA_CUDA_LIBS:-}"
for dir in "$site"/nvidia/cu13/lib "$site"/nvidia/*/lib; do
    [ -d "$dir" ] && libs="${libs:+$libs:}$dir"
done
export LD_LIBRARY_PATH="${libs}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

# run NAME LIMIT_S CMD…: log the command and its output under a header; returns its exit status.
run() {
    local name="$1" limit="$2"
    shift 2
    if [ "$dry" = 1 ]; then
        echo "[$name, ≤${limit}s] $*" >&2
        return 0
    fi
    echo "=== $name ($(date -u +%H:%M:%S), limit ${limit}s): $*" >>"$log"
    local t0=$SECONDS status
    timeout --kill-after=5 "$limit" "$@" 2>>"$log"
    status=$?
    echo "=== $name: exit $status after $((SECONDS - t0)) s" >>"$log"
    [ "$status" = 124 ] && echo "gpu-check: $name ran past ${limit}s and was stopped" >&2
    return "$status"
}

if [ "$dry" = 0 ]; then
    : >"$log"
    {
        echo "binary: $bin ($(du -h "$bin" | cut -f1)), mode $mode"
        nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 || true
        echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
        ldd "$bin" 2>&1 | grep -E 'cuda|cublas|nvrtc|curand|not found' || true
        "$python" -c 'import torch, transformers, peft; print("torch", torch.__version__, "transformers", transformers.__version__, "peft", peft.__version__)' 2>&1
    } >>"$log"
    if ldd "$bin" | grep -q 'not found'; then
        echo "gpu-check: $bin misses shared libraries (see $log); set GACHA_CUDA_LIBS" >&2
    fi
fi

# --- parity and bf16 scoring of the fixture (each line's "prefix" is its prompt) ------------------
score_dtype_supported=1
if [ "$dry" = 0 ] && ! "$bin" score --help 2>/dev/null | grep -q -- '--dtype'; then
    score_dtype_supported=0
    echo "gacha score with --dtype is not in this binary: parity and bf16 steps skipped" | tee -a "$log" >&2
fi
for dtype in f32 bf16; do
    rm -f "$out/score-$dtype.csv"
    [ "$score_dtype_supported" = 1 ] || continue
    run "score $dtype" 60 "$bin" -q score --model "$fixture" --data "$fixture/data.jsonl" \
        --device "$device" --dtype "$dtype" --out "$out/score-$dtype.csv" >>"$log"
done

# --- the 3B benchmark: gacha, with device memory sampled; then PyTorch ---------------------------
smi_csv="$out/nvidia-smi.csv"
sampler=""
if [ "$dry" = 0 ] && [ "$mode" = cuda ] && command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=timestamp,memory.used --format=csv,noheader,nounits -lms 200 >"$smi_csv" 2>>"$log" &
    sampler=$!
fi
run "gacha bench $config" 200 "$bin" bench --config "$config" --trainable lora,attention \
    --batch-size "$batch" --steps "$steps" --warmup "$warmup" --device "$device" --dtype bf16 --json \
    >"$out/gacha-bench.jsonl"
[ -n "$sampler" ] && kill "$sampler" 2>/dev/null
torch_json="$out/torch-bench.jsonl"
: >"$torch_json"
for trainable in lora attention; do
    run "pytorch bench $config $trainable" 90 "$python" "$repo/tools/bench_reference.py" \
        --config "$config" --trainable "$trainable" --batch "$batch" --steps "$steps" --warmup "$warmup" \
        --device "$device" --dtype bf16 --json >>"$torch_json"
done
# --- packed trials: K LoRA trials of the 3B model trained together (issue 16), for the ratio ------
run "gacha bench --pack $config" 150 "$bin" bench --config "$config" --trainable lora --pack 1,4,8 \
    --batch-size "$batch" --steps "$steps" --warmup "$warmup" --device "$device" --dtype bf16 --json \
    >"$out/gacha-pack.jsonl"
# --- the memory guard (issue 11): its estimate for a LoRA trial like the bench's, and the GPU's figure
guard_dir="$(mktemp -d)"
cat >"$guard_dir/guard.toml" <<EOF
name = "guard"
[model]
path = "builtin:$config"
[data]
path = "$fixture/data.jsonl"
[train]
trainable = "lora"
batch_size = $batch
[sweep]
seeds = [1]
valid = [1]
learning_rate = [0.01]
EOF
run "gacha check $config" 60 "$bin" check "$guard_dir/guard.toml" --device "$device" >>"$log"
[ "$dry" = 1 ] && exit 0

# --- the table ---------------------------------------------------------------------------------
"$python" "$repo/tools/gpu_check_report.py" "$out" "$fixture/reference.json" "$mode" "$((SECONDS - start_s))" \
    "$score_dtype_supported" | tee "$results"
