"""``repro check``: one PASS/FAIL/SKIPPED line per claim from the finished runs of a preset.

Evidence is read only from finished runs (folders with ``done.json``): image records from
``image/**/done.json``, theory summaries from ``theory/<name>/summary.json``.

Verdicts. A check is SKIPPED when its evidence is missing (the experiment was not run, or
solo-learn is not installed for the image checks: then the line carries the install hint).
A claim is FAIL if any of its checks fails, PASS if none fails and at least one passes, else
SKIPPED. Exit code: 1 if any claim FAILs; SKIPPED does not fail the check (so the smoke preset
without solo-learn still exits 0 on the theory claims) unless ``strict`` is set, which an
artifact evaluation of the full study should use.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from solo_offdiag.claim_registry import Outcome, Status
from solo_offdiag.io import atomic_write_json, atomic_write_text
from solo_offdiag.repro.claims import Check, Claim, load_claims
from solo_offdiag.repro.runner import read_done, read_json_object

__all__ = ["ClaimVerdict", "Report", "evaluate", "image_records", "theory_summary"]


@dataclass
class ClaimVerdict:
    claim: str
    status: Status
    statement: str
    checks: list[Outcome] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"claim": self.claim, "status": self.status, "statement": self.statement,
                "checks": [c.to_dict() for c in self.checks]}


@dataclass
class Report:
    preset: str
    verdicts: list[ClaimVerdict]
    strict: bool = False

    @property
    def exit_code(self) -> int:
        bad = {Status.FAIL, Status.SKIPPED} if self.strict else {Status.FAIL}
        return 1 if any(v.status in bad for v in self.verdicts) else 0

    def lines(self) -> list[str]:
        out = []
        for v in self.verdicts:
            stmt = v.statement if len(v.statement) <= 90 else v.statement[:87] + "..."
            out.append(f"{v.claim:<3} {v.status:<7} {stmt}")
            for c in v.checks:
                out.append(f"    {c.label:<12} {c.status:<7} {c.detail}")
        counts = ", ".join(f"{sum(v.status == s for v in self.verdicts)} {s}" for s in Status)
        out.append(f"preset {self.preset}: {counts}" + (" (strict: SKIPPED fails)" if self.strict else ""))
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"preset": self.preset, "strict": self.strict, "exit_code": self.exit_code,
                "claims": [v.to_dict() for v in self.verdicts]}


def image_records(preset_dir: Path) -> list[dict[str, Any]]:
    """The ``result`` of every finished image run of the preset."""
    records = []
    for done_path in sorted((preset_dir / "image").glob("**/done.json")):
        done = read_done(done_path.parent)
        if done is not None and isinstance(done.get("result"), dict) and done["result"]:
            records.append({**done["result"], "_run_dir": str(done_path.parent)})
    return records


def theory_summary(preset_dir: Path, name: str) -> dict[str, Any] | None:
    run_dir = preset_dir / "theory" / name
    if read_done(run_dir) is None:
        return None
    summary = read_json_object(run_dir / "summary.json")
    return summary or None


def _theory_outcome(check: Check, preset: str, preset_dir: Path) -> Outcome:
    name = check.theory_experiment
    summary = theory_summary(preset_dir, name)
    if summary is None:
        return Outcome(check.label, Status.SKIPPED,
                            f"no finished run of theory/{name} in {preset_dir} "
                            f"(run: solo-offdiag repro run {name} --preset {preset})")
    wanted = check.params[preset]["preset"]
    if summary.get("preset") != wanted:
        return Outcome(check.label, Status.SKIPPED,
                       f"theory/{name} was run with theory preset {summary.get('preset')!r}, "
                            f"the claims file asks for {wanted!r}")
    try:
        outcome: Outcome = check.judge.function(summary, **check.kwargs)
    except (KeyError, ValueError) as err:
        return Outcome(check.label, Status.FAIL, f"theory/{name}: summary lacks what {check.function} "
                       f"needs ({type(err).__name__}: {err})")
    # the criterion's label is its claim ("C4"); in the report the check's label and source are shown
    return replace(outcome, label=check.label, detail=f"theory/{name}: {outcome.detail}")


def _image_outcome(check: Check, preset: str, preset_dir: Path, records: list[dict[str, Any]],
                   image_skip_reason: str | None) -> Outcome:
    params = check.params[preset]
    method = params.get("method", "byol_offdiag")
    recs = [r for r in records if r.get("method", "byol_offdiag") == method]
    if not recs:
        why = image_skip_reason or (f"no finished image runs in {preset_dir / 'image'} "
                                    f"(run: solo-offdiag repro run image_heads --preset {preset})")
        return Outcome(check.label, Status.SKIPPED, why)
    return check.judge.function(recs, params, label=check.label)


def evaluate(results: Path, preset: str, *, strict: bool = False, claims: Sequence[Claim] | None = None,
             image_skip_reason: str | None = None) -> Report:
    """Judge every claim on the finished runs under ``results/<preset>``.

    ``image_skip_reason``: why image evidence is missing (e.g. solo-learn not installed), shown on
    the SKIPPED image lines when there are no image records.
    """
    claims = list(claims) if claims is not None else load_claims()
    preset_dir = Path(results) / preset
    records = image_records(preset_dir)
    verdicts = []
    for claim in claims:
        outcomes = [_theory_outcome(check, preset, preset_dir) if check.judge.evidence == "theory"
                    else _image_outcome(check, preset, preset_dir, records, image_skip_reason)
                    for check in claim.checks]
        verdicts.append(ClaimVerdict(claim.id, Status.combine(o.status for o in outcomes),
                                     " ".join(claim.statement.split()), outcomes))
    return Report(preset, verdicts, strict)


def write_report(report: Report, preset_dir: Path) -> None:
    """``check.json`` and ``check.txt`` in the preset's results folder."""
    atomic_write_json(preset_dir / "check.json", report.to_dict())
    atomic_write_text(preset_dir / "check.txt", "\n".join(report.lines()) + "\n")
