"""Hand-made tidy inputs for the figure and widget tests (`tests/figure_inputs.py`): no model anywhere."""

from __future__ import annotations

import pytest
from figure_inputs import D, make_tables, measured_row

from slicedim_lab.predict.fisher import FisherTables
from slicedim_lab.predict.registry import DenseMetrics


@pytest.fixture
def tables() -> FisherTables:
    return make_tables([32, 48])


@pytest.fixture
def dense() -> DenseMetrics:
    return DenseMetrics(ppl=12.0, acc=0.4, hidden=D, mc_acc=0.6, mc_chance=0.25)


@pytest.fixture
def rows(dense: DenseMetrics, tables: FisherTables) -> list[dict]:
    return [measured_row(dense, tables, 48, 14.0, 0.38), measured_row(dense, tables, 32, 25.0, 0.33)]


@pytest.fixture
def width() -> int:
    return D


@pytest.fixture
def make_row():
    """`measured_row`, for tests that add points."""
    return measured_row
