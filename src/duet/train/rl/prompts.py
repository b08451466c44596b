"""The prompts an RL run samples: a given list, or captions of synthetic-world clips.

World captions are made on first use (rendering a clip takes a fraction of a second, and a
run touches only the prompts its steps draw); `RLConfig` keeps their seeds in the training
split.
"""

from __future__ import annotations

from duet.data.world import WorldConfig, make_clip


class PromptPool:
    """Prompt i of a fixed list, or the caption of world clip `world_seed + i`."""

    def __init__(self, prompts: tuple[str, ...] = (), world_seed: int = 0, world_prompts: int = 0,
                 world: WorldConfig | None = None) -> None:
        self.prompts = prompts
        self.world_seed, self.world_prompts = world_seed, world_prompts
        self.world = world or WorldConfig()
        self._captions: dict[int, str] = {}

    def __len__(self) -> int:
        return len(self.prompts) or self.world_prompts

    def __getitem__(self, i: int) -> str:
        if not 0 <= i < len(self):
            raise IndexError(i)
        if self.prompts:
            return self.prompts[i]
        if i not in self._captions:
            self._captions[i] = make_clip(self.world_seed + i, config=self.world).caption
        return self._captions[i]
