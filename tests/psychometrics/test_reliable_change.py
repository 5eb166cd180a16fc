"""Reliable change maths against published check values and the documented boundary rules."""

import math

import pytest

from mit_fhir.psychometrics.parameters import load_parameters
from mit_fhir.psychometrics.reliable_change import (
    Category,
    ChangeDirection,
    CutoffType,
    Direction,
    GroupStatistics,
    Method,
    MethodNotApplicable,
    ParameterError,
    ReliableChangeParameters,
    classify,
    cutoff,
    rci,
    smallest_reliable_change,
    standard_error,
    standard_error_of_difference,
)

LOWER = Direction.LOWER_IS_BETTER
HIGHER = Direction.HIGHER_IS_BETTER


@pytest.mark.parametrize(
    ("sd", "r", "se", "s_diff", "reliable_change"),
    [
        # suddengains unit tests (check values in shared/reference/psychometrics.md)
        (10.5, 0.961, 2.073584, 2.93249, 5.747681),
        (6.396073, 0.931, 1.680111, 2.376036, 4.65703),
    ],
)
def test_suddengains_check_values(sd, r, se, s_diff, reliable_change):
    params = ReliableChangeParameters(direction=LOWER, reliability=r, sd=sd)
    assert standard_error(sd, r) == pytest.approx(se, abs=1e-6)
    assert standard_error_of_difference(sd, r) == pytest.approx(s_diff, abs=1e-5)
    assert smallest_reliable_change(0, params, Method.JACOBSON_TRUAX) == pytest.approx(
        reliable_change, abs=1e-5
    )


def norms(direction, kind):
    # clinicalsignificance tests/testthat/test-calc_cutoff.R (Jacobson et al. example)
    return ReliableChangeParameters(
        direction=direction,
        reliability=0.8,
        sd=7.5,
        cutoff_type=kind,
        clinical_mean=40,
        clinical_sd=7.5,
        functional_mean=60,
        functional_sd=7.5,
    )


@pytest.mark.parametrize(
    ("direction", "kind", "expected"),
    [
        (HIGHER, CutoffType.C, 50),
        (LOWER, CutoffType.C, 50),
        (HIGHER, CutoffType.A, 55),
        (LOWER, CutoffType.A, 25),
        (HIGHER, CutoffType.B, 45),
        (LOWER, CutoffType.B, 75),
    ],
)
def test_cutoffs(direction, kind, expected):
    assert cutoff(norms(direction, kind)) == pytest.approx(expected)


def test_cutoff_b_uses_the_functional_sd():
    params = ReliableChangeParameters(
        direction=LOWER,
        reliability=0.8,
        sd=10,
        cutoff_type=CutoffType.B,
        clinical_mean=40,
        clinical_sd=20,
        functional_mean=10,
        functional_sd=5,
    )
    assert cutoff(params) == 20  # 10 + 2*5, not 10 + 2*20


def test_cutoff_c_with_unequal_sds():
    params = ReliableChangeParameters(
        direction=LOWER,
        reliability=0.8,
        sd=10,
        cutoff_type=CutoffType.C,
        clinical_mean=30,
        clinical_sd=10,
        functional_mean=10,
        functional_sd=5,
    )
    assert cutoff(params) == pytest.approx((5 * 30 + 10 * 10) / 15)


def test_cutoff_names_what_is_missing():
    params = ReliableChangeParameters(
        direction=LOWER, reliability=0.8, sd=10, cutoff_type=CutoffType.C, clinical_mean=30
    )
    with pytest.raises(ParameterError, match="cutoff c needs clinical_sd, functional_mean"):
        cutoff(params)


UNIT = ReliableChangeParameters(direction=HIGHER, reliability=0.5, sd=1.0)  # S_diff == 1.0


def test_index_exactly_at_critical_value_is_not_reliable():
    assert standard_error_of_difference(1.0, 0.5) == 1.0
    result = classify(0.0, 1.96, UNIT)
    assert result.index == 1.96
    assert not result.reliable
    assert result.category is Category.UNCHANGED
    assert classify(0.0, 1.9600001, UNIT).reliable


def test_published_critical_difference_is_inclusive():
    params = ReliableChangeParameters(direction=LOWER, critical_difference=6)
    assert classify(16, 10, params).reliable
    assert not classify(16, 11, params).reliable


PHQ = ReliableChangeParameters(direction=LOWER, critical_difference=6, cutoff_value=10)


@pytest.mark.parametrize(
    ("pre", "post", "category"),
    [
        (10, 4, Category.RECOVERED),  # a pre score at the cutoff counts as clinical
        (16, 10, Category.IMPROVED),  # a post score at the cutoff is not functional
        (20, 9, Category.RECOVERED),
        (20, 16, Category.UNCHANGED),
        (12, 18, Category.DETERIORATED),  # clinical already at pre
        (9, 15, Category.HARMED),
        (4, 10, Category.HARMED),  # reaching the cutoff counts as clinical
        (3, 9, Category.DETERIORATED),  # reliable worsening inside the functional range
    ],
)
def test_categories_and_cutoff_boundary(pre, post, category):
    assert classify(pre, post, PHQ).category is category


def test_direction_higher_is_better():
    params = ReliableChangeParameters(
        direction=HIGHER,
        reliability=0.8,
        sd=5,
        cutoff_type=CutoffType.A,
        clinical_mean=10,
        clinical_sd=2,
    )
    up = classify(10, 20, params)
    assert up.index > 0
    assert up.change_direction is ChangeDirection.IMPROVEMENT
    assert up.category is Category.RECOVERED  # cutoff a = 14
    down = classify(20, 10, params)
    assert down.change_direction is ChangeDirection.DETERIORATION
    assert down.category is Category.HARMED


def test_no_cutoff_gives_no_recovery():
    result = classify(30, 5, ReliableChangeParameters(direction=LOWER, reliability=0.9, sd=5))
    assert result.category is Category.IMPROVED
    assert result.cutoff is None and result.crossed_cutoff is None


def test_published_difference_below_the_cutoff():
    params = ReliableChangeParameters(
        direction=LOWER,
        critical_difference=0.43,
        critical_difference_functional=0.16,
        cutoff_value=0.57,
    )
    assert classify(0.40, 0.20, params).reliable  # functional at pre: 0.16 applies
    assert not classify(0.90, 0.60, params).reliable  # clinical at pre: 0.43 applies


@pytest.mark.parametrize(
    ("questionnaire", "link_id", "pre", "post"),
    [("ders", "ders-total", 118, 57), ("scl-90-r", "scl-90-r-gsi", 2.100, 0.222)],
)
def test_case_report_acceptance(questionnaire, link_id, pre, post):
    score = load_parameters().get(questionnaire, link_id)
    result = classify(pre, post, score.to_parameters(), score.default_method)
    assert result.reliable
    assert result.change_direction is ChangeDirection.IMPROVEMENT
    assert result.category is Category.RECOVERED


def test_single_patient_en_and_gln_regress_to_the_clinical_mean():
    params = ReliableChangeParameters(direction=LOWER, reliability=0.8, sd=10, clinical_mean=30)
    se = 10 * math.sqrt(0.2)
    assert rci(40, 20, params, Method.EDWARDS_NUNNALLY) == pytest.approx(
        (20 - (0.8 * 10 + 30)) / se
    )
    assert rci(40, 20, params, Method.GULLIKSEN_LORD_NOVICK) == pytest.approx(
        ((20 - 30) - 0.8 * 10) / (10 * math.sqrt(1 - 0.64))
    )


@pytest.mark.parametrize("method", [Method.HSU_LIN_LORD, Method.HAGEMAN_ARRINDELL])
def test_group_methods_refuse_a_single_patient(method):
    params = ReliableChangeParameters(direction=LOWER, reliability=0.8, sd=10, clinical_mean=30)
    with pytest.raises(MethodNotApplicable, match="single patient"):
        classify(40, 20, params, method)


def test_critical_difference_only_defines_jacobson_truax():
    with pytest.raises(MethodNotApplicable, match="needs reliability and sd"):
        classify(16, 10, PHQ, Method.EDWARDS_NUNNALLY)


def test_hageman_arrindell_from_the_original_formula():
    group = GroupStatistics(pre_mean=10, post_mean=7, post_sd=6, correlation=0.5)
    params = ReliableChangeParameters(direction=LOWER, reliability=0.8, sd=5, group=group)
    se2 = 25 * 0.2
    r_pre, r_post = (25 - se2) / 25, (36 - se2) / 36
    r_dd = (25 * r_pre + 36 * r_post - 2 * 5 * 6 * 0.5) / (25 + 36 - 2 * 5 * 6 * 0.5)
    expected = ((2 - 30) * r_dd + (7 - 10) * (1 - r_dd)) / (math.sqrt(r_dd) * math.sqrt(2 * se2))
    result = classify(30, 2, params, Method.HAGEMAN_ARRINDELL)
    assert result.index == pytest.approx(expected)
    assert result.critical_value == 1.65


def test_hsu_lin_lord_uses_the_group_post_mean():
    group = GroupStatistics(pre_mean=30, post_mean=15)
    params = ReliableChangeParameters(direction=LOWER, reliability=0.8, sd=10, group=group)
    assert rci(40, 20, params, Method.HSU_LIN_LORD) == pytest.approx(
        ((20 - 15) - 0.8 * 10) / (10 * 0.6)
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"reliability": 1.0, "sd": 5}, "reliability must be in \\(0, 1\\), got 1.0"),
        ({"reliability": 0.0, "sd": 5}, "reliability must be in \\(0, 1\\)"),
        ({"reliability": 0.8, "sd": 0}, "sd must be a positive number, got 0"),
        ({"reliability": 0.8, "sd": -2}, "sd must be a positive number"),
        ({"reliability": 0.8}, "needs reliability and sd, or a published critical_difference"),
        ({"critical_difference": 6, "clinical_sd": 0}, "clinical_sd must be a positive"),
    ],
)
def test_invalid_parameters(kwargs, message):
    with pytest.raises(ParameterError, match=message):
        ReliableChangeParameters(direction=LOWER, **kwargs)


def test_non_finite_scores_are_rejected():
    with pytest.raises(ParameterError, match="post score must be a finite number"):
        classify(10, math.nan, PHQ)
