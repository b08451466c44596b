"""A BERT encoder that reads Hugging Face BERT folders (config.json, model.safetensors,
tokenizer.json) without importing transformers.

The demo model's text encoder is MiniLM-L6, a 6-layer BERT. Importing transformers and
building the model through `AutoModel` costs about 1.7 s on 2 CPU cores, a quarter of the
whole default clip, for a 22M-parameter encoder whose forward takes milliseconds. The
forward here is the standard post-LayerNorm BERT (absolute positions, token type 0, exact
GELU) on torch SDPA; `tests/text/test_bert.py` holds it to transformers' `BertModel` on the
same weights. The tokenizer is the folder's `tokenizer.json`, read by the `tokenizers`
library that transformers itself uses for its fast tokenizers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from duet.errors import CheckpointError

if TYPE_CHECKING:
    from tokenizers import Tokenizer


@dataclass(frozen=True)
class BertConfig:
    """The fields of a Hugging Face BERT config.json that the forward uses."""

    vocab_size: int = 30522
    hidden_size: int = 384
    num_hidden_layers: int = 6
    num_attention_heads: int = 12
    intermediate_size: int = 1536
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    hidden_act: str = "gelu"
    position_embedding_type: str = "absolute"

    @classmethod
    def from_folder(cls, path: Path) -> BertConfig:
        """The config in `path/config.json`; a folder of another architecture is refused."""
        file = path / "config.json"
        if not file.is_file():
            raise CheckpointError(
                f"text encoder folder {str(path)!r} has no config.json; pass the folder "
                "that holds the encoder's config.json, weights and tokenizer files"
            )
        raw = json.loads(file.read_text())
        config = cls(**{f.name: raw[f.name] for f in fields(cls) if f.name in raw})
        if raw.get("model_type", "bert") != "bert" or config.hidden_act != "gelu" \
                or config.position_embedding_type != "absolute":
            raise CheckpointError(
                f"{file} describes a {raw.get('model_type')!r} model with "
                f"hidden_act={config.hidden_act!r}, position_embedding_type="
                f"{config.position_embedding_type!r}; this encoder reads BERT folders with "
                "'gelu' and 'absolute' positions (MiniLM is one)"
            )
        return config


class BertLayer(nn.Module):
    """Self-attention then a GELU MLP, each followed by residual add and LayerNorm (post-LN)."""

    def __init__(self, c: BertConfig) -> None:
        super().__init__()
        d = c.hidden_size
        self.heads = c.num_attention_heads
        self.query, self.key, self.value = nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d)
        self.attn_out = nn.Linear(d, d)
        self.attn_norm = nn.LayerNorm(d, eps=c.layer_norm_eps)
        self.up = nn.Linear(d, c.intermediate_size)
        self.down = nn.Linear(c.intermediate_size, d)
        self.mlp_norm = nn.LayerNorm(d, eps=c.layer_norm_eps)

    def forward(self, x: Tensor, mask: Tensor | None) -> Tensor:
        b, n, d = x.shape
        q, k, v = (p(x).view(b, n, self.heads, -1).transpose(1, 2) for p in (self.query, self.key, self.value))
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask).transpose(1, 2).reshape(b, n, d)
        x = self.attn_norm(x + self.attn_out(a))
        return self.mlp_norm(x + self.down(F.gelu(self.up(x))))


class BertEncoder(nn.Module):
    """Token ids `[B, L]` to last hidden states `[B, L, hidden_size]`."""

    # Hugging Face key -> ours, per layer; the embedding and pooler keys are handled apart.
    _LAYER_KEYS = {
        "attention.self.query": "query", "attention.self.key": "key",
        "attention.self.value": "value", "attention.output.dense": "attn_out",
        "attention.output.LayerNorm": "attn_norm", "intermediate.dense": "up",
        "output.dense": "down", "output.LayerNorm": "mlp_norm",
    }

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.config = config
        d = config.hidden_size
        # Bare tables, not nn.Embedding: its normal_ init on the meta device (where
        # from_folder builds) imports torch._dynamo, and the weights are loaded anyway.
        self.word = nn.Parameter(torch.empty(config.vocab_size, d))
        self.position = nn.Parameter(torch.empty(config.max_position_embeddings, d))
        self.token_type = nn.Parameter(torch.empty(config.type_vocab_size, d))
        self.embed_norm = nn.LayerNorm(d, eps=config.layer_norm_eps)
        self.layers = nn.ModuleList(BertLayer(config) for _ in range(config.num_hidden_layers))

    def forward(self, ids: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        """`attention_mask` `[B, L]` is 1 for tokens and 0 for padding, as in transformers."""
        x = self.word[ids] + self.position[: ids.shape[1]] + self.token_type[0]
        x = self.embed_norm(x)
        mask = None if attention_mask is None else attention_mask[:, None, None, :].bool()
        for layer in self.layers:
            x = layer(x, mask)
        return x

    @classmethod
    def from_folder(cls, path: Path, dtype: torch.dtype = torch.float32,
                    device: torch.device | str = "cpu") -> BertEncoder:
        """The encoder with the weights of a Hugging Face BERT folder's model.safetensors
        (keys with or without the `bert.` prefix); missing or misshapen keys are refused."""
        from safetensors.torch import load_file

        config = BertConfig.from_folder(path)
        file = path / "model.safetensors"
        if not file.is_file():
            raise CheckpointError(f"text encoder folder {str(path)!r} has no model.safetensors")
        with torch.device("meta"):
            model = cls(config)
        hf = {k.removeprefix("bert."): v for k, v in load_file(file, device=str(device)).items()}
        state = {ours: hf.get(theirs) for ours, theirs in model.hf_names().items()}
        expected = model.state_dict()
        bad = [f"{k} ({theirs})" for (k, theirs) in model.hf_names().items()
               if state[k] is None or state[k].shape != expected[k].shape]
        if bad:
            raise CheckpointError(
                f"{file} is not a BERT checkpoint of the shape its config.json gives: missing or "
                f"misshapen {', '.join(bad[:4])}{' …' if len(bad) > 4 else ''}"
            )
        model.load_state_dict({k: v.to(dtype) for k, v in state.items()}, assign=True)
        return model.eval().requires_grad_(False)

    def hf_names(self) -> dict[str, str]:
        """Our parameter names mapped to the Hugging Face BertModel's."""
        names = {"word": "embeddings.word_embeddings.weight",
                 "position": "embeddings.position_embeddings.weight",
                 "token_type": "embeddings.token_type_embeddings.weight",
                 "embed_norm.weight": "embeddings.LayerNorm.weight",
                 "embed_norm.bias": "embeddings.LayerNorm.bias"}
        for i in range(len(self.layers)):
            for theirs, ours in self._LAYER_KEYS.items():
                for p in ("weight", "bias"):
                    names[f"layers.{i}.{ours}.{p}"] = f"encoder.layer.{i}.{theirs}.{p}"
        return names


def load_tokenizer(path: Path) -> Tokenizer:
    """The folder's `tokenizer.json` with its stored padding and truncation switched off
    (sentence-transformers folders pad every prompt to 128): the encoder cuts each prompt to
    its own length."""
    from tokenizers import Tokenizer

    file = path / "tokenizer.json"
    if not file.is_file():
        raise CheckpointError(f"text encoder folder {str(path)!r} has no tokenizer.json")
    tokenizer = Tokenizer.from_file(str(file))
    tokenizer.no_padding()
    tokenizer.no_truncation()
    return tokenizer
