"""umT5 from the official Wan/Ovi files: strict key map, sizes from shapes, and numerics
checked against an independent forward of Wan's T5 encoder on the Wan-format state dict."""

import gc
import logging
import math
import shutil
import weakref

import pytest
import torch
from tiny_umt5 import (
    TINY,
    TOKENIZER_DIR,
    WAN_T5_FILE,
    tiny_wan_state_dict,
    vocab_rows,
    wan_encoder_shapes,
    write_tiny_wan_umt5,
)

from duet.errors import CheckpointError, ConfigError
from duet.text.encoder import CachedEncoder, TextEncoder, UMT5Encoder, load_text_encoder
from duet.text.umt5 import clean_prompt, infer_dims, load_wan_umt5, read_wan_state_dict


@pytest.fixture(scope="module")
def wan_folder(tmp_path_factory):
    return write_tiny_wan_umt5(tmp_path_factory.mktemp("Wan2.2-TI2V-5B"))


@pytest.fixture(scope="module")
def enc32(wan_folder):
    """The tiny encoder in float32, loaded once for the module."""
    enc = load_text_encoder("umt5-xxl", path=wan_folder, dtype=torch.float32)
    enc.encode(["warm up"])
    return enc


# ---- an independent reference: Wan's T5 encoder semantics on the Wan state dict ----


def _bucket(rel: torch.Tensor, num_buckets: int, max_distance: int = 128) -> torch.Tensor:
    """Bidirectional T5 bucket of key-minus-query offsets: half the buckets per direction,
    exact below a quarter of them, then logarithmic up to max_distance."""
    half = num_buckets // 2
    exact = half // 2
    dist = rel.abs()
    log_part = torch.log(dist.clamp(min=1).float() / exact) / math.log(max_distance / exact)
    far = (exact + (log_part * (half - exact)).long()).clamp(max=half - 1)
    return (rel > 0).long() * half + torch.where(dist < exact, dist, far)


def wan_reference(state: dict, ids: list[int], text_len: int) -> torch.Tensor:
    """Wan's forward as Ovi calls it: ids padded to text_len with a key mask, then cut."""
    sd = {k: v.float() for k, v in state.items()}
    n, t = len(ids), text_len
    padded = torch.zeros(t, dtype=torch.long)
    padded[:n] = torch.tensor(ids)
    keep = torch.arange(t) < n  # [T] keys that are real tokens
    layers = 1 + max(int(k.split(".")[1]) for k in sd if k.startswith("blocks."))
    buckets, heads = sd["blocks.0.pos_embedding.embedding.weight"].shape
    bucket = _bucket(torch.arange(t)[None, :] - torch.arange(t)[:, None], buckets)  # [T, T]

    def rms(x, w):  # T5 norm: no mean subtraction, no bias
        return w * x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6)

    def gelu_tanh(x):
        return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))

    x = sd["token_embedding.weight"][padded]  # [T, D]
    for i in range(layers):
        p = f"blocks.{i}."
        h = rms(x, sd[p + "norm1.weight"])
        q, k, v = (
            (h @ sd[p + f"attn.{name}.weight"].T).view(t, heads, -1) for name in "qkv"
        )  # [T, H, C]
        logits = torch.einsum("ihc,jhc->hij", q, k)  # no 1/sqrt(C): T5 does not scale
        logits = logits + sd[p + "pos_embedding.embedding.weight"][bucket].permute(2, 0, 1)
        logits = logits.masked_fill(~keep, torch.finfo(logits.dtype).min)
        attn = torch.einsum("hij,jhc->ihc", logits.softmax(-1), v).reshape(t, -1)
        x = x + attn @ sd[p + "attn.o.weight"].T
        h = rms(x, sd[p + "norm2.weight"])
        gate = gelu_tanh(h @ sd[p + "ffn.gate.0.weight"].T)
        x = x + ((h @ sd[p + "ffn.fc1.weight"].T) * gate) @ sd[p + "ffn.fc2.weight"].T
    return rms(x, sd["norm.weight"])[:n]


def test_matches_wan_reference_forward(enc32, wan_folder):
    state = torch.load(wan_folder / WAN_T5_FILE, weights_only=True)
    prompts = [
        "a cat says hello",
        "rain",
        "the dog barks on a roof, rain falls on the roof, a cat says hello to the dog",
        " ".join(["rain falls"] * 70),  # > 128 tokens: the far buckets and their clamp
    ]
    ids = enc32._tokenizer(prompts)["input_ids"]
    assert len(ids[3]) > 140
    out = enc32.encode(prompts)
    for i, emb in enumerate(out):
        ref = wan_reference(state, ids[i], text_len=512)
        assert emb.shape == ref.shape == (len(ids[i]), TINY["dim"])
        torch.testing.assert_close(emb, ref, atol=1e-5, rtol=1e-5)
    # the reference is sensitive to what the map could get wrong: swapped gate/fc1 differ
    swapped = dict(state)
    for b in range(TINY["num_layers"]):
        g, f = f"blocks.{b}.ffn.gate.0.weight", f"blocks.{b}.ffn.fc1.weight"
        swapped[g], swapped[f] = state[f], state[g]
    assert (wan_reference(swapped, ids[0], 512) - out[0]).abs().max() > 1e-2


# ---- loading ----


def test_loads_strictly_with_sizes_from_shapes(wan_folder, enc32):
    model = enc32._model
    cfg = model.config
    assert (cfg.vocab_size, cfg.d_model, cfg.d_ff, cfg.num_layers) == (vocab_rows(), 32, 48, 2)
    assert (cfg.num_heads, cfg.d_kv, cfg.relative_attention_num_buckets) == (4, 6, 32)
    assert model.encoder.embed_tokens.weight is model.shared.weight  # one embedding table
    assert not any(p.is_meta or p.requires_grad for p in model.parameters())
    assert not model.training
    state = tiny_wan_state_dict()
    torch.testing.assert_close(  # gate -> wi_0 (through GELU), fc1 -> wi_1, fc2 -> wo
        model.encoder.block[1].layer[1].DenseReluDense.wi_0.weight,
        state["blocks.1.ffn.gate.0.weight"].float(), rtol=0, atol=0,
    )
    bias = model.encoder.block[0].layer[0].SelfAttention.relative_attention_bias.weight
    assert torch.equal(bias, state["blocks.0.pos_embedding.embedding.weight"].float())


def test_umt5_xxl_shapes_map_onto_transformers_umt5_xxl(tmp_path):
    """The real sizes (Wan's umt5_xxl(): vocab 256384, dim 4096, dim_attn 4096, dim_ffn 10240,
    64 heads, 24 layers, 32 buckets) as meta tensors: no memory, same code path."""
    shapes = wan_encoder_shapes(256384, 4096, 4096, 10240, 64, 24, 32)
    path = tmp_path / WAN_T5_FILE
    meta = {k: torch.empty(s, dtype=torch.bfloat16, device="meta") for k, s in shapes.items()}
    torch.save(meta, path)
    model = load_wan_umt5(path, device="meta")  # meta in, meta out: shapes only
    c = model.config
    assert (c.vocab_size, c.d_model, c.d_ff, c.d_kv, c.num_heads, c.num_layers) == (
        256384, 4096, 10240, 64, 64, 24)
    assert (c.relative_attention_num_buckets, c.relative_attention_max_distance) == (32, 128)
    assert (c.is_gated_act, c.dense_act_fn, c.layer_norm_epsilon) == (True, "gelu_new", 1e-6)
    n_file = sum(math.prod(s) for s in shapes.values())
    assert sum(p.numel() for p in model.parameters()) == n_file  # 5.68e9: every tensor, once
    assert model.shared.weight.dtype == torch.bfloat16


def test_load_paths_and_shapes(wan_folder):
    by_file = UMT5Encoder(wan_folder / WAN_T5_FILE)  # tokenizer found beside the .pth
    explicit = UMT5Encoder.from_wan(wan_folder / WAN_T5_FILE, wan_folder / TOKENIZER_DIR,
                                    max_length=3)
    assert isinstance(by_file, TextEncoder)
    assert (by_file.dim, by_file.max_length) == (32, 512)
    assert by_file.wan_weights == wan_folder / WAN_T5_FILE
    assert by_file._model is None  # lazy: checked at construction, loaded on first encode
    a, b, empty = by_file.encode(["a cat says hello", "rain", ""])
    assert (a.shape, b.shape, empty.shape) == ((5, 32), (2, 32), (1, 32))  # words + </s>
    assert a.dtype == torch.bfloat16  # Wan's dtype by default
    (cut,) = explicit.encode(["the dog barks on a roof"])
    assert cut.shape == (3, 32)


def test_truncation_keeps_eos_and_warns(enc32, wan_folder, caplog):
    enc = UMT5Encoder(wan_folder, max_length=4, dtype=torch.float32)
    with caplog.at_level(logging.WARNING, logger="duet.text.encoder"):
        (emb,) = enc.encode(["the dog barks on a roof"])
    assert emb.shape == (4, 32)
    assert "7 tokens long; dropped the last 3 tokens" in caplog.text
    assert enc._tokenizer(["the dog barks on a roof"], truncation=True, max_length=4)[
        "input_ids"][0][-1] == 1  # </s> stays last, as Wan's tokenizer call leaves it


def test_prompts_are_cleaned_like_wan(enc32):
    assert clean_prompt("  rain\n\t falls &amp;amp; roof ") == "rain falls & roof"
    a, b = enc32.encode(["  rain \n\n falls &amp; roof  ", "rain falls & roof"])
    assert torch.equal(a, b)


# ---- errors ----


def _save_variant(tmp_path, wan_folder, change) -> object:
    """A copy of the tiny folder whose state dict went through `change`."""
    folder = tmp_path / "bad"
    shutil.copytree(wan_folder, folder)
    state = tiny_wan_state_dict()
    change(state)
    torch.save(state, folder / WAN_T5_FILE)
    return folder


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda s: s.pop("blocks.1.attn.k.weight"),
         r"missing \(1\): blocks\.1\.attn\.k\.weight"),
        (lambda s: s.update({"blocks.0.attn.extra.weight": torch.zeros(2)}),
         r"unexpected \(1\): blocks\.0\.attn\.extra\.weight"),
        (lambda s: s.update({"blocks.1.ffn.fc2.weight": torch.zeros(48, 32)}),
         r"wrong shape \(1\): blocks\.1\.ffn\.fc2\.weight \(48, 32\) \(expected \(32, 48\)\)"),
        (lambda s: s.update({"pos_embedding.embedding.weight": s.pop(
            "blocks.0.pos_embedding.embedding.weight")}),
         "one shared position bias: a T5 encoder, not umT5"),
        (lambda s: [s.update({"encoder." + k: s.pop(k)}) for k in list(s)],
         "not a Wan umT5 encoder state dict: token_embedding.weight is missing"),
        (lambda s: s.update({"norm.weight": torch.zeros(32, dtype=torch.int8)}),
         r"1 tensors are not floating point \(norm\.weight\)"),
    ],
    ids=["missing", "unexpected", "shape", "shared-bias", "prefixed", "int"],
)
def test_bad_state_dicts_name_file_and_keys(tmp_path, wan_folder, change, message):
    folder = _save_variant(tmp_path, wan_folder, change)
    with pytest.raises(CheckpointError, match=message) as err:
        load_text_encoder("umt5-xxl", path=folder)
    assert str(folder / WAN_T5_FILE) in str(err.value)


def test_truncated_and_foreign_files(tmp_path, wan_folder):
    good = (wan_folder / WAN_T5_FILE).read_bytes()
    path = tmp_path / WAN_T5_FILE
    path.write_bytes(good[: len(good) // 2])
    with pytest.raises(CheckpointError, match="truncated or damaged: download .* again"):
        read_wan_state_dict(path)
    torch.save([torch.zeros(1)], path)
    with pytest.raises(CheckpointError, match="holds a list, not a flat state dict"):
        read_wan_state_dict(path)
    with pytest.raises(CheckpointError, match="not found"):
        read_wan_state_dict(tmp_path / "nope.pth")


def test_legacy_torch_save_format_still_loads(tmp_path):
    """Pre-zip torch.save files cannot be memory-mapped; they are read whole instead."""
    path = tmp_path / WAN_T5_FILE
    torch.save(tiny_wan_state_dict(), path, _use_new_zipfile_serialization=False)
    state = read_wan_state_dict(path)
    assert infer_dims(state, path).num_layers == 2


def test_folder_errors_list_what_was_looked_for(tmp_path, wan_folder):
    with pytest.raises(CheckpointError, match="has no config.json .* and no " + WAN_T5_FILE) as err:
        load_text_encoder("umt5-xxl", path=tmp_path)
    assert str(tmp_path / "config.json") in str(err.value)
    no_tok = tmp_path / "no-tokenizer"
    no_tok.mkdir()
    shutil.copy(wan_folder / WAN_T5_FILE, no_tok / WAN_T5_FILE)
    with pytest.raises(CheckpointError, match="tokenizer folder .*google/umt5-xxl.* is missing"):
        UMT5Encoder(no_tok)
    with pytest.raises(CheckpointError, match="umT5 path .*nope.* does not exist"):
        UMT5Encoder(tmp_path / "nope")
    with pytest.raises(ConfigError, match="official Wan2.2-TI2V-5B folder"):
        load_text_encoder("umt5-xxl")


# ---- unload ----


def test_unload_frees_weights_and_next_encode_reloads(wan_folder, caplog):
    enc = CachedEncoder(UMT5Encoder(wan_folder, dtype=torch.float32))
    (before,) = enc.encode(["a cat says hello"])
    inner = enc.encoder
    ref = weakref.ref(inner._model.shared.weight)
    with caplog.at_level(logging.INFO, logger="duet.text.encoder"):
        enc.unload()
    assert "a later encode() loads it again" in caplog.text
    gc.collect()
    assert inner._model is None and ref() is None  # nothing else held the weights
    (cached,) = enc.encode(["a cat says hello"])
    assert cached is before and inner._model is None  # cache hit: no reload
    enc.encode(["rain"])  # a miss reloads the weights
    assert inner._model is not None
    torch.testing.assert_close(inner.encode(["a cat says hello"])[0], before, atol=0, rtol=0)
    enc.unload()
    inner.unload()  # twice is harmless
