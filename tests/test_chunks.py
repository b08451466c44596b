"""Chunk plans of long clips: coverage, overlaps in video and audio, prompts per chunk, and
the one-line refusals of a bad schedule or overlap."""

from __future__ import annotations

import json
from itertools import pairwise

import pytest

from duet.chunks import plan_chunks, read_schedule
from duet.errors import InputError
from duet.presets import get_preset

DEMO, OVI = get_preset("demo").media, get_preset("ovi-720x720-5s").media


def test_a_20_s_demo_clip_is_six_chunks_that_cover_it_with_half_held_overlaps():
    plan = plan_chunks(481, DEMO, "p")  # 20 s at 24 fps
    c = plan.chunks
    assert [x.start for x in c] == [0, 85, 170, 255, 340, 425]
    assert [x.frames for x in c] == [97] * 5 + [56]  # the last one only as long as needed
    assert c[-1].start + c[-1].frames == plan.frames == 481
    assert all((x.overlap, x.held, x.held_latents) == (12, 6, 6) for x in c[1:])  # 0.5 s, half held
    # audio: each chunk starts at its video start on the 31.25 Hz latent grid and overlaps
    # exactly the previous chunk's end
    for prev, x in pairwise(c):
        assert x.audio_start == round(x.start / 24 * 31.25)
        assert x.audio_overlap == prev.audio_start + prev.audio_latents - x.audio_start
        assert x.audio_held == 8  # 6 frames = 0.25 s = 7.8 latents
    assert plan.audio_latents == 625


def test_ovi_chunks_keep_the_causal_4k_plus_1_frame_shape():
    plan = plan_chunks(481, OVI, "p")
    assert [x.frames for x in plan.chunks] == [121] * 4 + [33]
    assert all(x.frames % 4 == 1 for x in plan.chunks)
    x = plan.chunks[1]
    # 3 latent frames overlap (9 pixel frames), 2 held (5 frames: the causal first latent
    # frame is one pixel frame, each later one four)
    assert (x.start, x.overlap, x.held, x.held_latents) == (112, 9, 5, 2)


def test_a_clip_within_the_native_length_is_one_chunk():
    plan = plan_chunks(13, DEMO, "p")
    assert len(plan.chunks) == 1 and plan.chunks[0].frames == 13
    assert plan.audio_latents == DEMO.audio_length(13)


def test_then_prompts_go_to_the_following_chunks_and_the_last_carries_on():
    plan = plan_chunks(481, DEMO, "a", then=["b", "c"])
    assert [x.prompt for x in plan.chunks] == ["a", "b", "c", "c", "c", "c"]


def test_a_schedule_change_lands_on_the_first_chunk_whose_new_frames_begin_after_it():
    # new frames of chunk i begin at (85 i + 12) / 24 s: 0, 4.04, 7.58, 11.12, 14.67, 18.21
    plan = plan_chunks(481, DEMO, "a", schedule=[(4.0, "b"), (9.0, "c")])
    assert [x.prompt for x in plan.chunks] == ["a", "b", "b", "c", "c", "c"]


@pytest.mark.parametrize("kw, needle", [
    (dict(then=["b"] * 6), r"6 follow-on prompt\(s\) \(--then\) but a 20.04 s clip has 6 chunk\(s\), so at most 5"),
    (dict(then=["b"], schedule=[(5.0, "c")]), "either as then"),
    (dict(schedule=[(5.0, "b"), (5.0, "c")]), "increasing"),
    (dict(schedule=[(0.0, "b")]), "after 0 s"),
    (dict(schedule=[(25.0, "b")]), r"at 25 s is past the clip's end \(20.04 s\)"),
    (dict(schedule=[(19.0, "b")]), r"no chunk begins at or after it \(chunks begin at 0.00, 4.04"),
    (dict(overlap=97), "leaves nothing new in a chunk of 97 latent frames .* use at most 96"),
    (dict(overlap=0), ">= 1"),
    (dict(overlap=2.5), ">= 1"),
])
def test_bad_plans_are_one_line(kw, needle):
    with pytest.raises(InputError, match=needle) as e:
        plan_chunks(481, DEMO, "a", **kw)
    assert "\n" not in str(e.value)


def test_schedule_file_round_trip_and_refusals(tmp_path):
    good = tmp_path / "s.json"
    good.write_text(json.dumps([{"at": 5, "prompt": "b"}, {"at": 9.5, "prompt": "c"}]))
    assert read_schedule(good) == [(5.0, "b"), (9.5, "c")]
    bad = {"notjson.json": "[{", "dict.json": '{"at": 5}', "empty.json": "[]",
           "keys.json": '[{"time": 5, "prompt": "b"}]', "type.json": '[{"at": "5", "prompt": "b"}]'}
    for name, text in bad.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(InputError, match="schedule") as e:
            read_schedule(tmp_path / name)
        assert "\n" not in str(e.value)
    with pytest.raises(InputError, match="cannot read schedule"):
        read_schedule(tmp_path / "missing.json")
