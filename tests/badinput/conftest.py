"""The shared good workspace of the bad-input tests (built once per session on the tiny model)."""

from __future__ import annotations

import pytest

from tests.badinput.workspace import Workspace, build_workspace


@pytest.fixture(scope="session")
def ws(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir, tiny_model) -> Workspace:  # type: ignore[no-untyped-def]
    return build_workspace(tmp_path_factory.mktemp("badinput"), tiny_model_dir, tiny_model)
