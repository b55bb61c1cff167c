"""The one claim registry: decorated criteria, one status enum, and a claim added by claims.yaml + one function."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml

from solo_offdiag import claim_registry as R
from solo_offdiag.claim_registry import Outcome, Status, register_criterion
from solo_offdiag.cli.main import main
from solo_offdiag.repro import claims as C
from solo_offdiag.repro.artifact import artifact_dir


@pytest.fixture
def registry(monkeypatch):
    """A copy of the registry: what a test registers does not outlive it."""
    monkeypatch.setattr(R, "CRITERIA", dict(R.CRITERIA))
    return R.CRITERIA


def test_every_check_of_the_claims_file_names_a_registered_criterion():
    used = set()
    for claim in C.load_claims():
        for check in claim.checks:
            judge = check.judge
            assert judge.evidence == ("theory" if check.is_theory else "image")
            used.add(judge.name)
    # and nothing registered is dead: every criterion judges some check
    assert used == set(R.list_criteria())
    assert {"c1_competitive", "c2_identity_collapse", "c3_rise_fall"} == set(R.list_criteria("image"))
    assert {"check_c3_offdiag", "check_c4", "check_c8"} <= set(R.list_criteria("theory"))


def test_registration_is_by_function_name_and_refuses_a_second_function(registry):
    @register_criterion("image")
    def dummy_rule(records, params, label="X"):
        return Outcome(label, Status.PASS, "ok")

    assert R.get_criterion("dummy_rule").function is dummy_rule
    assert register_criterion("image")(dummy_rule) is dummy_rule  # the same function again: no-op

    def other(records, params, label="X"):
        return Outcome(label, Status.FAIL, "")

    other.__name__ = "dummy_rule"
    with pytest.raises(ValueError, match="already registered"):
        register_criterion("image")(other)
    with pytest.raises(ValueError, match="allowed: image, theory"):
        register_criterion("audio")


def test_unknown_criterion_names_the_known_ones_and_the_closest():
    with pytest.raises(R.UnknownCriterionError, match=r"'c1_competetive' \(did you mean 'c1_competitive'\?\)"):
        R.get_criterion("c1_competetive")
    with pytest.raises(R.UnknownCriterionError, match="unknown theory criterion 'c1_competitive'.*check_c4"):
        R.get_criterion("c1_competitive", "theory")  # registered, but it reads image evidence


def test_status_is_one_enum_that_prints_and_serialises_as_its_name():
    assert [str(s) for s in Status] == ["PASS", "FAIL", "SKIPPED"]
    assert f"{Status.SKIPPED:<8}|" == "SKIPPED |" and Status.PASS == "PASS"
    assert json.dumps({"s": Status.FAIL}) == '{"s": "FAIL"}'
    assert Status.of(True) is Status.PASS and Status.of(False) is Status.FAIL
    assert Status.combine([Status.PASS, Status.FAIL]) is Status.FAIL
    assert Status.combine([Status.SKIPPED, Status.PASS]) is Status.PASS
    assert Status.combine([]) is Status.SKIPPED


def test_adding_a_claim_is_a_claims_file_entry_plus_one_decorated_function(tmp_path, fakes, registry, capsys):
    """Exactly what a contributor does: two new claims (one on image runs, one on a theory summary),
    each an entry in claims.yaml and a decorated function; `repro check` judges them."""

    @register_criterion("image")
    def c9_seed_count(records, params, label="C9"):
        n = len({r["seed"] for r in records if r["head"] == "offdiag"})
        return Outcome(label, Status.of(n >= params["min_seeds"]), f"{n} offdiag seed(s), need {params['min_seeds']}")

    @register_criterion("theory")
    def check_c10_arms(summary, arm="trainable"):
        runs = summary["arms"][arm]["runs"]
        return Outcome("C10", Status.of(len(runs) >= 4), f"{len(runs)} runs of {arm}", {"runs": len(runs)}, {"runs": 4})

    artifact = tmp_path / "artifact"  # an edited copy of the packaged artifact, used with --artifact DIR
    shutil.copytree(artifact_dir(), artifact, ignore=shutil.ignore_patterns("*.py", "__pycache__", "*.md", "*.sh"))
    data = yaml.safe_load((artifact / "claims.yaml").read_text())
    image_section = {"datasets": ["digits"], "min_seeds": 1, "reason": "one seed is what the smoke preset runs"}
    data["claims"].append({
        "id": "C9", "statement": "A dummy image claim.", "kind": "image", "figure_or_table": "none",
        "checks": [{"name": "image", "experiment": "image_heads", "metric": "seeds", "criterion": "c9_seed_count",
                    "full": image_section, "smoke": image_section}]})
    data["claims"].append({
        "id": "C10", "statement": "A dummy theory claim.", "kind": "theory", "figure_or_table": "none",
        "checks": [{"name": "theory", "experiment": "theory/a_trainable_head", "metric": "runs",
                    "criterion": "theory", "function": "check_c10_arms", "kwargs": {"arm": "trainable"},
                    "full": {"preset": "default"}, "smoke": {"preset": "default"}}]})
    claims_file = artifact / "claims.yaml"
    claims_file.write_text(yaml.safe_dump(data, sort_keys=False))

    results = tmp_path / "results"
    fakes.write_theory_results(results / "smoke", good=True)
    fakes.write_finished(results / "smoke" / "image" / "digits" / "byol_offdiag-offdiag" / "seed0",
                         fakes.image_record("digits", "offdiag", 0, 90.0))
    assert main(["repro", "check", "--results", str(results), "--artifact", str(artifact)]) == 0
    out = capsys.readouterr().out
    assert "C9  PASS    A dummy image claim." in out
    assert "C9[image]    PASS    1 offdiag seed(s), need 1" in out
    assert "C10 PASS    A dummy theory claim." in out
    assert "C10[theory]  PASS    theory/a_trainable_head: 4 runs of trainable" in out
    assert "C4  PASS" in out  # the file's own claims are judged as before
    report = json.loads((results / "smoke" / "check.json").read_text())
    assert [c["claim"] for c in report["claims"]][-2:] == ["C9", "C10"]

    # a claim naming a criterion nobody registered is refused when the file is read, with the name
    data["claims"][-1]["checks"][0]["function"] = "check_c10_arm"
    claims_file.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(C.ClaimsFileError, match=r"claim C10.checks\[0\].function: .*'check_c10_arm' "
                                                r"\(did you mean 'check_c10_arms'\?\)"):
        C.load_claims(claims_file)


def _image_records(fakes, datasets, good: bool) -> list[dict]:
    """Image runs on which C1-C3 hold (``good``) or fail."""
    rise_fall = {"peak": 1.0, "final": 0.1 if good else 0.9, "peak_position": 0.3}
    heads = {"mlp": (90.0, 40.0), "offdiag": (90.0 if good else 70.0, 40.0), "identity": (50.0 if good else 90.0,
                                                                                           5.0 if good else 40.0)}
    return [fakes.image_record(ds, head, seed, probe, rankme, offdiag=rise_fall if head == "offdiag" else None)
            for ds in datasets for head, (probe, rankme) in heads.items() for seed in range(2)]


@pytest.mark.parametrize("good", [True, False], ids=["holds", "fails"])
def test_every_registered_criterion_image_and_theory_returns_an_outcome(fakes, good):
    """One result type: each criterion of the claims file, image and theory, judges evidence for or
    against its claim and returns an Outcome whose Status says so; it serialises with "status"."""
    judged = {}
    for claim in C.load_claims():
        for check in claim.checks:
            if check.is_theory:
                out = check.judge.function(fakes.theory_summary(check.theory_experiment, good), **check.kwargs)
            else:
                params = check.params["smoke"]
                out = check.judge.function(_image_records(fakes, params["datasets"], good), params, label=check.label)
            assert type(out) is Outcome and type(out.status) is Status, (check.label, out)
            assert out.status is Status.of(good) and out.passed is good, (check.label, out.detail)
            assert json.loads(json.dumps(out.to_dict()))["status"] == str(Status.of(good))
            judged[check.judge.name] = out
    assert set(judged) == set(R.list_criteria())  # every registered criterion, image and theory


def test_there_is_one_result_class():
    """No module defines a second verdict type next to Outcome (a class with a detail and a
    passed/status field); the theory criteria's former CriterionResult is gone."""
    import ast
    from pathlib import Path

    import solo_offdiag
    from solo_offdiag.theory import criteria

    assert not hasattr(criteria, "CriterionResult") and "CriterionResult" not in criteria.__all__
    verdict_types = []
    for path in sorted(Path(solo_offdiag.__file__).parent.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef):
                fields = {s.target.id for s in node.body if isinstance(s, ast.AnnAssign) and isinstance(s.target, ast.Name)}
                if "detail" in fields and fields & {"passed", "status"}:
                    verdict_types.append(f"{path.name}:{node.name}")
    assert verdict_types == ["claim_registry.py:Outcome"]


def test_no_module_types_a_status_by_hand():
    """PASS/FAIL/SKIPPED are written as Status members everywhere but in their definition."""
    import ast
    from pathlib import Path

    import solo_offdiag

    hand_typed = []
    for path in sorted(Path(solo_offdiag.__file__).parent.rglob("*.py")):
        if path.name == "claim_registry.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and node.value in {s.value for s in Status}:
                hand_typed.append(f"{path.name}:{node.lineno} {node.value!r}")
    assert not hand_typed, hand_typed
