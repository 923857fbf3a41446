"""The results table of tools/gpu-check.sh, from the files its steps wrote to OUT.

    python tools/gpu_check_report.py OUT REFERENCE_JSON MODE ELAPSED_S SCORE_SUPPORTED

OUT holds score-f32.csv and score-bf16.csv (`gacha score` of the fixture), gacha-bench.jsonl
(`gacha bench --json`, one line per trainable set), torch-bench.jsonl (bench_reference.py --json, one line per trainable set)
and nvidia-smi.csv ("timestamp, MiB used" lines sampled during gacha bench). MODE is cuda or cpu;
SCORE_SUPPORTED is 0 when the binary's `score` has no --dtype. Prints Markdown. Standard library
only.
"""

from __future__ import annotations

import csv
import json
import os
import sys

# An RTX 4070 has 12282 MiB; keep 512 MiB for the display and the driver.
CARD_MIB = 12282
RESERVED_MIB = 512
# Tolerances of issue 3's CPU parity tests.
P_YES_ABS = 1e-4
LOSS_REL = 1e-4


def json_lines(path: str) -> list[dict]:
    try:
        return [json.loads(line) for line in open(path) if line.strip()]
    except (OSError, ValueError):
        return []


def score_rows(out: str, reference: dict, score_supported: bool) -> list[str]:
    """One table line per dtype: the largest differences from the transformers reference."""
    lines = []
    for dtype in ("f32", "bf16"):
        name = f"| score {dtype} vs reference |"
        if not score_supported:
            lines.append(f"{name} SKIP | this gacha has no `score --dtype` |")
            continue
        path = f"{out}/score-{dtype}.csv"
        rows = list(csv.DictReader(open(path))) if os.path.exists(path) else []
        if len(rows) != len(reference):
            lines.append(f"{name} FAIL | {len(rows)} of {len(reference)} examples scored (see log.txt) |")
            continue
        dp = max(abs(float(r["p_yes"]) - reference[r["image"]]["p_yes"]) for r in rows)
        dl = max(abs(float(r["loss"]) - reference[r["image"]]["loss"]) / abs(reference[r["image"]]["loss"])
                 for r in rows)
        verdict = ("PASS" if dp <= P_YES_ABS and dl <= LOSS_REL else "FAIL") if dtype == "f32" else "INFO"
        lines.append(f"{name} {verdict} | max abs Δp_yes {dp:.2e}, max rel Δloss {dl:.2e} over {len(rows)} examples |")
    return lines


def bench_rows(gacha_rows: dict, torch_runs: dict) -> list[str]:
    lines = ["| trainable | tool | ms/step (median) | ex/s | score ex/s | peak MiB | train TFLOP/s | score TFLOP/s |",
             "|---|---|---|---|---|---|---|---|"]
    for trainable in ("lora", "attention"):
        for tool, r in (("gacha", gacha_rows.get(trainable)), ("PyTorch", torch_runs.get(trainable))):
            if r is None:
                lines.append(f"| {trainable} | {tool} | FAILED (see log.txt) | | | | | |")
                continue
            ex_s = r["batch"] * r["grad_accum"] / (r["ms_per_step"] / 1e3)
            peak = r.get("peak_mem_mib")
            lines.append(f"| {trainable} | {tool} | {r['ms_per_step']:.1f} | {ex_s:.2f} | {r['score_examples_per_s']:.2f} | "
                         f"{'n/a' if peak is None else f'{peak:.0f}'} | {r['train_tflops']:.3f} | {r['score_tflops']:.3f} |")
    for trainable in ("lora", "attention"):
        g, p = gacha_rows.get(trainable), torch_runs.get(trainable)
        if g and p:
            lines.append(f"\n{trainable}: gacha/PyTorch time per step {g['ms_per_step'] / p['ms_per_step']:.2f}x, "
                         f"per scoring batch {p['score_examples_per_s'] / g['score_examples_per_s']:.2f}x")
    return lines


def smi_samples(path: str) -> list[int]:
    """MiB used per nvidia-smi sample, in order."""
    samples = []
    try:
        for line in open(path):
            parts = line.strip().split(",")
            if len(parts) == 2 and parts[1].strip().isdigit():
                samples.append(int(parts[1]))
    except OSError:
        pass
    return samples


def fit_estimate(gacha_rows: dict, samples: list[int]) -> list[str]:
    """Whether 3B LoRA at batch 2 fits a 12 GB card: the LoRA row's pool peak plus what the process held
    beyond the pool (nvidia-smi's peak over the run minus its first sample, less the largest pool peak)."""
    lora = gacha_rows.get("lora")
    if not lora or lora.get("peak_mem_mib") is None:
        return ["not estimated: no LoRA peak from gacha bench (see log.txt)"]
    pools = [r["peak_mem_mib"] for r in gacha_rows.values() if r.get("peak_mem_mib") is not None]
    lines = []
    if samples:
        process_peak = max(samples) - samples[0]
        beyond = max(0.0, process_peak - max(pools))
        total = lora["peak_mem_mib"] + beyond
        lines.append(f"LoRA pool peak {lora['peak_mem_mib']:.0f} MiB + beyond the pool {beyond:.0f} MiB "
                     f"(nvidia-smi peak {process_peak} MiB above its first sample − largest pool peak "
                     f"{max(pools):.0f} MiB: CUDA context, cuBLAS workspace, pool slack) = {total:.0f} MiB")
    else:
        beyond = 600.0
        total = lora["peak_mem_mib"] + beyond
        lines.append(f"LoRA pool peak {lora['peak_mem_mib']:.0f} MiB + an assumed {beyond:.0f} MiB for the CUDA "
                     f"context and workspaces (no nvidia-smi samples) = {total:.0f} MiB")
    budget = CARD_MIB - RESERVED_MIB
    verdict = "fits" if total <= 0.9 * budget else ("fits, tight (over 90%)" if total <= budget else "does NOT fit")
    lines.append(f"\nagainst {budget} MiB ({CARD_MIB} MiB RTX 4070 − {RESERVED_MIB} MiB for display and driver): "
                 f"**{verdict}** ({total / budget:.0%})")
    return lines


def guard_lines(log_path: str, gacha_rows: dict, samples: list[int]) -> list[str]:
    """The memory guard's lines from `gacha check --device` (in log.txt) beside what the LoRA bench row
    measured: its estimate against the pool peak, its 1 GiB CUDA-context allowance against what the
    process held beyond the pool."""
    try:
        log = open(log_path).read().splitlines()
    except OSError:
        return ["no log.txt"]
    found = [line.strip() for i, line in enumerate(log)
             if line.startswith("memory: peak") or (i and log[i - 1].startswith("memory: peak"))]
    if not found:
        return ["no estimate in log.txt (the gacha check step failed?)"]
    lines = [f"gacha check: `{line}`\n" for line in found]
    lora = gacha_rows.get("lora") or {}
    pools = [r["peak_mem_mib"] for r in gacha_rows.values() if r.get("peak_mem_mib") is not None]
    if lora.get("peak_mem_mib") is not None:
        lines.append(f"measured: LoRA pool peak {lora['peak_mem_mib']:.0f} MiB (the estimate counts the same "
                     "tensors, for the fixture's prompts)")
    if samples and pools:
        beyond = max(0.0, max(samples) - samples[0] - max(pools))
        lines.append(f"\nbeyond the pool {beyond:.0f} MiB, against the guard's 1024 MiB allowance for the CUDA context")
    return lines


def main() -> None:
    out, reference_path, mode, elapsed, score_supported = sys.argv[1:]
    reference = {e["image"]: e for e in json.load(open(reference_path))["examples"]}
    gacha_rows = {r["trainable"]: r for r in json_lines(f"{out}/gacha-bench.jsonl")}
    torch_runs = {r["trainable"]: r for r in json_lines(f"{out}/torch-bench.jsonl")}

    print(f"# gpu-check ({mode})\n")
    print("| check | result | details |\n|---|---|---|")
    print("\n".join(score_rows(out, reference, score_supported != "0")))

    device_name = next(iter(torch_runs.values()), {}).get("device_name", "?")
    config = next(iter([*gacha_rows.values(), *torch_runs.values()]), {}).get("config", "?")
    print(f"\n## Benchmark: {config}, batch 2, bf16 frozen weights, {device_name}\n")
    print("\n".join(bench_rows(gacha_rows, torch_runs)))
    if gacha_rows:
        print(f"\npeak memory: gacha {next(iter(gacha_rows.values()))['peak_mem_kind']}; PyTorch "
              f"{next(iter(torch_runs.values()), {}).get('peak_mem_kind', '?')}")
    if "lora" in torch_runs:
        print(f"\nPyTorch LoRA peak: {torch_runs['lora']['peak_mem_mib']:.0f} MiB")

    print("\n## Does 3B LoRA training at batch 2 fit in 12 GB?\n")
    if mode != "cuda":
        print("not estimated: --cpu run")
    else:
        print("\n".join(fit_estimate(gacha_rows, smi_samples(f"{out}/nvidia-smi.csv"))))
    print("\n## The memory guard on a 3B LoRA trial at batch 2 (issue 11)\n")
    print("\n".join(guard_lines(f"{out}/log.txt", gacha_rows, smi_samples(f"{out}/nvidia-smi.csv"))))
    print(f"\ntotal time {elapsed} s")


if __name__ == "__main__":
    main()
