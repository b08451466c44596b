"""LoRA via peft: adapters train while the base is untouched, export as adapter files only,
merge at generation (scale 0 = base), and are refused by name on another base model."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
import torch

from duet.errors import CheckpointError, ConfigError
from duet.lora import (ADAPTER_CONFIG, ADAPTER_WEIGHTS, LoraSpec, adapter_arg, adapters_merged,
                       add_lora, load_adapter, merge_adapter)
from duet.model import ModalityInput, TwinModel
from duet.train import LatentDataset, TrainConfig, train
from duet.weights import BUNDLE_WEIGHTS, load_into, load_weights, read_config, save_weights

from train_helpers import TINY_MODEL, synthetic_tensors


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _model(bundle: Path) -> TwinModel:
    preset, _ = read_config(bundle)
    model = TwinModel.from_config(preset.model)
    load_into(model, load_weights(bundle / BUNDLE_WEIGHTS), dtype=torch.float32)
    return model.eval()


def _outputs(model: TwinModel) -> tuple[torch.Tensor, torch.Tensor]:
    d = synthetic_tensors(2, seed=9)
    t = torch.tensor([500.0, 200.0])
    with torch.no_grad():
        return model(ModalityInput(d["video"], t, d["context"]), ModalityInput(d["audio"], t, d["context"]))


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("base")
    cfg = TrainConfig.from_dict(dict(model=TINY_MODEL, steps=4, batch_size=4, lr=1e-3, warmup_steps=1,
                                     progress=False, out_dir=str(out)))
    return train(cfg, dataset=LatentDataset(synthetic_tensors()))


def test_lora_learns_a_new_concept_and_leaves_the_base_untouched(base, tmp_path):
    before = _sha(base / BUNDLE_WEIGHTS)
    concept = synthetic_tensors(8, seed=5)  # a concept the base never saw: a fixed pattern
    concept["video"] = 0.1 * concept["video"] + torch.linspace(-1.5, 1.5, 4).view(1, 4, 1, 1, 1)
    concept["audio"] = 0.1 * concept["audio"] + torch.linspace(1.5, -1.5, 6)
    new_concept = LatentDataset(concept)
    losses = []
    cfg = TrainConfig.from_dict(dict(
        model=TINY_MODEL, init_from=str(base), lora={"rank": 4, "alpha": 8, "targets": ["self_attn", "ffn"]},
        steps=40, batch_size=4, lr=1e-2, warmup_steps=2, ema_decay=0.0, checkpoint_every=20,
        progress=False, out_dir=str(tmp_path / "lora")))
    adapter_dir = train(cfg, dataset=new_concept, callback=lambda r: losses.append(r["loss"]))
    assert sum(losses[-5:]) / 5 < 0.6 * sum(losses[:5]) / 5  # the adapters learn
    assert _sha(base / BUNDLE_WEIGHTS) == before  # the base bundle is not rewritten
    files = sorted(p.name for p in adapter_dir.iterdir())
    assert files == [ADAPTER_CONFIG, ADAPTER_WEIGHTS]  # an adapter, not a model
    adapter = load_adapter(adapter_dir)
    assert all(".lora_A." in k or ".lora_B." in k for k in adapter.weights)
    assert len(adapter.weights) == 2 * 2 * 2 * 6  # 2 towers x 2 blocks x (q,k,v,o,ffn.0,ffn.2) x A/B

    plain = _model(base)
    ref = _outputs(plain)
    merge_adapter(plain, adapter, scale=0.0)
    assert all(torch.equal(a, b) for a, b in zip(ref, _outputs(plain)))  # scale 0 = the base
    merge_adapter(plain, adapter, scale=1.0)
    tuned = _outputs(plain)
    assert (tuned[0] - ref[0]).abs().max() > 1e-3 and (tuned[1] - ref[1]).abs().max() > 1e-3
    merge_adapter(plain, adapter, scale=-1.0)  # and taken out again
    torch.testing.assert_close(_outputs(plain), ref, atol=1e-5, rtol=1e-5)


def test_adapter_for_another_base_model_is_refused_by_layer(base, tmp_path):
    cfg = TrainConfig.from_dict(dict(model=TINY_MODEL, init_from=str(base), lora={"rank": 2},
                                     steps=1, batch_size=4, progress=False, out_dir=str(tmp_path / "a")))
    adapter = load_adapter(train(cfg, dataset=LatentDataset(synthetic_tensors())))
    other = TwinModel.from_config(TrainConfig.from_dict(dict(model={**TINY_MODEL, "dim": 64})).twin())
    with pytest.raises(CheckpointError, match=r"does not fit this base model: .*self_attn.q: adapter made for a \[32, 32\]"):
        merge_adapter(other, adapter)


def test_convert_merges_an_adapter_into_a_bundle(base, tmp_path, capsys):
    """`duet convert BASE --lora ADAPTER`: the bundle a later stage trains on, equal to merging
    at load; an adapter for another shape, or a directory that is no adapter, is one line."""
    from duet.cli import main

    cfg = TrainConfig.from_dict(dict(model=TINY_MODEL, init_from=str(base), lora={"rank": 2},
                                     steps=2, batch_size=4, lr=1e-2, ema_decay=0.0, progress=False,
                                     out_dir=str(tmp_path / "a")))
    adapter_dir = train(cfg, dataset=LatentDataset(synthetic_tensors()))
    out = tmp_path / "merged"
    assert main(["convert", str(base), "--lora", f"{adapter_dir}:0.5", "-o", str(out)]) == 0
    assert "merged 1 LoRA adapter" in capsys.readouterr().out
    expected = _model(base)
    merge_adapter(expected, load_adapter(adapter_dir), scale=0.5)
    merged, ref = _outputs(_model(out)), _outputs(_model(base))
    assert all(torch.equal(a, b) for a, b in zip(merged, _outputs(expected)))
    assert (merged[0] - ref[0]).abs().max() > 1e-4
    assert f"merged LoRA {adapter_dir} at scale 0.5" in read_config(out)[1]["note"]
    # a bf16 base merged into a float32 bundle: the update is not rounded to bf16 on the way
    assert main(["convert", str(base), "--dtype", "bfloat16", "-o", str(tmp_path / "bf16")]) == 0
    assert main(["convert", str(tmp_path / "bf16"), "--lora", str(adapter_dir), "--dtype", "float32",
                 "-o", str(tmp_path / "bf16-merged")]) == 0
    expected = _model(tmp_path / "bf16")
    merge_adapter(expected, load_adapter(adapter_dir))
    assert all(torch.equal(a, b) for a, b in zip(_outputs(_model(tmp_path / "bf16-merged")),
                                                 _outputs(expected)))
    capsys.readouterr()

    other = tmp_path / "other"  # the base with one adapted layer of another shape
    shutil.copytree(base, other)
    state = load_weights(other / BUNDLE_WEIGHTS)
    state["video_model.blocks.0.self_attn.q.weight"] = torch.zeros(3, 3)
    save_weights(state, other / BUNDLE_WEIGHTS)
    assert main(["convert", str(other), "--lora", str(adapter_dir), "-o", str(tmp_path / "x")]) == 2
    assert "blocks.0.self_attn.q: adapter made for a [32, 32] layer, this model's is [3, 3]" in capsys.readouterr().err
    assert main(["convert", str(base), "--lora", str(base), "-o", str(tmp_path / "y")]) == 2
    assert "is not a LoRA adapter" in capsys.readouterr().err
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


@pytest.mark.parametrize("lora, needle", [
    ({"rank": 4, "blocks": [7]}, "match no linear layer"),
    ({"targets": ["mlp"]}, "choose from"),
    ({"rank": 0}, "rank >= 1"),
    ({"rnak": 4}, "unknown lora keys"),
])
def test_bad_lora_config_fails_before_compute(base, tmp_path, lora, needle):
    with pytest.raises(ConfigError, match=needle):
        cfg = TrainConfig.from_dict(dict(model=TINY_MODEL, init_from=str(base), lora=lora, steps=1,
                                         batch_size=4, progress=False, out_dir=str(tmp_path / "b")))
        train(cfg, dataset=LatentDataset(synthetic_tensors()))
    assert not (tmp_path / "b" / "checkpoints").exists()


def test_lora_needs_a_base_model():
    with pytest.raises(ConfigError, match="set init_from"):
        TrainConfig.from_dict(dict(model=TINY_MODEL, lora={}))


def test_default_spec_targets_attention_and_fusion():
    spec = LoraSpec()
    import re
    for name in ("video_model.blocks.3.self_attn.q", "audio_model.blocks.0.cross_attn.k_fusion",
                 "video_model.blocks.1.cross_attn.o"):
        assert re.fullmatch(spec.pattern(), name)
    assert not re.fullmatch(spec.pattern(), "video_model.blocks.1.ffn.0")
    assert not re.fullmatch(spec.pattern(), "video_model.head.head")


@pytest.mark.parametrize("spec, expected", [
    ("runs/rl/final", ("runs/rl/final", 1.0)),
    ("runs/rl/final:0.5", ("runs/rl/final", 0.5)),
    ("C:/runs/a:b/final:-1", ("C:/runs/a:b/final", -1.0)),
    ("runs/a:b/final", ("runs/a:b/final", 1.0)),
    (":0.5", (":0.5", 1.0)),
])
def test_adapter_arg_reads_a_numeric_tail_as_the_scale(spec, expected):
    assert adapter_arg(spec) == expected


def test_adapters_merged_matches_the_adapter_path_and_restores_the_base_exactly(base):
    model = _model(base)
    layers = add_lora(model, LoraSpec(rank=4, alpha=8, targets=("self_attn", "ffn")))
    with torch.no_grad():  # a trained-looking adapter: B != 0, so the merge changes W
        for name, p in model.named_parameters():
            if ".lora_B" in name:
                p.copy_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(len(name))))
    weights = {n: p.detach().clone() for n, p in model.named_parameters()}
    unmerged = _outputs(model)
    for _ in range(2):  # a second round trip must not drift either
        with adapters_merged(model) as merged:
            assert merged == layers
            inside = _outputs(model)
            base_w = model.video_model.blocks[0].self_attn.q.base_layer.weight
            assert not torch.equal(base_w, weights["video_model.blocks.0.self_attn.q.base_layer.weight"])
        for got, want in zip(inside, unmerged):
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
        for n, p in model.named_parameters():
            assert torch.equal(p, weights[n]), n
    assert not any(getattr(m, "merged", False) for m in model.modules())
    for got, want in zip(_outputs(model), unmerged):
        assert torch.equal(got, want)


def test_adapters_merged_is_a_no_op_without_adapters(base):
    model = _model(base)
    before = _outputs(model)
    with adapters_merged(model) as merged:
        assert merged == 0
        for got, want in zip(_outputs(model), before):
            assert torch.equal(got, want)
