"""The notebooks tier's fixtures: `notebook_params` (the small sizes), `notebook_cache` (the notebooks' cache
every run of the session shares) and `headless_runs` (the papermill runs, started as soon as the fixture is
first requested, for every headless test pytest selected: the browser test requests it first, so the runs
overlap its JupyterLab session, two kernels at a time on a 2-core machine; the static site is made from
these runs)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from notebook_runs import HEADLESS_TEST, HeadlessRuns, small_params


@pytest.fixture(scope="session")
def notebook_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The notebooks' cache folder every run of this session shares (a run after the first of the same
    notebook reads its dense state back, as a user's second run does)."""
    return tmp_path_factory.mktemp("notebook-cache")


@pytest.fixture(scope="session")
def notebook_params(notebook_cache: Path) -> Callable[[str, Path, bool], dict]:
    """`small_params` as a fixture: `notebook_params(name, work, interactive)`, with the shared cache."""
    return lambda name, work, interactive: small_params(name, work, interactive, notebook_cache)


@pytest.fixture(scope="session")
def headless_runs(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
                  notebook_cache: Path) -> Iterator[HeadlessRuns]:
    """The headless runs, already started for every notebook whose headless test is selected."""
    runs = HeadlessRuns(tmp_path_factory.mktemp("headless"), notebook_cache)
    runs.start([item.callspec.params["name"] for item in request.session.items
                if getattr(item, "originalname", None) == HEADLESS_TEST and hasattr(item, "callspec")])
    yield runs
    runs.close()
