from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.mosquitto import MosquittoInstance, running_mosquitto


@pytest.fixture
def private_mosquitto(tmp_path: Path) -> Iterator[MosquittoInstance]:
    """A Mosquitto of this test's own with the dynamic-security plugin and one admin account."""
    with running_mosquitto(tmp_path) as broker:
        yield broker
