"""Check a `gacha export --format hf` folder with transformers: it loads without PEFT and scores
like the base model with the adapter applied by PEFT.

    python tools/check_merged_export.py --base DIR --adapter DIR --merged DIR --data FILE.jsonl [--tol 1e-5]

Scores every example of the JSONL three ways, float32, eager attention (peft_score.py's scoring):
transformers on --merged; transformers + PEFT on --base with --adapter (a LoRA adapter folder);
and, as a check of the weights themselves, PEFT's own `merge_and_unload` against the tensors in
--merged. Prints the largest absolute differences and exits 1 when a score differs by more than
--tol (2 on bad input).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gacha_ref as ref  # noqa: E402
import peft_score  # noqa: E402


def scores(model, vocab, rows, data: Path) -> list[float]:
    """p_yes, logit_yes, logit_no and loss of every example, flattened."""
    out = []
    for _, s in peft_score.score_rows(model, vocab, rows, data.parent, None, "cpu"):
        out += [s.p_yes, s.logit_yes, s.logit_no, s.loss]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", required=True, type=Path)
    parser.add_argument("--adapter", required=True, type=Path, help="PEFT LoRA adapter folder")
    parser.add_argument("--merged", required=True, type=Path, help="folder written by gacha export")
    parser.add_argument("--data", required=True, type=Path)
    parser.add_argument("--tol", type=float, default=1e-5)
    args = parser.parse_args(argv)
    try:
        rows = ref.read_jsonl(args.data)
        merged = ref.load_model(args.merged)
        vocab = ref.load_vocab(args.merged / "tokenizer.json", merged.config.image_token_id)
        from_merged = scores(merged, vocab, rows, args.data)
        with_peft = peft_score.apply_adapter(ref.load_model(args.base), args.adapter)
        from_peft = scores(with_peft, vocab, rows, args.data)
    except (peft_score.InputError, ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    score_diff = max(abs(a - b) for a, b in zip(from_merged, from_peft))

    peft_merged = with_peft.merge_and_unload().state_dict()
    gacha_merged = merged.state_dict()
    weight_diff = max(
        (peft_merged[name].float() - tensor.float()).abs().max().item() for name, tensor in gacha_merged.items()
    )
    missing = sorted(set(peft_merged) ^ set(gacha_merged))
    print(f"examples: {len(rows)}; tensors: {len(gacha_merged)} (names not in both: {missing[:5]})")
    print(f"max |score difference| merged (transformers) vs base + adapter (PEFT): {score_diff:.3g}")
    print(f"max |weight difference| gacha's merge vs PEFT merge_and_unload: {weight_diff:.3g}")
    return 0 if score_diff <= args.tol and not missing else 1


if __name__ == "__main__":
    sys.exit(main())
