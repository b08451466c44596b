"""The training loop: learning, exact resume, checkpoint fallback, export, numerics options."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import pytest
import torch

from duet.errors import ConfigError
from duet.model import TwinModel
from duet.presets import get_preset
from duet.train import BatchPlan, LatentDataset, train
from duet.train.parallel import Runtime
from duet.train.setup import Ema, build_model, build_optimizer, initial_state
from duet.train.trainer import lr_at, train_step
from duet.weights import load_into, load_weights, read_config

from train_helpers import TINY_MODEL, synthetic_tensors


class Interrupt(Exception):
    pass


def _run(cfg, dataset, stop_at: int | None = None) -> list[dict]:
    """Train; with stop_at, crash right after that step (as a kill would)."""
    records: list[dict] = []

    def callback(record: dict) -> None:
        records.append(record)
        if record["step"] == stop_at:
            raise Interrupt

    try:
        train(cfg, dataset=dataset, callback=callback)
    except Interrupt:
        pass
    return records


def _weights(out: str, step: int, name: str = "model") -> dict[str, torch.Tensor]:
    return load_weights(Path(out) / "checkpoints" / f"step_{step:08d}" / f"{name}.safetensors")


def _assert_bit_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    bad = [k for k in a if not torch.equal(a[k], b[k])]
    assert not bad, f"{len(bad)} tensors differ, e.g. {bad[:3]}"


def test_lr_schedule():
    from duet.train import TrainConfig
    cfg = TrainConfig(steps=100, warmup_steps=10, lr=1.0, min_lr=0.1)
    lrs = [lr_at(s, cfg) for s in range(100)]
    assert lrs[0] == pytest.approx(1 / 11) and lrs[9] == pytest.approx(10 / 11) and lrs[10] == 1.0
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:])) and lrs[-1] > 0.1
    assert lr_at(55, cfg) == pytest.approx(0.55) and lr_at(100, cfg) == 0.1


def test_overfits_a_fixed_batch(make_config, dataset):
    """The real training step on one fixed batch (same items, noise and t every step)."""
    cfg = make_config(lr=3e-3)
    rt = Runtime(torch.device("cpu"))
    model, _ = build_model(cfg, rt, initial_state(cfg, rt))
    opt = build_optimizer(model, cfg)
    plan = BatchPlan(len(dataset), cfg.batch_size)
    losses = [train_step(model, opt, dataset, plan, 0, cfg.flow(), cfg, rt)["loss"] for _ in range(30)]
    assert losses[-1] < 0.5 * losses[0], losses


def test_resume_is_bit_exact_and_loses_at_most_one_interval(make_config, dataset):
    full = make_config("full", steps=8)
    ref = _run(full, dataset)
    cut = make_config("cut", steps=8)
    first = _run(cut, dataset, stop_at=5)  # killed after step 5; the last checkpoint is step 3
    assert len(first) == 5 and (Path(cut.out_dir) / "checkpoints" / "step_00000003").is_dir()
    second = _run(cut, dataset)
    assert [r["step"] for r in second] == [4, 5, 6, 7, 8]  # steps 4-5 redone, nothing more
    assert [r["loss"] for r in first[:3] + second] == [r["loss"] for r in ref]
    for name in ("model", "ema"):
        _assert_bit_equal(_weights(full.out_dir, 8, name), _weights(cut.out_dir, 8, name))
    _assert_bit_equal(load_weights(Path(full.out_dir) / "final" / "model.safetensors"),
                      load_weights(Path(cut.out_dir) / "final" / "model.safetensors"))
    opt_a = torch.load(Path(full.out_dir) / "checkpoints/step_00000008/optimizer.pt", weights_only=True)
    opt_b = torch.load(Path(cut.out_dir) / "checkpoints/step_00000008/optimizer.pt", weights_only=True)
    for k, state in opt_a["state"].items():
        assert all(torch.equal(v, opt_b["state"][k][s]) for s, v in state.items())


def test_corrupt_latest_checkpoint_falls_back_to_the_previous(make_config, dataset, caplog):
    ref = _run(make_config("ref", checkpoint_every=2), dataset)
    cfg = make_config("cut", checkpoint_every=2)
    _run(cfg, dataset, stop_at=5)  # checkpoints at steps 2 and 4
    root = Path(cfg.out_dir) / "checkpoints"
    weights = root / "step_00000004" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-3] ^= 0xFF  # one flipped byte: same size, different hash
    weights.write_bytes(bytes(data))
    (root / ".tmp-step_00000006").mkdir()  # a save that was killed half-way
    (root / "step_00000005").mkdir()  # a folder without a manifest
    with caplog.at_level(logging.WARNING, logger="duet.train"):
        again = _run(cfg, dataset)
    msgs = " ".join(r.getMessage() for r in caplog.records)
    assert "step_00000004 is unusable (model.safetensors does not match its sha256" in msgs
    assert "step_00000005 is unusable (no manifest" in msgs
    assert [r["step"] for r in again] == [3, 4, 5, 6]  # resumed from step 2
    assert [r["loss"] for r in again] == [r["loss"] for r in ref[2:]]
    _assert_bit_equal(_weights(make_config("ref").out_dir, 6), _weights(cfg.out_dir, 6))
    assert not (root / ".tmp-step_00000006").exists()
    assert sorted(p.name for p in root.iterdir()) == [
        "step_00000002", "step_00000004", "step_00000004.corrupt", "step_00000005.corrupt",
        "step_00000006"]


def test_keeps_the_last_k_checkpoints(make_config, dataset):
    cfg = make_config(checkpoint_every=1, keep_checkpoints=2, steps=4)
    _run(cfg, dataset)
    names = sorted(p.name for p in (Path(cfg.out_dir) / "checkpoints").iterdir())
    assert names == ["step_00000003", "step_00000004"]
    trainer = json.loads((Path(cfg.out_dir) / "checkpoints/step_00000004/trainer.json").read_text())
    assert trainer["data_position"] == 4 and trainer["samples_seen"] == 16
    assert len(trainer["history"]) == 4


def test_exports_an_ema_bundle_and_a_loss_curve(make_config, dataset):
    cfg = make_config(steps=3, export_dtype="bfloat16", ema_decay=0.5)
    bundle = train(cfg, dataset=dataset)
    assert bundle == Path(cfg.out_dir) / "final"
    preset, extra = read_config(bundle)
    assert preset.model == cfg.twin() and extra["random_init"] is False
    weights = load_weights(bundle / "model.safetensors")
    assert all(v.dtype == torch.bfloat16 for v in weights.values())
    load_into(TwinModel.from_config(preset.model, device="meta"), weights)  # strict: keys and shapes
    ema, model = _weights(cfg.out_dir, 3, "ema"), _weights(cfg.out_dir, 3)
    name = "video_model.blocks.0.self_attn.q.weight"
    assert torch.equal(weights[name], ema[name].bfloat16()) and not torch.equal(ema[name], model[name])
    png = (Path(cfg.out_dir) / "loss.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 1000
    assert (Path(cfg.out_dir) / "losses.csv").read_text().count("\n") == 4


def test_gradient_checkpointing_and_accumulation_give_the_same_losses(make_config, dataset):
    base = _run(make_config("base", steps=3), dataset)
    ckpt = _run(make_config("gc", steps=3, gradient_checkpointing=True), dataset)
    accum = _run(make_config("accum", steps=3, grad_accum=2), dataset)
    assert [r["loss"] for r in ckpt] == [r["loss"] for r in base]
    for a, b in zip(accum, base):  # same global batch, same noise; only summation order differs
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-6)
        assert a["grad_norm"] == pytest.approx(b["grad_norm"], rel=1e-5)


def test_audio_stage_on_audio_only_data_and_bf16(make_config):
    cfg = make_config(stage="audio", steps=2, bf16=True)
    records = _run(cfg, LatentDataset(synthetic_tensors(4, video=False)))
    assert all(r["video"] is None and math.isfinite(r["audio"]) for r in records)
    assert records[0]["loss"] == records[0]["audio"]  # weights video 0, audio 1


def test_text_dropout_trains_on_the_empty_prompt_the_pipeline_uses_as_negative(make_config):
    """The null context is the preset's own encoding of "", zero-padded as the shards are;
    a bundle whose negative prompt is "" gives the model exactly that context in CFG."""
    from duet.components import build_codecs
    from duet.train.setup import empty_prompt_context

    cfg = make_config(preset="demo", model={**TINY_MODEL, "text_dim": 384}, text_dropout=0.5, steps=2)
    null = empty_prompt_context(cfg, 8)
    _, _, encoder = build_codecs(get_preset("demo"))
    (empty,) = encoder.encode([""])
    assert null.shape == (8, 384) and 1 <= empty.shape[0] < 8
    torch.testing.assert_close(null[: empty.shape[0]], empty.float())
    assert not null[empty.shape[0]:].any()

    data = synthetic_tensors(4)
    data["context"] = torch.randn(4, 5, 384)
    records = _run(cfg, LatentDataset(data))
    assert len(records) == 2 and all(math.isfinite(r["loss"]) for r in records)
    assert empty_prompt_context(make_config(), 8) is None  # off by default

    with pytest.raises(ConfigError, match="text_dropout.*umt5"):  # tiny: umT5 needs its weights
        empty_prompt_context(make_config(text_dropout=0.1), 8)


def test_ema_warmup_lets_a_short_run_export_its_trained_weights():
    """(1 + n) / (10 + n) caps the decay early on: after 100 steps of 0.999 the plain EMA
    still holds 90 % of the start, the warmed-up one under 1 %."""
    model = torch.nn.Linear(1, 1, bias=False)
    torch.nn.init.zeros_(model.weight)
    plain, warm = Ema(model, 0.999), Ema(model, 0.999, warmup=True)
    with torch.no_grad():
        model.weight.fill_(1.0)  # trained weights, reached at once
    for n in range(1, 101):
        plain.update(model, n)
        warm.update(model, n)
    assert plain.shadow["weight"].item() == pytest.approx(1 - 0.999 ** 100, rel=1e-4)
    prod = math.prod((1 + n) / (10 + n) for n in range(1, 101))
    assert warm.shadow["weight"].item() == pytest.approx(1 - prod, rel=1e-4)
    assert warm.shadow["weight"].item() > 0.99
