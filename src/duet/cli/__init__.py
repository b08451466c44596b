"""`duet generate | ui | info | convert | doctor | eval sync | eval seams | train | rl | data
build | data curate | codec train`: parse arguments, call the library, print.

    parser.py    the command line, one function per subcommand
    generate.py  generate and ui (the options they share: `duet.generate_options`)
    models.py    info, convert, doctor
    evaluate.py  eval sync, eval seams
    training.py  train, rl, data build, data curate, codec train

A `DuetError` becomes one line on stderr and exit code 2; no partial file is left behind.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings

from duet.cli.parser import build_parser
from duet.errors import DuetError

__all__ = ["build_parser", "main"]

# Loggers (and warning sources) of the libraries whose notices the CLI hides.
_CHATTY = ("torchao", "transformers", "diffusers", "safetensors", "huggingface_hub",
           "torch.utils._pytree")


def _quiet_libraries() -> None:
    """Keep the libraries' own chatter off the terminal: torchao's and torch's import-time
    notices, transformers' "Loading weights" bar, deprecation warnings. The CLI shows its own
    progress bars and Duet's warnings; this is a choice for the CLI's process, so it is made
    here and not in the library. The variables are read when those libraries are imported."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
    for name in _CHATTY:
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module=rf"({'|'.join(_CHATTY)})(\.|$)")


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="duet: %(levelname)s: %(message)s")
    _quiet_libraries()
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except DuetError as e:
        print(f"duet: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C: no traceback; atomic writes left no partial file
        print("duet: interrupted", file=sys.stderr)
        return 130
