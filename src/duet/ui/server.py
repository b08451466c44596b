"""`duet ui`: serve the page, one generation at a time, on this machine unless told otherwise.

The queue runs one event at a time (`default_concurrency_limit=1`): a second click waits for
the first clip instead of splitting the CPU or GPU between two. Cancel and the prompt check
skip the queue, so they answer while a clip is being made. The model loads in the background
once the page is up, which keeps `duet ui` quick to start.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
from pathlib import Path

from duet.errors import ConfigError, DuetError

log = logging.getLogger(__name__)


def launch(model_argv: list[str], *, host: str = "127.0.0.1", port: int = 7860,
           out_dir: Path | None = None, warm: bool = True):  # -> gr.Blocks (gradio is lazy)
    """Start the server without blocking and return the running page (`.close()` stops it).
    Clips go to `out_dir` (default: a new temporary folder)."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no network calls from a local tool
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise ConfigError("duet ui needs Gradio: pip install 'duet[ui]'") from None
    from duet.ui.page import build_page
    from duet.ui.runner import Runner

    out_dir = Path(out_dir or tempfile.mkdtemp(prefix="duet-ui-"))
    runner = Runner(model_argv, out_dir)
    page = build_page(runner).queue(default_concurrency_limit=1)
    try:
        page.launch(server_name=host, server_port=port, prevent_thread_lock=True, quiet=True,
                    allowed_paths=[str(out_dir)], footer_links=["api"])
    except OSError as e:
        raise ConfigError(f"cannot serve on {host}:{port} ({e}); pick another --port") from None
    if warm:
        threading.Thread(target=_warm, args=(runner,), daemon=True, name="duet-warm").start()
    return page


def serve(model_argv: list[str], *, host: str = "127.0.0.1", port: int = 7860) -> None:
    """`launch`, print the address, and serve until Ctrl-C."""
    page = launch(model_argv, host=host, port=port)
    print(f"duet ui: serving on {page.local_url} (Ctrl-C stops)", flush=True)
    try:
        page.block_thread()
    finally:
        page.close()


def _warm(runner) -> None:
    """Load the model; a failure here is reported, and shown again in the page on Generate."""
    try:
        runner.warm()
    except DuetError as e:
        log.error("the model did not load: %s", e)
