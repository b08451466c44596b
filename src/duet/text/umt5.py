"""umT5-XXL as the official Wan2.2 / Ovi release ships it, loaded into `transformers`.

The release folder (`Wan2.2-TI2V-5B/`) holds `models_t5_umt5-xxl-enc-bf16.pth`, a `torch.save`
state dict in the module naming of Wan's own T5 (`wan/modules/t5.py`), and the Hugging Face
tokenizer files under `google/umt5-xxl/`. Rather than keep a second T5 implementation, the
state dict is renamed onto `transformers.UMT5EncoderModel`; the two compute the same function:

- RMS norm without mean subtraction or bias, eps 1e-6, before attention, FFN and at the end;
- attention logits `q·k` with no 1/sqrt(d) scaling, plus a learned relative position bias that
  every layer owns (umT5; T5 shares one), 32 bidirectional log buckets up to distance 128;
- gated-GELU FFN `fc2(fc1(x) * gelu_tanh(gate(x)))`; Wan's `gate` is HF's `wi_0` (the one that
  goes through the activation, `gelu_new`), Wan's `fc1` is HF's `wi_1`, `fc2` is `wo`.

In float32 the two agree to 1e-5 (tests/official/test_umt5.py). In bfloat16 the rounding can
differ slightly: Wan takes the attention softmax in float32, transformers leaves it to the
attention backend (eager: the input dtype).

Sizes are read from the tensor shapes, so a tiny file in the same format loads with this code.
Loading is strict: every key must map, every shape must agree, or a `CheckpointError` names
the file and the keys.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from duet.errors import CheckpointError, ConfigError
from duet.weights import UMT5_BLOCK_INDEX, key_problems, read_torch_file, tensor_dict, umt5_key

if TYPE_CHECKING:
    from transformers import UMT5Config, UMT5EncoderModel


WAN_T5_FILE = "models_t5_umt5-xxl-enc-bf16.pth"  # name in Wan2.1 / Wan2.2 / Ovi folders
WAN_TOKENIZER_DIR = Path("google") / "umt5-xxl"  # tokenizer folder beside it
# Not stored in the file: Wan's T5RelativeEmbedding(max_dist=128), and google/umt5-xxl's
# relative_attention_max_distance / layer_norm_epsilon.
MAX_DISTANCE = 128
LAYER_NORM_EPS = 1e-6


@dataclass(frozen=True)
class UMT5Dims:
    """Sizes of a umT5 encoder, as read from a Wan state dict's shapes."""

    vocab_size: int  # rows of the embedding table (256384 for umT5-XXL)
    d_model: int
    d_ff: int
    num_layers: int
    num_heads: int  # columns of each layer's relative-bias table
    d_kv: int  # per-head width; Wan's dim_attn = num_heads * d_kv
    num_buckets: int  # rows of each layer's relative-bias table

    def to_config(self) -> UMT5Config:
        """The matching `UMT5Config`: gated-GELU (tanh GELU), eps 1e-6, max distance 128."""
        from transformers import UMT5Config

        return UMT5Config(
            vocab_size=self.vocab_size, d_model=self.d_model, d_kv=self.d_kv, d_ff=self.d_ff,
            num_layers=self.num_layers, num_heads=self.num_heads,
            relative_attention_num_buckets=self.num_buckets,
            relative_attention_max_distance=MAX_DISTANCE, layer_norm_epsilon=LAYER_NORM_EPS,
            feed_forward_proj="gated-gelu", dropout_rate=0.0,
            pad_token_id=0, eos_token_id=1, decoder_start_token_id=0,
        )

    def wan_shapes(self) -> dict[str, tuple[int, ...]]:
        """Every key a Wan state dict of these sizes holds, with its shape."""
        d, a, f, h = self.d_model, self.num_heads * self.d_kv, self.d_ff, self.num_heads
        block = {
            "norm1.weight": (d,), "attn.q.weight": (a, d), "attn.k.weight": (a, d),
            "attn.v.weight": (a, d), "attn.o.weight": (d, a),
            "pos_embedding.embedding.weight": (self.num_buckets, h), "norm2.weight": (d,),
            "ffn.gate.0.weight": (f, d), "ffn.fc1.weight": (f, d), "ffn.fc2.weight": (d, f),
        }
        shapes = {"token_embedding.weight": (self.vocab_size, d), "norm.weight": (d,)}
        for i in range(self.num_layers):
            shapes |= {f"blocks.{i}.{k}": s for k, s in block.items()}
        return shapes


def _examples(keys: set[str] | list[str], n: int = 3) -> str:
    """A few keys for an error message, in a stable order."""
    keys = sorted(keys)
    more = f" and {len(keys) - n} more" if len(keys) > n else ""
    return ", ".join(keys[:n]) + more


def read_wan_state_dict(path: str | Path) -> dict[str, Tensor]:
    """Tensors of a Wan `.pth`, memory-mapped so that nothing is read until it is used."""
    hint = f"pass the {WAN_T5_FILE} file of the official Wan2.2-TI2V-5B folder"
    return tensor_dict(read_torch_file(path, f"umT5 weights {WAN_T5_FILE}", hint), path, hint)


def _shape(state: Mapping[str, Tensor], key: str, ndim: int, path: Path) -> tuple[int, ...]:
    """Shape of a key the sizes are read from; missing or of the wrong rank is an error."""
    if key not in state or state[key].ndim != ndim:
        got = "is missing" if key not in state else f"has shape {tuple(state[key].shape)}"
        hint = ""
        if key.startswith("blocks.0.pos_embedding") and "pos_embedding.embedding.weight" in state:
            hint = " (the file has one shared position bias: a T5 encoder, not umT5)"
        raise CheckpointError(
            f"{str(path)!r} is not a Wan umT5 encoder state dict: {key} {got}{hint}; "
            f"pass Wan's {WAN_T5_FILE}"
        )
    return tuple(state[key].shape)


def infer_dims(state: Mapping[str, Tensor], path: str | Path) -> UMT5Dims:
    """Encoder sizes from the shapes of the embedding, block 0 and the block count."""
    path = Path(path)
    vocab, d_model = _shape(state, "token_embedding.weight", 2, path)
    attn_dim, _ = _shape(state, "blocks.0.attn.q.weight", 2, path)
    d_ff, _ = _shape(state, "blocks.0.ffn.fc1.weight", 2, path)
    buckets, heads = _shape(state, "blocks.0.pos_embedding.embedding.weight", 2, path)
    if attn_dim % heads:
        raise CheckpointError(
            f"{str(path)!r}: attention width {attn_dim} (blocks.0.attn.q.weight) is not a "
            f"multiple of the {heads} heads of blocks.0.pos_embedding.embedding.weight; "
            "the file is damaged or not a umT5 encoder"
        )
    layers = 1 + max(int(m[1]) for k in state if (m := UMT5_BLOCK_INDEX.match(k)))
    return UMT5Dims(vocab, d_model, d_ff, layers, heads, attn_dim // heads, buckets)


def check_wan_state_dict(state: Mapping[str, Tensor], dims: UMT5Dims, path: str | Path) -> None:
    """Strict: exactly the keys of a umT5 encoder of `dims`, each of the expected shape."""
    problems = key_problems(dims.wan_shapes(), state)
    if problems:
        raise CheckpointError(
            f"{str(path)!r} does not match a {dims.num_layers}-layer umT5 encoder in Wan's "
            f"naming: {problems}; pass Wan's {WAN_T5_FILE} (encoder only)"
        )
    not_float = [k for k, t in state.items() if not t.is_floating_point()]
    if not_float:
        raise CheckpointError(
            f"{str(path)!r}: {len(not_float)} tensors are not floating point "
            f"({_examples(not_float)}); a quantized or damaged file cannot be loaded"
        )


def read_checked(path: str | Path) -> tuple[dict[str, Tensor], UMT5Dims]:
    """A Wan `.pth` encoder's tensors (memory-mapped) and sizes, after the strict checks.

    Only the tensor metadata is read, so checking an 11 GB file at construction is cheap.
    """
    state = read_wan_state_dict(path)
    dims = infer_dims(state, path)
    check_wan_state_dict(state, dims, path)
    return state, dims


def load_wan_umt5(
    path: str | Path,
    *,
    dtype: torch.dtype = torch.bfloat16,
    device: torch.device | str = "cpu",
) -> UMT5EncoderModel:
    """A frozen `UMT5EncoderModel` on `device` holding the weights of a Wan `.pth` encoder.

    The model is built on the meta device and takes the tensors as its parameters
    (`assign=True`). The file is memory-mapped and each tensor is converted straight to its
    device and dtype, so host memory never holds a second full copy of the weights; on CPU in
    the file's dtype (bfloat16) nothing is copied at all.
    """
    from transformers import UMT5EncoderModel

    state, dims = read_checked(path)
    with torch.device("meta"):
        model = UMT5EncoderModel(dims.to_config())
    hf_state = {umt5_key(k): t.to(device=device, dtype=dtype) for k, t in state.items()}
    hf_state["encoder.embed_tokens.weight"] = hf_state["shared.weight"]
    model.load_state_dict(hf_state, strict=True, assign=True)
    # assign=True gave each key its own Parameter; tie them again so that the model holds
    # (and any later .to() moves) the 2 GB embedding once, not twice.
    model.set_input_embeddings(model.shared)
    model.eval().requires_grad_(False)
    return model


def find_wan_files(path: str | Path, tokenizer: str | Path | None = None) -> tuple[Path, Path]:
    """`(weights .pth, tokenizer folder)` from the official folder or from the `.pth` itself.

    The tokenizer defaults to `google/umt5-xxl/` beside the weights, as the release lays it out.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(
            f"umT5 path {str(path)!r} does not exist; pass the official Wan2.2-TI2V-5B folder, "
            f"its {WAN_T5_FILE}, or a Hugging Face umT5 folder"
        )
    weights = path / WAN_T5_FILE if path.is_dir() else path
    if not weights.is_file():
        raise CheckpointError(
            f"umT5 folder {str(path)!r} has no config.json (Hugging Face layout) and no "
            f"{WAN_T5_FILE} (official Wan2.2-TI2V-5B layout); looked for "
            f"{str(path / 'config.json')!r} and {str(weights)!r}: pass either folder"
        )
    tok = Path(tokenizer) if tokenizer is not None else weights.parent / WAN_TOKENIZER_DIR
    has_files = tok.is_dir() and (
        any(tok.glob("tokenizer*.json")) or (tok / "spiece.model").is_file()
    )
    if not has_files:
        raise CheckpointError(
            f"umT5 tokenizer folder {str(tok)!r} is missing or has no tokenizer files; the "
            f"official folder ships it as {WAN_TOKENIZER_DIR}/ beside {WAN_T5_FILE}, or pass "
            "tokenizer= a folder with tokenizer.json / spiece.model"
        )
    return weights, tok


def clean_prompt(text: str) -> str:
    """Wan's 'whitespace' prompt cleaning, which Ovi's text encoder applies before tokenizing.

    ftfy repairs mis-decoded text and normalizes character widths and quotes, HTML entities
    are unescaped twice, and runs of whitespace become one space. Skipping it changes the
    tokens of prompts with such characters, and so the embeddings.
    """
    try:
        import ftfy
    except ImportError as e:
        raise ConfigError(
            "the umT5 text encoder cleans prompts like Wan/Ovi with the 'ftfy' package; "
            "install it with `pip install ftfy`"
        ) from e
    text = html.unescape(html.unescape(ftfy.fix_text(text))).strip()
    return re.sub(r"\s+", " ", text).strip()
