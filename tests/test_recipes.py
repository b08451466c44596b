"""Every checked-in recipe config loads with the loader its script runs it with (and with
the `--set` variants the scripts pass), so a recipe cannot rot when a key is renamed or a
check tightens."""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

import pytest

from duet.train.config import TrainConfig
from duet.train.rl import RLConfig

ROOT = Path(__file__).resolve().parents[1] / "recipes"
RL_FOLDERS = {"rl_demo"}  # `duet rl` configs; every other folder holds `duet train` ones,
RL_STAGE = "rl"  # but for a recipe's stage of this name


def _is_rl(path: Path) -> bool:
    return path.parent.name in RL_FOLDERS or path.stem == RL_STAGE


@pytest.fixture
def run_folder(tmp_path, monkeypatch):
    """The folder a script runs `duet rl` in: OUT, where OUT/base (rl_demo.sh) or
    OUT/chunks/final (demo.sh's rl stage) links to the starting bundle (the shipped demo by
    default), which the RL configs name as preset and init_from."""
    shipped = Path(str(resources.files("duet"))) / "assets" / "demo"
    (tmp_path / "base").symlink_to(shipped)
    (tmp_path / "chunks").mkdir()
    (tmp_path / "chunks" / "final").symlink_to(shipped)
    monkeypatch.chdir(tmp_path)


def _load(path: Path, overrides: tuple[str, ...] = ()) -> TrainConfig | RLConfig:
    return (RLConfig if _is_rl(path) else TrainConfig).from_file(path, overrides)


@pytest.mark.parametrize("path", sorted(ROOT.rglob("*.json")), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_recipe_config_loads(path, run_folder):
    _load(path)


def _stages(folder: str) -> dict[str, TrainConfig | RLConfig]:
    return {p.stem: _load(p) for p in sorted((ROOT / folder).glob("*.json"))}


def _sources(cfg: TrainConfig | RLConfig) -> list[str]:
    if isinstance(cfg.init_from, dict):
        return list(cfg.init_from.values())
    return [cfg.init_from] if cfg.init_from else []


@pytest.mark.parametrize("folder, script", [("demo", "demo.sh"), ("demo_bridge", "demo_bridge.sh")])
def test_stages_chain_inside_the_run_folder(folder, script, run_folder):
    """The script runs every stage, each after the stages whose bundles it starts from
    (the bridge's video tower comes from the demo run beside it); each stage writes the
    folder named after it, and reads the data the run folder links to. The RL stage's
    adapter is merged into `rl/merged`, the bundle the stage after it starts from."""
    stages = _stages(folder)
    text = (ROOT / script).read_text()
    listed = re.search(r"STAGES:-([a-z0-9 ]+)\}|for s in ([a-z0-9 ]+); do", text)
    assert listed is not None
    order = (listed.group(1) or listed.group(2)).split()
    optional = re.search(r'STAGES="\$STAGES ([a-z0-9 ]+)"', text)  # e.g. RL=1's stages
    order += optional.group(1).split() if optional else []
    assert sorted(order) == sorted(stages)
    for i, name in enumerate(order):
        cfg = stages[name]
        assert cfg.out_dir == name
        if isinstance(cfg, RLConfig):
            assert cfg.preset == cfg.init_from
            assert re.search(rf"duet convert {cfg.init_from} --lora {name}/final( --dtype float32)? "
                             rf"-o {name}/merged", text)  # merged into the base it trained on
        else:
            assert cfg.data == ("data/part0", "data/part1")
        for source in _sources(cfg):
            stage, _, kind = source.rpartition("/")
            assert (kind == "final" and (stage in order[:i] or stage == "../demo/uncond")
                    or kind == "merged" and stages.get(stage) is not None
                    and isinstance(stages[stage], RLConfig) and stage in order[:i])


def test_the_scripts_variants_load(run_folder):
    """ROPE_SCALE and VIDEO_FROM of recipes/demo.sh; SHORT, FULL and the ablations of
    recipes/rl_demo.sh."""
    fusion = _load(ROOT / "demo" / "fusion.json", ("model.audio.rope_time_scale=1.0",
                                                   "init_from.video=/runs/demo/uncond2/final"))
    assert fusion.twin().audio.rope_time_scale == 1.0
    assert fusion.init_from == {"video": "/runs/demo/uncond2/final", "audio": "audio/final"}
    rl = ROOT / "rl_demo" / "omninft.json"
    short = _load(rl, ("steps=2", "group_size=2", "sampling_steps=2", "timestep_fraction=0.5",
                       "lr=1e-5", "lora=null", "out_dir=routing", "advantage_routing=false"))
    assert short.lora is None and short.batch_size == 4 and not short.advantage_routing
    assert _load(rl).lora["rank"] == 32
    motion = _load(ROOT / "rl_demo" / "motion.json")
    assert set(motion.rewards) == {"motion", "video_adherence"} and motion.world_kinds == ("bounce",)
    assert motion.train_config().twin() == _load(rl).train_config().twin()  # the base bundle's
