"""Score a JSONL dataset with transformers + PEFT: the Python twin of `gacha score`.

Loads a PaliGemma checkpoint with transformers (float32, eager attention), optionally applies a LoRA
adapter with `PeftModel.from_pretrained` and checks that every tensor of `adapter_model.safetensors`
really was loaded (PEFT silently ignores misnamed keys), preprocesses the images with the numpy twin
of docs/design.md §5 and prints `image,label,p_yes,logit_yes,logit_no,loss`, one row per example:

    python tools/peft_score.py --model DIR [--adapter DIR] --data FILE.jsonl [--prompt TEXT] [--out FILE.csv]

Image paths are relative to the JSONL file's folder. Without --prompt each line's "prefix" is used.
Exit code 2 on bad input (a message names the file and line).
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import sys
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gacha_ref as ref  # noqa: E402

# PEFT key prefix of the language model with transformers 4.x and with 5.x (docs/design.md §4.4).
LM_PREFIX_4X = "base_model.model.language_model.model."
LM_PREFIX_5X = "base_model.model.model.language_model."


class InputError(Exception):
    """Bad input from the user: reported on stderr with exit code 2."""


def apply_adapter(model, adapter_dir: Path):
    """PeftModel.from_pretrained, then prove that each tensor in the file reached the model."""
    from peft import PeftModel
    from peft.utils import get_peft_model_state_dict

    weights = adapter_dir / "adapter_model.safetensors"
    if not weights.is_file():
        raise InputError(f"{weights}: missing (a PEFT LoRA adapter folder needs adapter_model.safetensors)")
    file_tensors = load_file(str(weights))
    peft_model = PeftModel.from_pretrained(model, str(adapter_dir)).eval()
    loaded = get_peft_model_state_dict(peft_model)
    lora_params = [n for n, _ in peft_model.named_parameters() if ".lora_A." in n or ".lora_B." in n]

    missing = []
    for key, tensor in file_tensors.items():
        name = LM_PREFIX_5X + key[len(LM_PREFIX_4X):] if key.startswith(LM_PREFIX_4X) else key
        if name not in loaded or not torch.equal(loaded[name].cpu(), tensor.to(loaded[name].dtype)):
            missing.append(key)
    if missing or len(lora_params) != len(file_tensors):
        raise InputError(
            f"{weights}: {len(file_tensors) - len(missing)} of {len(file_tensors)} tensors were loaded into "
            f"{len(lora_params)} LoRA parameters of the model; not loaded: {missing[:5]}"
        )
    ref.info(f"adapter {adapter_dir}: {len(file_tensors)} LoRA tensors loaded and checked")
    return peft_model


def score_rows(model, vocab: ref.Vocab, rows: list[dict], data_dir: Path, prompt: str | None, device: str):
    """One forward pass per example (no padding): (row, Score) pairs."""
    vc = model.config.vision_config
    size, n_img = vc.image_size, (vc.image_size // vc.patch_size) ** 2
    out = []
    with torch.no_grad():
        for row in rows:
            path = data_dir / row["image"]
            if not path.is_file():
                raise InputError(f"{path}: image not found (line of image {row['image']!r})")
            pixels = torch.from_numpy(ref.preprocess(path, size))[None].to(device)
            text = prompt if prompt is not None else row.get("prefix", "")
            example = ref.make_example(vocab, n_img, ref.text_ids(vocab, text, row["suffix"]))
            logits = ref.forward(model, pixels, ref.pad_batch([example], vocab.pad)).logits
            out.append((row, ref.example_scores(logits, [example], vocab)[0]))
    return out


def to_csv(scored) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["image", "label", "p_yes", "logit_yes", "logit_no", "loss"])
    for row, s in scored:
        w.writerow([row["image"], row["suffix"], repr(s.p_yes), repr(s.logit_yes), repr(s.logit_no), repr(s.loss)])
    return buf.getvalue()


def write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, type=Path, help="checkpoint folder (config.json, *.safetensors, tokenizer.json)")
    parser.add_argument("--adapter", type=Path, help="PEFT LoRA adapter folder")
    parser.add_argument("--data", required=True, type=Path, help="JSONL: {prefix, suffix, image} per line")
    parser.add_argument("--prompt", help="prompt for every example (default: each line's prefix)")
    parser.add_argument("--out", type=Path, help="write the CSV here (default: stdout)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    args = parser.parse_args(argv)
    try:
        rows = ref.read_jsonl(args.data)
        tokenizer = args.model / "tokenizer.json"
        if not tokenizer.is_file():
            raise InputError(f"{tokenizer}: missing")
        model = ref.load_model(args.model).to(args.device)
        vocab = ref.load_vocab(tokenizer, model.config.image_token_id)
        if args.adapter is not None:
            model = apply_adapter(model, args.adapter)
        text = to_csv(score_rows(model, vocab, rows, args.data.parent, args.prompt, args.device))
    except (InputError, ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.out is None:
        sys.stdout.write(text)
    else:
        write_atomic(args.out, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
