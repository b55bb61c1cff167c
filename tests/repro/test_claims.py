"""The claims file validates; the image criteria pass and fail on synthetic results."""

from __future__ import annotations

import copy
import math

import pytest
import yaml

from solo_offdiag.repro import claims as C
from solo_offdiag.repro.experiments import THEORY_PRESET
from solo_offdiag.theory import criteria as TC


@pytest.fixture(scope="module")
def raw() -> dict:
    return yaml.safe_load(C.CLAIMS_FILE.read_text())


def test_claims_file_validates_and_covers_c1_to_c8():
    claims = C.load_claims()
    assert [c.id for c in claims] == [f"C{i}" for i in range(1, 9)]
    for claim in claims:
        assert claim.checks and claim.statement and claim.figure_or_table
        for check in claim.checks:
            assert set(check.params) == {"smoke", "medium", "full"}
            assert check.metric


def test_paper_values_are_empty_or_sourced():
    for claim in C.load_claims():
        assert claim.paper_value is None or (claim.paper_value_source and "p" in claim.paper_value_source)


def test_paper_value_without_source_is_rejected(raw):
    bad = copy.deepcopy(raw)
    bad["claims"][0]["paper_value"] = 91.2
    with pytest.raises(C.ClaimsFileError, match="paper_value_source"):
        C.parse_claims(bad)
    bad["claims"][0]["paper_value_source"] = "p. 8, Table 1"
    assert C.parse_claims(bad)[0].paper_value == 91.2


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d["claims"].append(d["claims"][0]), "unique"),
    (lambda d: d.update(claims=[]), "at least one claim"),
    (lambda d: d["claims"][0]["checks"][0].update(criterion="magic"), "criterion"),
    (lambda d: d["claims"][0]["checks"][0]["smoke"].pop("reason"), "reason"),
    (lambda d: d["claims"][3]["checks"][0].update(function="check_nothing"), "function"),
    (lambda d: d["claims"][0].update(typo=1), "unknown key"),
    (lambda d: d.update(schema_version=2), "schema_version"),
])
def test_malformed_claims_are_rejected_with_the_key(raw, mutate, message):
    bad = copy.deepcopy(raw)
    mutate(bad)
    with pytest.raises(C.ClaimsFileError, match=message):
        C.parse_claims(bad)


def test_theory_thresholds_in_the_file_match_the_code():
    by_function = {k.function: k for c in C.load_claims() for k in c.checks if k.is_theory}
    c3 = by_function["check_c3_offdiag"].thresholds
    assert (c3["peak_over_final"], c3["peak_position_max"]) == (TC.OFFDIAG_PEAK_OVER_FINAL, TC.OFFDIAG_PEAK_LATEST)
    assert by_function["check_c6"].thresholds["late_factor"] == TC.LATE_FACTOR
    assert by_function["check_c7"].thresholds["late_factor"] == TC.LATE_FACTOR
    from solo_offdiag.theory.experiments import THEORY_PRESETS

    for check in by_function.values():  # the k-of-n numbers the file states are the code's
        t = check.thresholds
        assert t["seeds"] == THEORY_PRESETS["default"]["seeds"] and t["target_rate"] == TC.TARGET_RATE
        assert t["k_required"] == TC.required_passes(t["seeds"])
        assert abs(t["pass_probability_at_target"] - TC.binomial_pass_probability(t["seeds"], t["k_required"],
                                                                                   TC.TARGET_RATE)) < 5e-4
    c8 = by_function["check_c8"].thresholds
    assert c8["t1_slope"] == [TC.T1_SLOPE_TARGET - TC.T1_SLOPE_TOL, TC.T1_SLOPE_TARGET + TC.T1_SLOPE_TOL]
    assert c8["peak_slope"] == [TC.PEAK_SLOPE_TARGET - TC.PEAK_SLOPE_TOL, TC.PEAK_SLOPE_TARGET + TC.PEAK_SLOPE_TOL]
    assert c8["substitution_over_t1_max"] == TC.SUB_OVER_T1_MAX
    for check in by_function.values():
        for preset, theory_preset in THEORY_PRESET.items():
            assert check.params[preset]["preset"] == theory_preset


def test_image_criteria_datasets_match_the_pinned_image_grid():
    from solo_offdiag.repro.experiments import image_grid

    for preset in ("smoke", "medium", "full"):
        grid_datasets = {e["dataset"] for e in image_grid(preset)["grid"]}
        heads = {h for e in image_grid(preset)["grid"] for h in e["heads"]}
        assert {"mlp", "offdiag", "identity"} <= heads
        for claim in C.load_claims():
            for check in claim.checks:
                if not check.is_theory:
                    assert set(check.params[preset]["datasets"]) <= grid_datasets


# ---------------------------------------------------------------------------- image criteria
P1 = {"datasets": ["a", "b"], "margin_points": 2.0}


def test_c1_passes_within_the_margin_and_fails_outside(fakes):
    ok = [fakes.image_record(d, h, s, acc) for d in "ab" for s in range(2)
          for h, acc in (("mlp", 90.0), ("offdiag", 88.5))]
    assert C.c1_competitive(ok, P1).status == "PASS"
    bad = [dict(r, probe_acc1=85.0) if (r["dataset"], r["head"]) == ("b", "offdiag") else r for r in ok]
    out = C.c1_competitive(bad, P1)
    assert out.status == "FAIL" and out.measured["b"]["gap"] == pytest.approx(5.0)
    assert "b: offdiag 85.0 vs mlp 90.0" in out.detail


def test_c1_is_skipped_when_a_dataset_is_missing_but_fails_on_evidence(fakes):
    only_a = [fakes.image_record("a", "mlp", 0, 90.0), fakes.image_record("a", "offdiag", 0, 89.0)]
    out = C.c1_competitive(only_a, P1)
    assert out.status == "SKIPPED" and "no results for b" in out.detail
    out = C.c1_competitive([dict(r, probe_acc1=50.0) if r["head"] == "offdiag" else r for r in only_a], P1)
    assert out.status == "FAIL"


P2 = {"datasets": ["a"], "accuracy_gap_points": 10.0, "rank_ratio_max": 0.5}


@pytest.mark.parametrize("identity_acc, identity_rank, status", [
    (70.0, 40.0, "PASS"),   # 20 points lower
    (88.0, 10.0, "PASS"),   # rank collapsed to a quarter
    (88.0, 40.0, "FAIL"),   # neither
])
def test_c2_accuracy_gap_or_rank_ratio(identity_acc, identity_rank, status, fakes):
    recs = [fakes.image_record("a", "offdiag", 0, 90.0, rankme=40.0),
            fakes.image_record("a", "identity", 0, identity_acc, rankme=identity_rank)]
    assert C.c2_identity_collapse(recs, P2).status == status


P3 = {"datasets": ["a"], "peak_over_final": 2.0, "peak_position_max": 0.8, "min_fraction": 0.75}


@pytest.mark.parametrize("peak, final, position, status", [
    (1.0, 0.3, 0.4, "PASS"),
    (1.0, 0.6, 0.4, "FAIL"),    # did not fall to half
    (1.0, 0.3, 0.95, "FAIL"),   # peak too late
    (0.0, 0.0, 0.0, "FAIL"),    # never moved
])
def test_c3_rise_and_fall(peak, final, position, status, fakes):
    recs = [fakes.image_record("a", "offdiag", 0, 90.0, offdiag={"peak": peak, "final": final,
                                                           "peak_position": position})]
    assert C.c3_rise_fall(recs, P3).status == status


def test_criteria_ignore_non_finite_values(fakes):
    recs = [fakes.image_record("a", "mlp", 0, 90.0), fakes.image_record("a", "mlp", 1, math.nan),
            fakes.image_record("a", "offdiag", 0, 89.0)]
    assert C.c1_competitive(recs, {"datasets": ["a"], "margin_points": 2.0}).status == "PASS"
