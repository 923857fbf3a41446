"""Check tools/peft_score.py against PEFT and against the LoRA formula, on the committed fixture.

Not part of CI (needs the Python tools of tools/requirements.txt). Run from the repository root:

    python tools/test_peft_roundtrip.py

1. Without an adapter, peft_score reproduces reference.json (p_yes and loss within 1e-6).
2. A PEFT LoRA adapter (r 2, alpha 4, regex targets on the LM's q/k/v/o, random non-zero A and B)
   saved by PEFT scores the same through peft_score as in-process, and the same as the base model
   with W + (alpha/r)·B·A merged by hand (independent of PEFT); it moves p_yes clearly.
3. The same adapter with transformers-4.x key names scores the same.
4. An adapter with one misnamed key is refused with exit code 2 (PEFT alone would ignore the key).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

TOOLS = Path(__file__).resolve().parent
sys.path.insert(0, str(TOOLS))
import gacha_ref as ref  # noqa: E402
import peft_score  # noqa: E402

FIXTURE = TOOLS.parent / "tests/fixtures/tiny-paligemma"
TARGETS = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj)"
R, ALPHA = 2, 4


def run_score(adapter: Path | None, out: Path) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(TOOLS / "peft_score.py"), "--model", str(FIXTURE),
           "--data", str(FIXTURE / "data.jsonl"), "--out", str(out)]
    if adapter is not None:
        cmd += ["--adapter", str(adapter)]
    return subprocess.run(cmd, capture_output=True, text=True)


def read_csv(path: Path) -> list[dict]:
    import csv

    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def scores_in_process(model) -> list[ref.Score]:
    rows = ref.read_jsonl(FIXTURE / "data.jsonl")
    vocab = ref.load_vocab(FIXTURE / "tokenizer.json", model.config.image_token_id)
    return [s for _, s in peft_score.score_rows(model, vocab, rows, FIXTURE, None, "cpu")]


def assert_close(csv_rows: list[dict], scores: list[ref.Score], tol: float, what: str) -> float:
    worst = 0.0
    for row, s in zip(csv_rows, scores, strict=True):
        worst = max(worst, abs(float(row["p_yes"]) - s.p_yes), abs(float(row["loss"]) - s.loss) / s.loss)
    assert worst < tol, f"{what}: differs by {worst}"
    print(f"ok: {what} (max diff {worst:.2e})")
    return worst


def make_adapter(folder: Path) -> None:
    from peft import LoraConfig, get_peft_model

    model = ref.load_model(FIXTURE)
    cfg = LoraConfig(r=R, lora_alpha=ALPHA, target_modules=TARGETS, lora_dropout=0.0, bias="none")
    peft_model = get_peft_model(model, cfg)
    gen = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if ".lora_A." in name or ".lora_B." in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
    peft_model.save_pretrained(str(folder))


def merged_by_hand(adapter: Path):
    """The base model with W + (alpha/r)·B·A for every adapter pair; no PEFT involved."""
    model = ref.load_model(FIXTURE)
    params = dict(model.named_parameters())
    tensors = load_file(str(adapter / "adapter_model.safetensors"))
    cfg = json.loads((adapter / "adapter_config.json").read_text())
    scale = cfg["lora_alpha"] / cfg["r"]
    with torch.no_grad():
        for key in tensors:
            if ".lora_A." not in key:
                continue
            module = key.removeprefix("base_model.model.").removesuffix(".lora_A.weight")
            b = tensors[key.replace(".lora_A.", ".lora_B.")]
            params[module + ".weight"] += scale * (b @ tensors[key])
    return model


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        reference = json.loads((FIXTURE / "reference.json").read_text())
        res = run_score(None, tmp / "base.csv")
        assert res.returncode == 0, res.stderr
        base = read_csv(tmp / "base.csv")
        want = [ref.Score(e["logit_yes"], e["logit_no"], e["p_yes"], e["loss"]) for e in reference["examples"]]
        assert [r["image"] for r in base] == [e["image"] for e in reference["examples"]]
        assert_close(base, want, 1e-6, "base model vs reference.json")

        adapter = tmp / "adapter"
        make_adapter(adapter)
        res = run_score(adapter, tmp / "lora.csv")
        assert res.returncode == 0, res.stderr
        lora = read_csv(tmp / "lora.csv")
        keys = load_file(str(adapter / "adapter_model.safetensors"))
        assert len(keys) == 16 and all(k.startswith(peft_score.LM_PREFIX_5X) for k in keys), sorted(keys)[:3]
        from peft import PeftModel

        assert_close(lora, scores_in_process(PeftModel.from_pretrained(ref.load_model(FIXTURE), str(adapter))),
                     1e-6, "peft_score vs PEFT in-process")
        assert_close(lora, scores_in_process(merged_by_hand(adapter)), 1e-5, "peft_score vs W + (alpha/r)·B·A")
        moved = max(abs(float(a["p_yes"]) - float(b["p_yes"])) for a, b in zip(lora, base))
        assert moved > 0.05, f"the adapter barely changes p_yes ({moved})"
        print(f"ok: the adapter moves p_yes by up to {moved:.3f}")

        old = tmp / "adapter4x"
        old.mkdir()
        (old / "adapter_config.json").write_text((adapter / "adapter_config.json").read_text())
        save_file({peft_score.LM_PREFIX_4X + k[len(peft_score.LM_PREFIX_5X):]: v for k, v in keys.items()},
                  str(old / "adapter_model.safetensors"))
        res = run_score(old, tmp / "lora4x.csv")
        assert res.returncode == 0, res.stderr
        assert_close(read_csv(tmp / "lora4x.csv"), [ref.Score(float(r["logit_yes"]), float(r["logit_no"]),
                     float(r["p_yes"]), float(r["loss"])) for r in lora], 1e-7, "transformers-4.x key names")

        bad = tmp / "misnamed"
        bad.mkdir()
        (bad / "adapter_config.json").write_text((adapter / "adapter_config.json").read_text())
        renamed = {k.replace("layers.1.self_attn.v_proj", "layers.1.self_attn.value"): v for k, v in keys.items()}
        save_file(renamed, str(bad / "adapter_model.safetensors"))
        res = run_score(bad, tmp / "bad.csv")
        assert res.returncode == 2 and "not loaded" in res.stderr, (res.returncode, res.stderr[-500:])
        assert not (tmp / "bad.csv").exists()
        print("ok: a misnamed adapter key is refused: " + res.stderr.strip().splitlines()[-1][:160])
    print("all PEFT round-trip checks passed")


if __name__ == "__main__":
    main()
