"""The RL loop end to end on a tiny model with the demo codecs: a known reward rises,
resume is exact, the config and the CLI refuse bad input in one line."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
import torch

from duet.errors import ConfigError
from duet.train.rl import RLConfig, train_rl
from duet.weights import load_weights

PROMPT = ("A small red rubber ball falls and bounces on a wooden floor in front of a plain black "
          "wall. <AUDCAP>Dull low rubbery thuds each time a ball hits the floor, otherwise "
          "silent<ENDAUDCAP>")
# the demo preset's codecs and text encoder around a 2-block, 32-wide random model; 5 frames
TINY: dict[str, Any] = dict(
    preset="demo",
    model={"dim": 32, "ffn_dim": 64, "num_heads": 2, "num_layers": 2, "text_len": 16},
    prompts=[PROMPT], prompts_per_step=1, group_size=8, sampling_steps=2, frames=5,
    video_guidance=1.0, audio_guidance=1.0, rewards={"brightness": 1.0}, micro_batch=8,
    progress=False)


def _config(tmp_path: Path, name: str, **changes: Any) -> RLConfig:
    return RLConfig.from_dict({**TINY, "out_dir": str(tmp_path / name), **changes})


class Interrupt(Exception):
    pass


def _run(cfg: RLConfig, stop_at: int | None = None) -> list[dict]:
    records: list[dict] = []

    def callback(record: dict) -> None:
        records.append(record)
        if record["step"] == stop_at:
            raise Interrupt

    try:
        train_rl(cfg, callback)
    except Interrupt:
        pass
    return records


def test_a_known_reward_rises(tmp_path):
    """Mean brightness of the rollouts, the only reward, climbs within 8 steps."""
    cfg = _config(tmp_path, "run", steps=8, lr=2e-2, checkpoint_every=8)
    rewards = [r["reward"] for r in _run(cfg)]
    first, last = sum(rewards[:2]) / 2, sum(rewards[-2:]) / 2
    assert last > first + 0.08, rewards
    out = Path(cfg.out_dir)
    for name in ("rl_log.csv", "loss.png", "rewards.png", "rl.json", "final/model.safetensors",
                 "final/config.json", "checkpoints/step_00000008/manifest.json"):
        assert (out / name).is_file(), name
    with (out / "rl_log.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 8 and float(rows[-1]["reward_brightness"]) == pytest.approx(rewards[-1])


def test_resume_is_bit_exact(tmp_path):
    small = dict(group_size=4, micro_batch=4, steps=3, lr=1e-2, checkpoint_every=1)
    full = _run(_config(tmp_path, "full", **small))
    cut = _config(tmp_path, "cut", **small)
    first = _run(cut, stop_at=2)
    second = _run(cut)
    assert len(first) == 2 and [r["step"] for r in second] == [3]
    for a, b in zip(full, first + second):
        assert {k: v for k, v in a.items() if k != "seconds"} == \
            {k: v for k, v in b.items() if k != "seconds"}
    for part in ("model", "ema"):  # the policy, and the old policy in the EMA slot
        a = load_weights(tmp_path / "full" / f"checkpoints/step_00000003/{part}.safetensors")
        b = load_weights(tmp_path / "cut" / f"checkpoints/step_00000003/{part}.safetensors")
        assert all(torch.equal(a[k], b[k]) for k in a)


def test_reward_bf16_decodes_the_same_rollouts_nearly_alike(tmp_path):
    """`reward_bf16` changes only how the rollouts are decoded for the rewards: the first step
    (same rollouts: the same policy and noise) scores within a fraction of a grey level."""
    small = dict(group_size=4, micro_batch=4, steps=1, checkpoint_every=1)
    full = _run(_config(tmp_path, "float32", **small))[0]["reward_brightness"]
    half = _run(_config(tmp_path, "bf16", reward_bf16=True, **small))[0]["reward_brightness"]
    assert half != full
    assert half == pytest.approx(full, abs=0.5 / 255)


@pytest.mark.parametrize("changes, message", [
    ({"group_size": 1}, "group_size must be >= 2"),
    ({"rewards": {"clap": 1.0}}, "unknown reward 'clap'"),
    ({"rewards": {}}, "rewards is empty"),
    ({"rewards": {"sync": -1}}, "rewards.sync must be a weight >= 0"),
    ({"prompts": [], "world_seed": 999_999, "world_prompts": 2}, "held-out split"),
    ({"prompts_per_step": 2}, "more than the 1 prompts"),
    ({"frames": 1}, "frames must be 1·k \\+ 1 >= 2"),
    ({"solver": "rk4"}, "solver must be one of"),
    ({"attention_window": [0.9, 0.5]}, "attention_window must be fractions"),
    ({"surgery_scales": "all"}, "surgery_scales = 'all' has the wrong type"),
    ({"lr": -1.0}, "lr must be >= 0"),
    ({"preset": "nope"}, "unknown preset 'nope'"),
    ({"model": {"dim": 30}}, "not divisible by num_heads"),
    ({"bogus": 1}, "unknown RL config key\\(s\\) \\['bogus'\\]"),
])
def test_config_errors_name_the_key(tmp_path, changes, message):
    with pytest.raises(ConfigError, match=message):
        _config(tmp_path, "bad", **changes)


def test_cli_reports_errors_in_one_line(tmp_path, caplog):
    from duet.cli import main

    assert main(["rl", str(tmp_path / "missing.json")]) == 2
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**TINY, "rewards": {"clap": 1.0}}))
    assert main(["rl", str(bad)]) == 2
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 2 and not any("\n" in e for e in errors), errors
    assert "RL config file not found" in errors[0] and "unknown reward 'clap'" in errors[1]


BRIDGED = {"video": {"dim": 32, "ffn_dim": 64, "num_heads": 2, "num_layers": 2, "text_len": 16},
           "audio": {"dim": 16, "ffn_dim": 32, "num_heads": 2, "num_layers": 1, "text_len": 16},
           "bridge": {"layers": [0, 1], "dim": 16}}


def test_lora_on_a_bridged_model(tmp_path):
    """LoRA adapters on a MOVA-style model: only the adapters change, the reference (adapters
    at their start, B = 0) is the base model, and the run exports an adapter."""
    from duet.weights import BUNDLE_WEIGHTS, save_weights, write_config
    from duet.lora import ADAPTER_WEIGHTS
    from duet.model import TwinModel

    cfg = _config(tmp_path, "lora", preset="demo-bridge", model=BRIDGED, group_size=2,
                  micro_batch=2, steps=2, lr=1e-2, checkpoint_every=2, lora={"rank": 2},
                  rewards={"brightness": 1.0, "loudness": 1.0}, init_from=str(tmp_path / "base"))
    base = TwinModel.from_config(cfg.train_config().twin())
    save_weights(base.state_dict(), tmp_path / "base" / BUNDLE_WEIGHTS)
    write_config(tmp_path / "base", cfg.train_config().bundle_preset(), {})
    records = _run(cfg)
    assert records[0]["kl"] == 0.0 and records[1]["kl"] > 0.0  # θ starts at the reference
    after = load_weights(tmp_path / "lora" / "checkpoints/step_00000002/model.safetensors")
    plain = {k.replace(".base_layer.", "."): v for k, v in after.items() if ".lora_" not in k}
    assert plain.keys() == base.state_dict().keys()
    changed = [k for k, v in plain.items() if not torch.equal(v, base.state_dict()[k])]
    assert not changed, changed[:3]  # the base weights stay as they were
    assert any(".lora_B." in k and v.abs().max() > 0 for k, v in after.items())
    assert (tmp_path / "lora" / "final" / ADAPTER_WEIGHTS).is_file()


def test_rl_of_a_bundle_takes_its_shape_from_the_bundle(tmp_path):
    """`preset` and `init_from` both naming a trained bundle: the run builds the bundle's model
    (here narrower than the demo preset's) without restating it, and exports that shape."""
    from duet.model import TwinModel
    from duet.weights import BUNDLE_WEIGHTS, read_config, save_weights, write_config

    shaped = _config(tmp_path, "shape")
    base = TwinModel.from_config(shaped.train_config().twin())
    save_weights(base.state_dict(), tmp_path / "base" / BUNDLE_WEIGHTS)
    write_config(tmp_path / "base", shaped.train_config().bundle_preset(), {})
    cfg = _config(tmp_path, "rl", preset=str(tmp_path / "base"), model={},
                  init_from=str(tmp_path / "base"), group_size=2, micro_batch=2, steps=1)
    assert cfg.train_config().twin() == base.cfg
    _run(cfg)
    assert read_config(tmp_path / "rl" / "final")[0].model == base.cfg
