"""`duet eval sync` and `duet eval seams`: objective measurements of generated clips,
printed as Markdown tables (or JSON)."""

from __future__ import annotations

import argparse
import json


SUMMARY_ROWS = ("all", "chance")  # `duet eval sync`'s rows after the clips' own


def eval_sync(args: argparse.Namespace) -> int:
    """Audio-visual sync of synthetic-world clips, measured from each MP4 alone; --chance adds
    what the ruler reads on the same clips with picture and sound unrelated."""
    from duet.errors import InputError
    from duet.eval.sync import CHANCE_SHIFTS, chance_report, file_events, merge, sync_report

    for path in args.clips:
        if path in SUMMARY_ROWS:  # rows are keyed by the path as given
            raise InputError(f"clip {path!r} has the name of a summary row; pass it as ./{path}")
        if args.clips.count(path) > 1:
            raise InputError(f"clip {path!r} is given twice; it would count twice in 'all'")
    events = {path: file_events(path) for path in args.clips}
    rows = {path: sync_report(e) for path, e in events.items()}
    rows["all"] = merge(rows.values())
    if args.chance:  # pooled over the shifts: its counts are len(CHANCE_SHIFTS) times a clip's
        rows["chance"] = merge(chance_report(e) for e in events.values())
    if args.json:
        print(json.dumps({name: r.to_dict() for name, r in rows.items()}, indent=2, allow_nan=False))
        return 0
    label = {"chance": f"chance: onsets shifted, {len(CHANCE_SHIFTS)} shifts pooled "
                       f"(counts ×{len(CHANCE_SHIFTS)})"}
    print("| clip | pairs | median offset ms | median abs ms | within 1 frame | within 2 frames | missed | extra |")
    print("|---|---|---|---|---|---|---|---|")
    for name, r in rows.items():
        print(f"| {label.get(name, name)} | {r.table_cells()} |")
    return 0


def eval_seams(args: argparse.Namespace) -> int:
    """Picture and sound at the seams of a clip made in chunks."""
    from duet.eval.seams import VIDEO_LIMIT, measure_file
    from duet.weights import preset_or_bundle

    preset = preset_or_bundle(args.model)
    seams = measure_file(args.clip, preset.media, args.overlap)
    if args.json:
        print(json.dumps([s.to_dict() for s in seams], indent=2, allow_nan=False))
        return 0
    print(f"| seam s | picture change / in-chunk median (target <= {VIDEO_LIMIT:g}) | ordinary "
          "stretch | click (limit) | level step dB (limit) | level dB (range) | picture | sound |")
    print("|---|---|---|---|---|---|---|---|")
    for s in seams:
        lo, hi = s.level_range_db
        print(f"| {s.time:.2f} | {s.video_ratio:.2f} | {s.video_ordinary:.2f} | "
              f"{s.click:.3f} ({s.click_limit:.3f}) | "
              f"{s.level_step_db:.1f} ({s.level_step_limit_db:.1f}) | "
              f"{s.level_db:.1f} ({lo:.1f}..{hi:.1f}) | {'ok' if s.video_ok else 'SEAM'} | "
              f"{'ok' if s.audio_ok else 'SEAM'} |")
    return 0
