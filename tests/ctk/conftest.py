"""CTK fixtures: one embedded engine and one local petstore per test module.

The CTK's external hosts (petstore.swagger.io, httpbin.org) are answered by
``harness.PetstoreServer`` through ``settings.extra["host_overrides"]``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .harness import PetstoreServer, SwEngine

# Scenario name -> why it fails today. Keep it as short as the truth allows.
KNOWN_FAILING: dict[str, str] = {}


@pytest.fixture(scope="module")
def petstore() -> Iterator[PetstoreServer]:
    server = PetstoreServer()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def sw_engine(
    tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path, petstore: PetstoreServer
) -> Iterator[SwEngine]:
    engine = SwEngine(
        tmp_path_factory.mktemp("ctk") / "data",
        template=sqlite_template,
        extra={"host_overrides": petstore.overrides()},
    )
    yield engine
    engine.stop()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        scenario = getattr(getattr(item, "obj", None), "__scenario__", None)
        reason = KNOWN_FAILING.get(getattr(scenario, "name", ""))
        if reason:
            item.add_marker(pytest.mark.xfail(reason=reason, strict=True))
