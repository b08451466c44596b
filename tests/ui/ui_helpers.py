"""Shared by the page's tests."""

from __future__ import annotations

import socket

P = "a red ball bounces <AUDCAP>low thuds<ENDAUDCAP>"


def free_port() -> int:
    """A TCP port of this machine that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
