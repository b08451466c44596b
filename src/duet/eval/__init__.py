"""Objective measurements: audio-visual sync, prompt adherence on the demo world, and paired
before/after comparisons of two models on the same prompts."""

from duet.eval.adherence import prompt_adherence
from duet.eval.compare import PairedChange, paired_change
from duet.eval.sync import (SyncReport, audio_onsets, chance_report, file_events, match_events, measure,
                            measure_file, merge)
from duet.eval.visual import visual_events

__all__ = [
    "PairedChange",
    "SyncReport",
    "audio_onsets",
    "chance_report",
    "file_events",
    "match_events",
    "measure",
    "measure_file",
    "merge",
    "paired_change",
    "prompt_adherence",
    "visual_events",
]
