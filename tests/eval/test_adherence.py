"""Tests for duet.eval.adherence on the world's ground truth: captions match their clips'
colours, materials and syllables, and a wrong colour or material is caught."""

from __future__ import annotations

import re

import pytest

from duet.data.world import MATERIALS, PALETTE, make_clip
from duet.errors import InputError
from duet.eval.adherence import prompt_adherence

FPS, SR = 24.0, 16000
ADHERENCE_SEEDS = (0, 1, 2, 6, 8, 10)  # bounce clips that cover every colour and material


def test_prompt_adherence_on_ground_truth_covers_all_colours_and_materials():
    colours, materials = set(), set()
    for s in ADHERENCE_SEEDS:
        c = make_clip(s, "bounce")
        result = prompt_adherence(c.video, c.audio, c.caption, FPS, SR)
        assert result["colour_match"] and result["colour_score"] == 1.0, (s, result)
        assert result["material_match"] and result["material_score"] == 1.0, (s, result)
        colours |= set(result["colours_detected"])
        materials |= set(result["materials_detected"].values())
    assert colours == set(PALETTE) and materials == set(MATERIALS)


def test_prompt_adherence_detects_a_wrong_caption():
    c = make_clip(6, "bounce")  # an orange wooden ball and a red metal ball
    wrong_colour = c.caption.replace("orange", "blue")
    result = prompt_adherence(c.video, c.audio, wrong_colour, FPS, SR)
    assert not result["colour_match"] and result["colour_score"] < 1.0
    wrong_material = re.sub(r"red metal ball", "red rubber ball", c.caption)
    assert wrong_material != c.caption
    result = prompt_adherence(c.video, c.audio, wrong_material, FPS, SR)
    assert result["colour_match"] and not result["material_match"]
    assert result["material_score"] == 0.5


def test_prompt_adherence_for_speech():
    c = make_clip(0, "talk")
    result = prompt_adherence(c.video, c.audio, c.caption, FPS, SR)
    assert result["syllables_expected"] == len(c.events) == result["mouth_openings"]
    assert result["syllable_match"]
    with pytest.raises(InputError, match="world caption"):
        prompt_adherence(c.video, c.audio, "a quiet empty room", FPS, SR)
