"""Make `tests/fixtures/tiny-paligemma-npz/`: the tiny HF fixture as big_vision `.npz` checkpoints.

Reads `tests/fixtures/tiny-paligemma/{config.json,model.safetensors}` and writes the big_vision
parameter tree (docs/design.md §4.3) by inverting the mapping of transformers'
`convert_paligemma_weights_to_hf.py` (`slice_state_dict`): Flax kernels [in, out], scanned layers
stacked on axis 0, k/v and gate/up paired on axis 1, the embedding cut back to the big_vision
vocabulary (rows below `image_token_index`; the converter appended the rest). Before writing, the
tree is mapped forward again with the converter's own formulas and compared with the HF tensors
bit for bit (its o_proj reshape is written as (hidden, heads·head_dim), which is what it computes
when the two are equal, as in the 3B model; the tiny fixture has them differ).

Three files, the same values in three dtypes, as `np.savez` writes them (uncompressed):
`tiny.f32.npz`, `tiny.f16.npz` and `tiny.bf16.npz` (bf16 stored as the 2-byte void '|V2', as
NumPy stores JAX's bfloat16 and big_vision's `recover_dtype` reads back). Run from the repository
root:

    python tools/make_npz_fixture.py
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from safetensors.numpy import load_file

HF = Path("tests/fixtures/tiny-paligemma")
OUT = Path("tests/fixtures/tiny-paligemma-npz")
V = "vision_tower.vision_model."
L = "language_model.model."


def to_big_vision(sd: dict[str, np.ndarray], cfg: dict) -> dict[str, np.ndarray]:
    """The inverse of `slice_state_dict`."""
    vc, tc = cfg["vision_config"], cfg["text_config"]
    dv, heads_v, layers_v = vc["hidden_size"], vc["num_attention_heads"], vc["num_hidden_layers"]
    hd_v = dv // heads_v
    dt, heads, kv, hd = tc["hidden_size"], tc["num_attention_heads"], tc["num_key_value_heads"], tc["head_dim"]
    layers = tc["num_hidden_layers"]
    vl = lambda i, n: sd[f"{V}encoder.layers.{i}.{n}"]  # noqa: E731
    tl = lambda i, n: sd[f"{L}layers.{i}.{n}"]  # noqa: E731
    stack_v = lambda f: np.stack([f(i) for i in range(layers_v)])  # noqa: E731
    stack_t = lambda f: np.stack([f(i) for i in range(layers)])  # noqa: E731
    enc = "img/Transformer/encoderblock/"
    mha = enc + "MultiHeadDotProductAttention_0/"
    tree = {
        "img/embedding/kernel": sd[V + "embeddings.patch_embedding.weight"].transpose(2, 3, 1, 0),
        "img/embedding/bias": sd[V + "embeddings.patch_embedding.bias"],
        "img/pos_embedding": sd[V + "embeddings.position_embedding.weight"][None],
        enc + "LayerNorm_0/scale": stack_v(lambda i: vl(i, "layer_norm1.weight")),
        enc + "LayerNorm_0/bias": stack_v(lambda i: vl(i, "layer_norm1.bias")),
        enc + "LayerNorm_1/scale": stack_v(lambda i: vl(i, "layer_norm2.weight")),
        enc + "LayerNorm_1/bias": stack_v(lambda i: vl(i, "layer_norm2.bias")),
        enc + "MlpBlock_0/Dense_0/kernel": stack_v(lambda i: vl(i, "mlp.fc1.weight").T),
        enc + "MlpBlock_0/Dense_0/bias": stack_v(lambda i: vl(i, "mlp.fc1.bias")),
        enc + "MlpBlock_0/Dense_1/kernel": stack_v(lambda i: vl(i, "mlp.fc2.weight").T),
        enc + "MlpBlock_0/Dense_1/bias": stack_v(lambda i: vl(i, "mlp.fc2.bias")),
        mha + "out/kernel": stack_v(lambda i: vl(i, "self_attn.out_proj.weight").T.reshape(heads_v, hd_v, dv)),
        mha + "out/bias": stack_v(lambda i: vl(i, "self_attn.out_proj.bias")),
        "img/Transformer/encoder_norm/scale": sd[V + "post_layernorm.weight"],
        "img/Transformer/encoder_norm/bias": sd[V + "post_layernorm.bias"],
        "img/head/kernel": sd["multi_modal_projector.linear.weight"].T,
        "img/head/bias": sd["multi_modal_projector.linear.bias"],
        "llm/embedder/input_embedding": sd[L + "embed_tokens.weight"][: cfg["image_token_index"]],
        "llm/layers/attn/q_einsum/w": stack_t(
            lambda i: tl(i, "self_attn.q_proj.weight").reshape(heads, hd, dt).transpose(0, 2, 1)
        ),
        "llm/layers/attn/kv_einsum/w": stack_t(
            lambda i: np.stack(
                [tl(i, f"self_attn.{p}_proj.weight").reshape(kv, hd, dt).transpose(0, 2, 1) for p in "kv"]
            )
        ),
        "llm/layers/attn/attn_vec_einsum/w": stack_t(
            lambda i: tl(i, "self_attn.o_proj.weight").reshape(dt, heads, hd).transpose(1, 2, 0)
        ),
        "llm/layers/mlp/gating_einsum": stack_t(
            lambda i: np.stack([tl(i, "mlp.gate_proj.weight").T, tl(i, "mlp.up_proj.weight").T])
        ),
        "llm/layers/mlp/linear": stack_t(lambda i: tl(i, "mlp.down_proj.weight").T),
        "llm/layers/pre_attention_norm/scale": stack_t(lambda i: tl(i, "input_layernorm.weight")),
        "llm/layers/pre_ffw_norm/scale": stack_t(lambda i: tl(i, "post_attention_layernorm.weight")),
        "llm/final_norm/scale": sd[L + "norm.weight"],
    }
    for p, name in [("query", "q_proj"), ("key", "k_proj"), ("value", "v_proj")]:
        tree[mha + f"{p}/kernel"] = stack_v(lambda i: vl(i, f"self_attn.{name}.weight").T.reshape(dv, heads_v, hd_v))
        tree[mha + f"{p}/bias"] = stack_v(lambda i: vl(i, f"self_attn.{name}.bias").reshape(heads_v, hd_v))
    return tree


def converter_forward(tree: dict[str, np.ndarray], cfg: dict) -> dict[str, np.ndarray]:
    """`slice_state_dict`'s formulas, as in transformers' converter."""
    vc, tc = cfg["vision_config"], cfg["text_config"]
    dv, dt = vc["hidden_size"], tc["hidden_size"]
    heads, hd = tc["num_attention_heads"], tc["head_dim"]
    mha = "img/Transformer/encoderblock/MultiHeadDotProductAttention_0/"
    enc = "img/Transformer/encoderblock/"
    sd = {
        V + "embeddings.patch_embedding.weight": tree["img/embedding/kernel"].transpose(3, 2, 0, 1),
        V + "embeddings.patch_embedding.bias": tree["img/embedding/bias"],
        V + "embeddings.position_embedding.weight": tree["img/pos_embedding"].reshape(-1, dv),
        V + "post_layernorm.weight": tree["img/Transformer/encoder_norm/scale"].transpose(),
        V + "post_layernorm.bias": tree["img/Transformer/encoder_norm/bias"],
        "multi_modal_projector.linear.weight": tree["img/head/kernel"].transpose(),
        "multi_modal_projector.linear.bias": tree["img/head/bias"],
        L + "embed_tokens.weight": tree["llm/embedder/input_embedding"],
        L + "norm.weight": tree["llm/final_norm/scale"],
    }
    for i in range(vc["num_hidden_layers"]):
        p = f"{V}encoder.layers.{i}."
        sd[p + "layer_norm1.weight"] = tree[enc + "LayerNorm_0/scale"][i].transpose()
        sd[p + "layer_norm1.bias"] = tree[enc + "LayerNorm_0/bias"][i]
        sd[p + "layer_norm2.weight"] = tree[enc + "LayerNorm_1/scale"][i].transpose()
        sd[p + "layer_norm2.bias"] = tree[enc + "LayerNorm_1/bias"][i]
        sd[p + "mlp.fc1.weight"] = tree[enc + "MlpBlock_0/Dense_0/kernel"][i].transpose()
        sd[p + "mlp.fc1.bias"] = tree[enc + "MlpBlock_0/Dense_0/bias"][i]
        sd[p + "mlp.fc2.weight"] = tree[enc + "MlpBlock_0/Dense_1/kernel"][i].transpose()
        sd[p + "mlp.fc2.bias"] = tree[enc + "MlpBlock_0/Dense_1/bias"][i]
        for bv, name in [("key", "k_proj"), ("value", "v_proj"), ("query", "q_proj"), ("out", "out_proj")]:
            sd[p + f"self_attn.{name}.weight"] = tree[mha + f"{bv}/kernel"][i].reshape(-1, dv).transpose()
            sd[p + f"self_attn.{name}.bias"] = tree[mha + f"{bv}/bias"][i].reshape(-1, dv).reshape(-1)
    for i in range(tc["num_hidden_layers"]):
        p = f"{L}layers.{i}."
        sd[p + "self_attn.q_proj.weight"] = (
            tree["llm/layers/attn/q_einsum/w"][i].transpose(0, 2, 1).reshape(heads * hd, dt)
        )
        sd[p + "self_attn.k_proj.weight"] = tree["llm/layers/attn/kv_einsum/w"][i, 0, 0].transpose()
        sd[p + "self_attn.v_proj.weight"] = tree["llm/layers/attn/kv_einsum/w"][i, 1, 0].transpose()
        sd[p + "self_attn.o_proj.weight"] = (
            tree["llm/layers/attn/attn_vec_einsum/w"][i].transpose(2, 0, 1).reshape(dt, heads * hd)
        )
        sd[p + "mlp.gate_proj.weight"] = tree["llm/layers/mlp/gating_einsum"][i, 0].transpose()
        sd[p + "mlp.up_proj.weight"] = tree["llm/layers/mlp/gating_einsum"][i, 1].transpose()
        sd[p + "mlp.down_proj.weight"] = tree["llm/layers/mlp/linear"][i].transpose()
        sd[p + "input_layernorm.weight"] = tree["llm/layers/pre_attention_norm/scale"][i]
        sd[p + "post_attention_layernorm.weight"] = tree["llm/layers/pre_ffw_norm/scale"][i]
    return sd


def bf16_as_void(a: np.ndarray) -> np.ndarray:
    """Round to bf16 (nearest even, torch) and store as NumPy's 2-byte void, as np.save does."""
    bits = torch.from_numpy(np.ascontiguousarray(a)).to(torch.bfloat16).view(torch.int16).numpy()
    return bits.view("V2")


def main() -> None:
    cfg = json.loads((HF / "config.json").read_text())
    sd = load_file(HF / "model.safetensors")
    tree = to_big_vision(sd, cfg)
    back = converter_forward(tree, cfg)
    vocab = cfg["image_token_index"]
    assert set(back) == set(sd), set(back) ^ set(sd)
    for name, value in sd.items():
        want = value[:vocab] if name.endswith("embed_tokens.weight") else value
        assert back[name].shape == want.shape and np.array_equal(back[name], want), name
    # JAX arrays are C-ordered; np.save would mark transposed views Fortran-ordered.
    tree = {k: np.ascontiguousarray(v) for k, v in tree.items()}
    OUT.mkdir(exist_ok=True)
    np.savez(OUT / "tiny.f32.npz", **{k: v.astype(np.float32) for k, v in tree.items()})
    np.savez(OUT / "tiny.f16.npz", **{k: v.astype(np.float16) for k, v in tree.items()})
    np.savez(OUT / "tiny.bf16.npz", **{k: bf16_as_void(v) for k, v in tree.items()})
    for f in sorted(OUT.glob("*.npz")):
        with np.load(f) as z:
            print(f, len(z.files), "arrays,", {str(z[k].dtype) for k in z.files}, f.stat().st_size, "bytes")


if __name__ == "__main__":
    main()
