"""protocol: standard errors, comparisons, verdicts, edit scores and targets on tiny cases computed by hand
(the numbers notebook 07 prints come from these functions)."""

from __future__ import annotations

import math

import pytest

from clip2gan.evaluation.protocol import (
    BARS,
    EDIT_TARGETS,
    EditScores,
    bars,
    binomial_se,
    compare_proportions,
    largest_gain,
    max_binomial_se,
    meets_edit_targets,
    rises_with_beta,
    score_edits,
    verdict,
)
from clip2gan.toy.faces import ATTRIBUTES

# ------------------------------------------------------------------------------------------------
# standard errors and comparisons


def test_binomial_se_by_hand():
    assert binomial_se(0.5, 100) == pytest.approx(0.05)  # √(0.25 / 100)
    assert binomial_se(0.9, 100) == pytest.approx(0.03)  # √(0.09 / 100)
    assert binomial_se(0.0, 10) == pytest.approx(math.sqrt(1e-12 / 10))  # a floor, not 0
    assert binomial_se(0.5, 0) == pytest.approx(0.5)  # n < 1 counts as 1


def test_max_binomial_se_is_the_half_half_case():
    assert max_binomial_se(100) == pytest.approx(0.05)
    assert max_binomial_se(48) == pytest.approx(0.0721688, abs=1e-7)  # √(0.25 / 48): notebook 07's 48 pairs
    assert f"{2 * max_binomial_se(48):.2f}" == "0.14"  # the noise level notebook 07 prints
    assert max_binomial_se(48) >= binomial_se(0.3, 48)


def test_compare_proportions_by_hand():
    d, margin = compare_proportions(0.9, 100, 0.5, 100)
    assert d == pytest.approx(0.4)
    assert margin == pytest.approx(2 * math.sqrt(0.0009 + 0.0025))  # 2 √(se₁² + se₂²) = 0.1166
    d, margin = compare_proportions(0.5, 100, 0.5, 400)
    assert d == 0 and margin == pytest.approx(2 * math.sqrt(0.0025 + 0.000625))


@pytest.mark.parametrize("better, expected", [
    ([True, True], "holds here"),
    ([True, None], "partly holds (the rest is within 2 standard errors)"),
    ([False, None], "does not hold here"),
    ([False, False], "does not hold here"),
    ([True, False], "mixed"),
    ([None, None], "inconclusive (differences within 2 standard errors)"),
    ([], "inconclusive (differences within 2 standard errors)"),
])
def test_verdict_table(better, expected):
    assert verdict(better) == expected


# ------------------------------------------------------------------------------------------------
# edit scores


def test_edit_scores_gain_and_targets():
    assert EditScores(accuracy=0.75, floor=0.25, preservation=1.0, n=4).gain == pytest.approx(0.5)
    assert EDIT_TARGETS == (0.80, 0.90)
    assert meets_edit_targets(EditScores(0.80, 0.0, 0.90, 10))  # both exactly at the target
    assert not meets_edit_targets(EditScores(0.79, 0.0, 0.95, 10))
    assert not meets_edit_targets(EditScores(0.95, 0.0, 0.89, 10))


def test_largest_gain_by_hand():
    # 48 pairs: 2 · √(0.25 / 48) = 0.144 is the noise level
    scores = {("wplus", "paper"): EditScores(0.56, 0.0, 0.66, 48), ("wplus", "neighbours"): EditScores(0.98, 0.0, 0.93, 48),
              ("clip", "paper"): EditScores(0.35, 0.10, 0.62, 48)}
    assert largest_gain(scores) == (("wplus", "neighbours"), True)
    assert largest_gain({"a": EditScores(0.20, 0.10, 1.0, 48)}) == ("a", False)  # gain 0.10 < 0.144: within noise
    assert largest_gain({"a": EditScores(0.5, 0.0, 1.0, 48), "b": EditScores(0.6, 0.1, 1.0, 48)})[0] == "a"  # a tie: first
    with pytest.raises(ValueError):
        largest_gain({})


def test_rises_with_beta_by_hand():
    # 100 pairs: the margin is 2 · √(0.25 / 100) = 0.1
    assert rises_with_beta([0.0, 0.33, 0.56, 0.52, 0.54], 100)  # a dip of 0.04 is within the margin
    assert not rises_with_beta([0.0, 0.5, 0.3], 100)  # a drop of 0.2
    assert not rises_with_beta([0.5, 0.55], 100)  # up, but by less than the margin
    assert rises_with_beta([0.5, 0.61], 100)
    with pytest.raises(ValueError, match="two or more"):
        rises_with_beta([0.5], 100)


def _face(**changes):
    face = {a: values[0] for a, values in ATTRIBUTES.items()}
    face["hair_length"] = "short"  # not bald: hair colour is scored
    face.update(changes)
    return face


def test_score_edits_by_hand():
    # 4 pairs asking for a hat; the classifier's readings are given directly (lists of attribute dicts)
    before = [_face(hat="no"), _face(hat="no"), _face(hat="no"), _face(hat="yes")]  # pair 3 already wears one
    after = [_face(hat="yes", beard="yes"), _face(hat="yes"), _face(hat="no"), _face(hat="yes")]
    s = score_edits(None, before, after, [("hat", "yes")] * 4)
    assert s.n == 4
    assert s.accuracy == pytest.approx(3 / 4)
    assert s.floor == pytest.approx(1 / 4)  # the reconstructions already read a hat once
    # 9 other attributes per pair, 36 in all, one (the beard of pair 0) changed
    assert s.preservation == pytest.approx(35 / 36)


def test_bars_name_each_target_and_whether_it_is_met():
    flags = bars({"text_acc": 0.8, "edit_acc": 0.7})
    expected = {f"{k}>={t:.2f} ({label})": {"text_acc": 0.8, "edit_acc": 0.7}[k] >= t
                for k, t, label in BARS if k in ("text_acc", "edit_acc")}
    assert flags == expected
    assert sorted(flags.values()) == [False, False, True]  # text 0.8: ≥ 0.75 met, ≥ 0.85 not; edit 0.7 < 0.80
