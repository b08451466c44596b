"""`duet data curate` on a synthetic-world folder with planted defects."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

pytest.importorskip("scenedetect", reason="curation needs the test extra: pip install -e '.[test]'")

from curate_world import planted_folder

from duet.cli import main
from duet.data.curate import CurateConfig, curate
from duet.errors import ConfigError


def _rows(report: Path) -> dict[str, list[dict]]:
    by_input: dict[str, list[dict]] = {}
    for line in report.read_text().splitlines():
        row = json.loads(line)
        by_input.setdefault(Path(row["input"]).stem, []).append(row)
    return by_input


@pytest.fixture(autouse=True)
def own_rng():
    """In-process runs build models from the global generator; later tests get it back
    as they would have found it."""
    with torch.random.fork_rng():
        yield


@pytest.fixture(scope="module")
def curated(tmp_path_factory):
    root = tmp_path_factory.mktemp("curate")
    expected = planted_folder(root / "in")
    assert main(["data", "curate", str(root / "in"), "-o", str(root / "out"), "--workers", "2",
                 "-q"]) == 0
    return root, expected


def test_report_flags_each_planted_defect_and_keeps_the_good_clips(curated):
    root, expected = curated
    rows = _rows(root / "out" / "report.jsonl")
    assert sorted(rows) == sorted(expected)
    for name, reason in expected.items():
        if reason is None:
            assert [r["status"] for r in rows[name]] == ["kept"], (name, rows[name])
            continue
        for r in rows[name]:
            assert reason in r["reasons"] + r["flags"], (name, r)
    for name, truth in (("late", 300.0), ("early", -300.0)):  # shifted back, kept
        (row,) = rows[name]
        m = row["metrics"]
        assert row["status"] == "kept" and abs(m["sync_offset_ms"] - truth) < 45, row
        assert abs(m["sync_offset_after_ms"]) < 45 and m["shifted_ms"] == -m["sync_offset_ms"]
    assert rows["silent"][0]["metrics"]["loudness_lufs"] is None  # -inf LUFS: JSON null
    assert rows["good_talk"][0]["caption"].startswith("A cartoon face")
    captions = json.loads((root / "out" / "captions.json").read_text())
    assert [Path(c["input"]).stem for c in captions] == ["early", "good_bounce", "good_bounce2",
                                                         "good_talk", "late"]


def test_shards_train_with_duet_train(curated, tmp_path):
    root, _ = curated
    cfg = {"preset": "demo", "model": {"dim": 32, "ffn_dim": 64, "num_layers": 2},
           "data": [str(root / "out")], "batch_size": 2, "steps": 3, "warmup_steps": 1,
           "lr": 1e-3, "checkpoint_every": 3, "out_dir": str(tmp_path / "run"), "progress": False}
    (tmp_path / "train.json").write_text(json.dumps(cfg))
    from duet.train import LatentDataset

    assert len(LatentDataset(shards=[root / "out"])) == 5  # the shards alone, not parts/
    assert main(["train", str(tmp_path / "train.json"), "-q"]) == 0
    assert (tmp_path / "run" / "final" / "model.safetensors").exists()


def test_rerun_skips_finished_inputs_and_rewrites_the_same_shards(curated):
    root, expected = curated
    shard = root / "out" / "shard-00000.safetensors"
    before = shard.read_bytes()
    summary = curate(root / "in", root / "out", CurateConfig(), progress=False)
    assert summary.skipped == summary.inputs == len(expected)
    assert summary.clips_kept == 5 and shard.read_bytes() == before


def test_shard_size_splits_the_same_clips_and_old_shards_go(curated, tmp_path):
    from safetensors.torch import load_file

    root, _ = curated
    out = root / "out"
    whole = load_file(out / "shard-00000.safetensors")
    split = curate(root / "in", out, CurateConfig(shard_size=2), progress=False)  # parts reused
    assert split.skipped == split.inputs and [p.name for p in split.shards] == [
        "shard-00000.safetensors", "shard-00001.safetensors", "shard-00002.safetensors"]
    parts = [load_file(p) for p in split.shards]
    assert [t["video"].shape[0] for t in parts] == [2, 2, 1]
    for key, value in whole.items():
        torch.testing.assert_close(torch.cat([t[key] for t in parts]), value, rtol=0, atol=0)
    curate(root / "in", out, CurateConfig(), progress=False)
    assert sorted(p.name for p in out.glob("shard-*")) == ["shard-00000.safetensors"]


@pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                    reason="Ray is in the curate extra, not the test extra: "
                           "pip install -e '.[curate]' to run this test")
def test_ray_local_gives_the_same_shards(curated, tmp_path):
    root, _ = curated
    listing = tmp_path / "list.txt"
    listing.write_text("".join(f"{root / 'in' / n}.mp4\n" for n in ("late", "good_talk", "notes")))
    plain = curate(listing, tmp_path / "plain", CurateConfig(workers=1), progress=False)
    with_ray = curate(listing, tmp_path / "ray", CurateConfig(workers=2), ray=True, progress=False)
    assert plain.clips_kept == with_ray.clips_kept == 2
    for a, b in zip(plain.shards, with_ray.shards, strict=True):
        assert a.read_bytes() == b.read_bytes()
    assert (tmp_path / "plain" / "report.jsonl").read_text() == \
        (tmp_path / "ray" / "report.jsonl").read_text()


def test_bad_config_and_inputs_fail_with_one_line(tmp_path, capsys):
    (tmp_path / "c.json").write_text(json.dumps({"sync_tolerence_ms": 50}))
    assert main(["data", "curate", str(tmp_path), "-o", str(tmp_path / "o"),
                 "--config", str(tmp_path / "c.json")]) == 2
    assert "unknown curate config key(s) ['sync_tolerence_ms']" in capsys.readouterr().err
    assert main(["data", "curate", str(tmp_path / "missing"), "-o", str(tmp_path / "o")]) == 2
    with pytest.raises(ConfigError, match="sync_action"):
        CurateConfig(sync_action="fix")


def test_speech_clips_go_to_syncnet_when_weights_are_given(curated, tmp_path):
    from test_syncnet import _tiny_checkpoint

    from duet.data.curate.process import curate_input

    root, _ = curated
    _tiny_checkpoint(tmp_path / "syncnet_v2.model")
    cfg = CurateConfig(syncnet_weights=str(tmp_path / "syncnet_v2.model"), syncnet_min_confidence=0)
    (row,) = curate_input(root / "in" / "good_talk.mp4", cfg).rows
    assert row["metrics"]["sync_method"] == "syncnet"
    assert {"sync_offset_ms", "syncnet_confidence"} <= set(row["metrics"])
