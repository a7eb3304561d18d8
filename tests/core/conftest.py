"""Fixtures for the metadata-database tests: a fresh metadata database per test on the session's sandbox."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from core.metadata_db import ensure_metadata_db, metadata_gateway
from core.settings import TerminusSettings
from core.terminus import TerminusGateway


@pytest.fixture
def settings(sandbox: Any) -> Iterator[TerminusSettings]:
    settings = TerminusSettings(url=sandbox.url, meta_database=f"meta_{uuid.uuid4().hex[:12]}")
    with metadata_gateway(settings) as gateway:
        ensure_metadata_db(gateway, settings)
    yield settings
    with metadata_gateway(settings) as gateway:
        gateway.delete_database(settings.meta_database, missing_ok=True)


@pytest.fixture
def meta(settings: TerminusSettings) -> Iterator[TerminusGateway]:
    with metadata_gateway(settings) as gateway:
        yield gateway
