"""Shared helpers for the core tests: where the read-only shared data lives."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def shared_data(*parts: str) -> Path:
    """``../shared/data[/parts...]`` next to the repository; skips the test when it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared test data not found at {path} (expected ../shared/data next to "
                    f"the repository; see its README)")
    return path


@pytest.fixture(name="shared_data")
def shared_data_fixture():
    """The helper :func:`shared_data` as a fixture: ``shared_data("sequences", "...")``."""
    return shared_data
