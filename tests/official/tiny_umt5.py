"""A tiny random umT5 encoder laid out like the official Wan2.2-TI2V-5B folder.

`write_tiny_wan_umt5(folder)` writes `models_t5_umt5-xxl-enc-bf16.pth` (Wan's T5 key names and
tensor layout, bfloat16, saved by torch.save) and `google/umt5-xxl/`, a Unigram tokenizer with
T5's special tokens (<pad>=0, </s>=1, <unk>=2, "</s>" appended) that transformers loads offline.
The sizes differ from umT5-XXL on purpose (attention width != d_model, d_ff != d_model) so a
transposed or swapped tensor cannot pass; the 32 relative-position buckets are the real ones.
"""

from __future__ import annotations

import string
from pathlib import Path

import torch
from torch import Tensor

WAN_T5_FILE = "models_t5_umt5-xxl-enc-bf16.pth"
TOKENIZER_DIR = Path("google") / "umt5-xxl"

# Wan's T5Encoder arguments: dim, dim_attn, dim_ffn, num_heads, num_layers, num_buckets.
TINY = {
    "dim": 32, "dim_attn": 24, "dim_ffn": 48, "num_heads": 4, "num_layers": 2, "num_buckets": 32,
}
WORDS = "a cat says hello the dog barks rain falls on roof".split()
SPECIALS = ["<pad>", "</s>", "<unk>"]


def tiny_vocab() -> list[tuple[str, float]]:
    """Unigram pieces: specials, whole words, then single characters so any text tokenizes."""
    pieces = [(s, 0.0) for s in SPECIALS]
    pieces += [(f"\u2581{w}", -1.0) for w in WORDS]
    pieces += [("\u2581", -3.0)] + [(c, -5.0) for c in string.ascii_lowercase + "&;,.!'"]
    return pieces


def write_tiny_tokenizer(folder: Path) -> Path:
    """Save the tiny tokenizer as a T5 tokenizer folder (tokenizer.json + tokenizer_config.json)."""
    from transformers import T5Tokenizer

    tok = T5Tokenizer(vocab=tiny_vocab(), extra_ids=0, model_max_length=512)
    folder.mkdir(parents=True, exist_ok=True)
    tok.save_pretrained(folder)
    return folder


def vocab_rows() -> int:
    """Embedding rows: the tokenizer's vocabulary rounded up, as umT5's 256384 rounds 256300."""
    return -(-len(tiny_vocab()) // 8) * 8


def wan_encoder_shapes(
    vocab: int, dim: int, dim_attn: int, dim_ffn: int, num_heads: int, num_layers: int,
    num_buckets: int,
) -> dict[str, tuple[int, ...]]:
    """Key -> shape of Wan's `T5Encoder(vocab, dim, dim_attn, dim_ffn, num_heads, num_layers,
    num_buckets, shared_pos=False)`; nn.Linear(i, o).weight is (o, i)."""
    shapes = {"token_embedding.weight": (vocab, dim)}
    for i in range(num_layers):
        b = f"blocks.{i}."
        shapes |= {
            b + "norm1.weight": (dim,),
            b + "attn.q.weight": (dim_attn, dim),
            b + "attn.k.weight": (dim_attn, dim),
            b + "attn.v.weight": (dim_attn, dim),
            b + "attn.o.weight": (dim, dim_attn),
            b + "norm2.weight": (dim,),
            b + "ffn.gate.0.weight": (dim_ffn, dim),
            b + "ffn.fc1.weight": (dim_ffn, dim),
            b + "ffn.fc2.weight": (dim, dim_ffn),
            b + "pos_embedding.embedding.weight": (num_buckets, num_heads),
        }
    shapes["norm.weight"] = (dim,)
    return shapes


def tiny_wan_state_dict(seed: int = 0) -> dict[str, Tensor]:
    """Random bfloat16 weights (the release file is bf16) under Wan's T5 encoder names."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in wan_encoder_shapes(vocab_rows(), **TINY).items():
        if len(shape) == 1:  # norm weights, not all ones so that a dropped one shows
            t = 1.0 + 0.2 * torch.randn(shape, generator=g)
        elif key.endswith("embedding.weight"):  # tokens and relative-position bias
            t = torch.randn(shape, generator=g)
        else:  # Linear (out, in): keep activations near unit scale
            t = torch.randn(shape, generator=g) * shape[1] ** -0.5
        state[key] = t.to(torch.bfloat16)
    return state


def write_tiny_wan_umt5(folder: Path, seed: int = 0) -> Path:
    """Write the tiny encoder in the official folder layout and return the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(tiny_wan_state_dict(seed), folder / WAN_T5_FILE)
    write_tiny_tokenizer(folder / TOKENIZER_DIR)
    return folder
