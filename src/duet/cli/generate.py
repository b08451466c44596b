"""`duet generate` and `duet ui`: make clips, from a command line or from a web page.

What the options mean lives below both front ends (`duet.generate_options`): the page loads
and calls the pipeline through it too, so a clip made there is the clip that `duet generate`
makes from the same settings. Imports of the library are inside the functions, so that
`duet --help` stays fast.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import TYPE_CHECKING

from duet.generate_options import generate_kwargs, load_pipeline, read_inputs

if TYPE_CHECKING:
    from duet.train.parallel import Runtime


def generate(args: argparse.Namespace) -> int:
    """`duet generate` in one process or, with --sequence-parallel under torchrun, as one of
    the processes that split the model's tokens (each joins the group; rank 0 writes)."""
    from duet.errors import ConfigError

    world = os.environ.get("WORLD_SIZE")
    if not args.sequence_parallel:
        if world is not None and int(world) > 1:
            raise ConfigError(f"launched as {world} processes: pass --sequence-parallel to split "
                              "the work between them (else each would make the same clip)")
        return _generate(args)
    if world is None:
        raise ConfigError("--sequence-parallel runs under torchrun: "
                          "torchrun --nproc-per-node N -m duet generate ... --sequence-parallel")
    from duet.train.parallel import init_runtime

    runtime = init_runtime(args.device)  # this rank's device, e.g. cuda:LOCAL_RANK
    try:
        return _generate(args, runtime)
    finally:
        runtime.close()


def _generate(args: argparse.Namespace, runtime: Runtime | None = None) -> int:
    """One clip: inputs read and the output path checked before the model loads."""
    from duet.loading import RANDOM_INIT_WARNING
    from duet.media import check_clip_path

    container = check_clip_path(args.output)  # a bad -o fails now, not after the work
    inputs = read_inputs(args)  # read before loading
    t0 = time.perf_counter()
    pipe = load_pipeline(args, runtime.device if runtime is not None else args.device)
    if runtime is not None:
        pipe.enable_sequence_parallel()
    is_main = runtime is None or runtime.is_main
    kwargs = generate_kwargs(args, pipe, inputs)
    if pipe.random_init and is_main:
        bar = "!" * 78
        print(f"{bar}\n!! WARNING: {RANDOM_INIT_WARNING}\n{bar}", file=sys.stderr)
    loaded = time.perf_counter()
    clip = pipe(args.prompt, **kwargs, progress=not args.quiet and is_main)
    if not is_main:  # every rank holds the same clip; one writes it
        return 0
    path = clip.save(args.output)
    if not args.quiet:
        t = clip.video.shape
        sound = f"{clip.audio.shape[0] / clip.sample_rate:.2f} s audio @ {clip.sample_rate} Hz"
        picture = f"{t[0]} frames {t[2]}x{t[1]} @ {clip.fps:g} fps + "
        what = sound if container == "wav" else picture + sound
        print(f"wrote {path}: {what} "
              f"(load {loaded - t0:.1f} s, generate {time.perf_counter() - loaded:.1f} s)")
    if pipe.random_init:
        print(f"!! {path} was made by a RANDOMLY INITIALISED model: it is noise.", file=sys.stderr)
    return 0


def ui(args: argparse.Namespace) -> int:
    """Serve the web page; the model flags are passed on as `duet generate` would read them."""
    from duet.ui.server import serve

    model_argv = [f"--{name}={value}" for name in ("model", "weights", "device", "dtype")
                  if (value := getattr(args, name)) is not None]
    serve(model_argv, host=args.host, port=args.port)
    return 0
