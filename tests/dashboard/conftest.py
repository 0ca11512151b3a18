from __future__ import annotations

from collections.abc import Iterator

import pytest
from dashboard_workload import Workspace, build_workspace


@pytest.fixture(scope="session")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    """One ledger for the dashboard's tests that only read; tests that write build their own."""
    built = build_workspace(tmp_path_factory.mktemp("dashboard"))
    yield built
    built.ledger.close()
