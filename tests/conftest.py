"""Shared fixtures. Reference vectors live in the sibling checkout `shared/` (../shared)."""

from pathlib import Path

import pytest

REFERENCE_DIR = Path(__file__).resolve().parents[1] / "../shared/reference/ovi_tiny"


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """Folder of the official Ovi reference vectors; missing means a broken checkout, not a skip."""
    path = REFERENCE_DIR.resolve()
    if not path.is_dir():
        pytest.fail(
            f"reference vectors not found at {path}: the tests expect the shared/ folder "
            "next to the repository (shared/reference/ovi_tiny)",
            pytrace=False,
        )
    return path
