"""Shared pytest setup for tests/python: the `slow` marker and where repo, shared data and
build live.

Shared data (test images, fruits-360-mini) is found at $ORCHARD_SHARED_DIR, else at
REPO/../shared; the C++ build at $ORCHARD_BUILD_DIR, else at REPO/build.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_DIR = Path(__file__).resolve().parents[2]

# S3 fixtures (servers, buckets, fault proxy) live in their own plugin module.
pytest_plugins = ["conftest_s3"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "slow: takes several seconds or more (deselect with -m 'not slow')"
    )
    config.addinivalue_line(
        "markers",
        "spark_once: a Spark test that does not depend on the Spark version, run on one of the "
        "two PySpark venvs only (scripts/test deselects it in the second with -m 'not spark_once')",
    )


@pytest.fixture(scope="session")
def repo_dir() -> Path:
    return REPO_DIR


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The shared data folder; a missing one is an error, not a reason to skip."""
    path = Path(os.environ.get("ORCHARD_SHARED_DIR", REPO_DIR.parent / "shared")).resolve()
    if not path.is_dir():
        pytest.fail(f"shared data folder {path} not found; set ORCHARD_SHARED_DIR")
    return path


@pytest.fixture(scope="session")
def build_dir() -> Path:
    return Path(os.environ.get("ORCHARD_BUILD_DIR", REPO_DIR / "build")).resolve()
