"""predict/anchor.py: the anchored correction is exact at its anchors, a power law through two anchors for a
power-law predictor, one anchor rescales the curve; its interval is zero at anchors and grows away."""

from __future__ import annotations

import math

import pytest

from slicedim_lab.errors import UsageError
from slicedim_lab.predict.anchor import Anchor, anchored_ppl, anchored_rel_sigma, make_anchors, ratio_at

D = 576


def s(d: int) -> float:
    return 1 - d / D


def test_exact_at_anchors_and_log_log_between() -> None:
    anchors = make_anchors({400: 30.0, 288: 60.0}, {400: 0.5, 288: 1.0, 344: 0.8}, ppl0=10.0)
    r400, r288 = math.log(3.0) / 0.5, math.log(6.0) / 1.0
    assert sorted(a.dim for a in anchors) == [288, 400]
    assert anchored_ppl(10.0, 0.5, 400, anchors, D) == pytest.approx(30.0)
    assert anchored_ppl(10.0, 1.0, 288, anchors, D) == pytest.approx(60.0)
    t = math.log(s(344) / s(400)) / math.log(s(288) / s(400))
    assert ratio_at(344, anchors, D) == pytest.approx(r400 ** (1 - t) * r288 ** t)


def test_two_anchors_recover_any_power_law_from_a_power_law_predictor() -> None:
    """Predictor ΔL = a s^1.44, truth ΔL = b s^β: two anchors give the truth at every width, beyond too."""
    for beta in (1.2, 1.44, 1.85):
        truth = {d: 2.0 * s(d) ** beta for d in (544, 512, 456, 400, 344, 288, 200)}
        pred = {d: 0.7 * s(d) ** 1.44 for d in truth}
        for pair in ((456, 344), (400, 288), (512, 400)):
            anchors = make_anchors({d: 10 * math.exp(truth[d]) for d in pair}, pred, 10.0)
            for d in truth:
                got = math.log(anchored_ppl(10.0, pred[d], d, anchors, D) / 10.0)
                assert got == pytest.approx(truth[d], rel=1e-9), (beta, pair, d)


def test_one_anchor_scales_the_whole_curve() -> None:
    a = [Anchor(400, dloss_measured=0.6, dloss_predicted=0.4)]
    for d, dl in ((512, 0.1), (288, 1.2)):
        assert anchored_ppl(10.0, dl, d, a, D) == pytest.approx(10.0 * math.exp(1.5 * dl))


def test_non_positive_ratio_is_interpolated_linearly_and_held_beyond() -> None:
    a = [Anchor(512, dloss_measured=-0.01, dloss_predicted=0.1), Anchor(400, 0.5, 0.5)]
    assert ratio_at(456, a, D) == pytest.approx(-0.1 + (1.0 + 0.1) * math.log(s(456) / s(512))
                                                / math.log(s(400) / s(512)))
    assert ratio_at(288, a, D) == pytest.approx(1.0) and ratio_at(544, a, D) == pytest.approx(-0.1)


def test_interval_zero_at_anchors_and_growing_away() -> None:
    one = [Anchor(400, 0.6, 0.5)]
    two = [Anchor(400, 0.6, 0.5), Anchor(288, 1.3, 1.0)]
    for a in (one, two):
        assert anchored_rel_sigma(400, a, D, 0.015, 0.22) == 0.0
        assert anchored_rel_sigma(D, a, D, 0.015, 0.22) == 0.0
    assert 0 < anchored_rel_sigma(344, one, D, 0.015, 0.22) < anchored_rel_sigma(288, one, D, 0.015, 0.22)
    # two anchors: smallest between them, growing with the extrapolation
    mid, out1, out2 = (anchored_rel_sigma(d, two, D, 0.015, 0.22) for d in (344, 456, 512))
    assert 0.015 < mid < out1 < out2
    assert mid == pytest.approx(0.015 * math.sqrt(1 + 2 * 0.5 ** 2), rel=0.05)  # t ≈ 1/2 in ln s


def test_bad_anchors() -> None:
    assert make_anchors({576: 10.0}, {576: 0.0}, 10.0) == []  # no loss increase predicted: no information
    with pytest.raises(UsageError, match="no prediction"):
        make_anchors({400: 12.0}, {}, 10.0)
    with pytest.raises(UsageError, match="at least one anchor"):
        ratio_at(400, [], D)
