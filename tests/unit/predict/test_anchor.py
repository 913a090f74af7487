"""predict/anchor.py: the anchored correction is exact at its anchors and interpolates the ratio between."""

from __future__ import annotations

import math

import pytest

from slicedim_lab.errors import UsageError
from slicedim_lab.predict.anchor import Anchor, anchored_ppl, make_anchors, ratio_at


def test_exact_at_anchors_and_interpolated_between() -> None:
    anchors = make_anchors({400: 30.0, 288: 60.0}, {400: 0.5, 288: 1.0, 344: 0.8}, ppl0=10.0)
    r400, r288 = math.log(3.0) / 0.5, math.log(6.0) / 1.0
    assert [a.dim for a in anchors] == [288, 400]
    assert anchored_ppl(10.0, 0.5, 400, anchors) == pytest.approx(30.0)
    assert anchored_ppl(10.0, 1.0, 288, anchors) == pytest.approx(60.0)
    t = (344 - 288) / (400 - 288)
    assert ratio_at(344, anchors) == pytest.approx((1 - t) * r288 + t * r400)
    assert ratio_at(512, anchors) == pytest.approx(r400) and ratio_at(100, anchors) == pytest.approx(r288)


def test_one_anchor_scales_the_whole_curve() -> None:
    a = [Anchor(400, dloss_measured=0.6, dloss_predicted=0.4)]
    for d, dl in ((512, 0.1), (288, 1.2)):
        assert anchored_ppl(10.0, dl, d, a) == pytest.approx(10.0 * math.exp(1.5 * dl))


def test_bad_anchors() -> None:
    assert make_anchors({576: 10.0}, {576: 0.0}, 10.0) == []  # no loss increase predicted: no information
    with pytest.raises(UsageError, match="no prediction"):
        make_anchors({400: 12.0}, {}, 10.0)
    with pytest.raises(UsageError, match="at least one anchor"):
        ratio_at(400, [])
