"""Objective measurements: audio-visual sync and prompt adherence on the demo world."""

from duet.eval.adherence import prompt_adherence
from duet.eval.sync import SyncReport, audio_onsets, match_events, measure, measure_file, merge
from duet.eval.visual import visual_events

__all__ = [
    "SyncReport",
    "audio_onsets",
    "match_events",
    "measure",
    "measure_file",
    "merge",
    "prompt_adherence",
    "visual_events",
]
