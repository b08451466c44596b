"""How far Duet is from the official Ovi code on the reference cases, as a table.

    python benchmarks/parity.py [--reference tests/fixtures/ovi_tiny]

float32 rows compare with the official code's high-precision emulation (`out_hp.*`),
bfloat16 rows with the official bf16 run (`out.*`); the loop rows run the whole 4-step
engine loop (UniPC, CFG 4/3, skip-layer guidance) and compare every state.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from duet.reference import load_cases, load_model, run_case, run_engine_loop

DEFAULT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "ovi_tiny"


def errors(ours: torch.Tensor, ref: torch.Tensor) -> tuple[float, float]:
    d = ours.double() - ref.double()
    return float(d.norm() / ref.double().norm()), float(d.abs().max())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reference", type=Path, default=DEFAULT)
    ref = p.parse_args().reference
    cases, t = load_cases(ref)
    print("| dtype | case | worst rel L2 | worst max abs |")
    print("|---|---|---|---|")
    for dtype, out, loop in ((torch.float32, "out_hp.", "loop_hp."), (torch.bfloat16, "out.", "loop.")):
        model = load_model(ref, dtype)
        name = str(dtype).removeprefix("torch.")
        rows = {c: [errors(o, t[k.replace("out.", out, 1)]) for k, o in run_case(model, spec, t, dtype).items()]
                for c, spec in cases.items()}
        rows["4-step engine loop (every state)"] = [
            errors(s, t[f"{loop}{m}.{k}"]) for k, st in enumerate(run_engine_loop(model, t, dtype), 1)
            for m, s in zip(("vid", "audio"), st)]
        for c, errs in rows.items():
            print(f"| {name} | {c} | {max(e[0] for e in errs):.1e} | {max(e[1] for e in errs):.1e} |")


if __name__ == "__main__":
    main()
