"""Shared fixtures. The official Ovi reference vectors ship with the tests (tests/fixtures/)."""

from pathlib import Path

import pytest

REFERENCE_DIR = Path(__file__).resolve().parent / "fixtures" / "ovi_tiny"


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """Folder of the official Ovi reference vectors; missing means a broken checkout, not a skip."""
    if not (REFERENCE_DIR / "weights.safetensors").is_file():
        pytest.fail(f"reference vectors not found at {REFERENCE_DIR}: the checkout is incomplete "
                    "(tests/fixtures/ovi_tiny is part of the repository)", pytrace=False)
    return REFERENCE_DIR
