"""The claims file (``artifact/claims.yaml``): loading, validation, and the image-claim criteria.

Each claim (its id is the file's: C1-C8 today) has one or more *checks*; a check names the
experiment producing its evidence, the metric, a criterion and its parameters per preset
(``full``, ``medium``, ``smoke``). Criteria are looked up in the one registry,
:mod:`solo_offdiag.claim_registry`: image criteria (C1-C3 on real images) are registered here as
pure functions of image-run records; theory criteria (C3 theory side, C4-C8) in
:mod:`solo_offdiag.theory.criteria`, named by the check's ``function`` (``criterion: theory``).
Adding a claim is an entry in the claims file plus one decorated function.

An image-run record is the ``result`` dict of an image run's ``done.json``
(:mod:`solo_offdiag.repro.experiments`): ``dataset``, ``head``, ``seed``, ``probe_acc1``,
``knn_acc1``, ``rankme_z``, ``head_offdiag`` (``peak``, ``final``, ``peak_position``).

Examples:
    >>> claims = load_claims()
    >>> [c.id for c in claims][:3]
    ['C1', 'C2', 'C3']
    >>> recs = [{"dataset": "d", "head": "mlp", "seed": 0, "probe_acc1": 90.0},
    ...         {"dataset": "d", "head": "offdiag", "seed": 0, "probe_acc1": 89.0}]
    >>> print(c1_competitive(recs, {"datasets": ["d"], "margin_points": 2.0}).status)
    PASS
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from solo_offdiag.claim_registry import (
    Criterion,
    Outcome,
    Status,
    UnknownCriterionError,
    get_criterion,
    register_criterion,
)
from solo_offdiag.repro.artifact import artifact_file
from solo_offdiag.theory import criteria as _theory_criteria  # noqa: F401  (registers the theory criteria)

__all__ = [
    "CLAIMS_FILE",
    "PRESETS",
    "Check",
    "Claim",
    "ClaimsFileError",
    "c1_competitive",
    "c2_identity_collapse",
    "c3_rise_fall",
    "load_claims",
]

#: artifact/claims.yaml: the installed package's copy, else the source checkout's.
CLAIMS_FILE = artifact_file("claims.yaml")
PRESETS = ("smoke", "medium", "full")
#: presets a check may leave out: it then uses the named preset's section (the theory checks run
#: the same theory preset for every repro preset).
PRESET_FALLBACK = {"medium": "smoke"}


class ClaimsFileError(ValueError):
    """The claims file is malformed; the message names the claim/check and the offending key."""


@dataclass(frozen=True)
class Check:
    """One check of a claim: where the evidence comes from and how it is judged, per preset."""

    claim: str
    name: str
    experiment: str
    metric: str
    criterion: str
    params: dict[str, dict[str, Any]]  # preset -> parameters (incl. "reason")
    function: str | None = None  # theory criteria: the registered name (criterion is "theory")
    kwargs: dict[str, Any] = field(default_factory=dict)
    thresholds: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.claim}[{self.name}]"

    @property
    def is_theory(self) -> bool:
        return self.criterion == "theory"

    @property
    def theory_experiment(self) -> str | None:
        return self.experiment.split("/", 1)[1] if self.experiment.startswith("theory/") else None

    @property
    def criterion_name(self) -> str:
        """The name of the registered criterion judging this check."""
        return self.function if self.is_theory and self.function else self.criterion

    @property
    def judge(self) -> Criterion:
        """The registered criterion judging this check."""
        return get_criterion(self.criterion_name, "theory" if self.is_theory else "image")


@dataclass(frozen=True)
class Claim:
    id: str
    statement: str
    kind: str
    figure_or_table: str
    checks: tuple[Check, ...]
    paper_value: Any = None
    paper_value_source: str | None = None


# ------------------------------------------------------------------------------------------
# Loading and validation
# ------------------------------------------------------------------------------------------
_CLAIM_KEYS = {"id", "statement", "kind", "figure_or_table", "checks", "paper_value", "paper_value_source"}
_CHECK_KEYS = {"name", "experiment", "metric", "criterion", "full", "medium", "smoke", "function", "kwargs",
               "thresholds"}


def _require(mapping: Mapping[str, Any], key: str, where: str, kind: type | tuple[type, ...]) -> Any:
    if key not in mapping:
        raise ClaimsFileError(f"{where}: missing key {key!r}")
    value = mapping[key]
    if not isinstance(value, kind):
        raise ClaimsFileError(f"{where}.{key}: got {value!r}; expected {kind}")
    return value


def _unknown(mapping: Mapping[str, Any], allowed: set[str], where: str) -> None:
    extra = sorted(set(mapping) - allowed)
    if extra:
        raise ClaimsFileError(f"{where}: unknown key(s) {extra}; allowed: {sorted(allowed)}")


def parse_claims(data: Mapping[str, Any]) -> list[Claim]:
    """Validate the parsed YAML and build :class:`Claim` objects (raises :class:`ClaimsFileError`)."""
    if data.get("schema_version") != 1:
        raise ClaimsFileError(f"schema_version: got {data.get('schema_version')!r}; expected 1")
    raw = _require(data, "claims", "claims file", list)
    claims: list[Claim] = []
    seen: list[str] = []
    for i, c in enumerate(raw):
        where = f"claims[{i}]"
        if not isinstance(c, Mapping):
            raise ClaimsFileError(f"{where}: expected a mapping")
        _unknown(c, _CLAIM_KEYS, where)
        cid = _require(c, "id", where, str)
        where = f"claim {cid}"
        if not cid.strip() or cid in seen:
            raise ClaimsFileError(f"{where}: the id must be non-empty and unique; "
                                  f"ids so far: {', '.join(seen) or '(none)'}")
        seen.append(cid)
        paper_value, source = c.get("paper_value"), c.get("paper_value_source")
        if paper_value is not None and not (isinstance(source, str) and "p" in source.lower() and source.strip()):
            raise ClaimsFileError(
                f"{where}: paper_value is set ({paper_value!r}) but paper_value_source does not say "
                f"where in the paper it was transcribed from (page and table/figure): {source!r}")
        checks = []
        for j, k in enumerate(_require(c, "checks", where, list)):
            cw = f"{where}.checks[{j}]"
            if not isinstance(k, Mapping):
                raise ClaimsFileError(f"{cw}: expected a mapping")
            _unknown(k, _CHECK_KEYS, cw)
            name = _require(k, "name", cw, str)
            criterion = _require(k, "criterion", cw, str)
            params = {}
            for preset in PRESETS:
                if preset not in k and preset in PRESET_FALLBACK:
                    params[preset] = dict(params[PRESET_FALLBACK[preset]])
                    continue
                p = _require(k, preset, cw, dict)
                params[preset] = dict(p)
            if criterion == "theory":
                function = _require(k, "function", cw, str)
                try:
                    get_criterion(function, "theory")
                except UnknownCriterionError as err:
                    raise ClaimsFileError(f"{cw}.function: {err}") from None
                if not str(k["experiment"]).startswith("theory/"):
                    raise ClaimsFileError(f"{cw}.experiment: theory checks name 'theory/<experiment>'")
                for preset in PRESETS:
                    if params[preset].get("preset") not in ("default", "smoke"):
                        raise ClaimsFileError(f"{cw}.{preset}.preset: the theory preset, 'default' or 'smoke'")
            else:
                try:
                    get_criterion(criterion, "image")
                except UnknownCriterionError as err:
                    raise ClaimsFileError(f"{cw}.criterion: {err} (or 'theory' with a function)") from None
                function = None
                for preset in PRESETS:
                    if not params[preset].get("reason"):
                        raise ClaimsFileError(f"{cw}.{preset}: give the 'reason' for these thresholds")
                    _require(params[preset], "datasets", f"{cw}.{preset}", list)
            checks.append(Check(
                claim=cid, name=name, experiment=_require(k, "experiment", cw, str),
                metric=_require(k, "metric", cw, str), criterion=criterion, params=params,
                function=function, kwargs=dict(k.get("kwargs") or {}), thresholds=dict(k.get("thresholds") or {}),
            ))
        claims.append(Claim(
            id=cid, statement=_require(c, "statement", where, str), kind=_require(c, "kind", where, str),
            figure_or_table=_require(c, "figure_or_table", where, str), checks=tuple(checks),
            paper_value=paper_value, paper_value_source=source,
        ))
    if not claims:
        raise ClaimsFileError("claims file: 'claims' is empty; expected at least one claim")
    return claims


def load_claims(path: str | Path | None = None) -> list[Claim]:
    """Load and validate the claims file (default: ``artifact/claims.yaml``)."""
    import yaml

    path = Path(path) if path is not None else CLAIMS_FILE
    if not path.is_file():
        raise ClaimsFileError(f"claims file not found: {path}")
    with open(path, encoding="utf-8") as handle:
        return parse_claims(yaml.safe_load(handle))


# ------------------------------------------------------------------------------------------
# Image criteria: pure functions of image-run records and the preset's parameters
# ------------------------------------------------------------------------------------------
def _mean(values: Sequence[float]) -> float:
    vals = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    return sum(vals) / len(vals) if vals else math.nan


def _by(records: Sequence[Mapping[str, Any]], dataset: str, head: str, key: str) -> list[float]:
    return [r[key] for r in records if r.get("dataset") == dataset and r.get("head") == head
            and r.get(key) is not None]


def _verdict(label: str, per_dataset: dict[str, bool | None], measured: dict[str, Any],
             threshold: dict[str, Any], detail: str) -> Outcome:
    missing = [d for d, ok in per_dataset.items() if ok is None]
    failed = [d for d, ok in per_dataset.items() if ok is False]
    if failed:
        status = Status.FAIL
    elif missing:
        status = Status.SKIPPED
        detail = f"no results for {', '.join(missing)}; {detail}"
    else:
        status = Status.PASS
    return Outcome(label, status, detail, measured, threshold)


@register_criterion("image")
def c1_competitive(records: Sequence[Mapping[str, Any]], params: Mapping[str, Any], label: str = "C1") -> Outcome:
    """C1: per dataset and per metric in ``metrics`` (default: the linear probe, ``probe_acc1``;
    ``knn_acc1`` is the kNN), mean(offdiag) >= mean(mlp) - ``margin_points``; all must hold."""
    margin = float(params["margin_points"])
    metrics = list(params.get("metrics") or ["probe_acc1"])
    per: dict[str, bool | None] = {}
    measured: dict[str, Any] = {}
    parts = []
    for ds in params["datasets"]:
        oks = []
        for metric in metrics:
            off, mlp = _by(records, ds, "offdiag", metric), _by(records, ds, "mlp", metric)
            if not off or not mlp:
                oks = [None]
                break
            m_off, m_mlp = _mean(off), _mean(mlp)
            oks.append(bool(m_off >= m_mlp - margin))
            key = ds if metric == "probe_acc1" else f"{ds}/{metric}"
            measured[key] = {"offdiag": m_off, "mlp": m_mlp, "gap": m_mlp - m_off,
                             "n_seeds": [len(off), len(mlp)]}
            name = "" if metrics == ["probe_acc1"] else f" {metric.removesuffix('_acc1')}"
            parts.append(f"{ds}{name}: offdiag {m_off:.1f} vs mlp {m_mlp:.1f} ({len(off)}/{len(mlp)} seeds)")
        per[ds] = None if None in oks else all(oks)
    detail = "; ".join(parts) + (f" -- pass needs offdiag >= mlp - {margin:g} points" if parts else "")
    return _verdict(label, per, measured, {"margin_points": margin, "metrics": metrics}, detail)


@register_criterion("image")
def c2_identity_collapse(records: Sequence[Mapping[str, Any]], params: Mapping[str, Any],
                         label: str = "C2") -> Outcome:
    """C2: per dataset, identity's mean probe <= offdiag's - ``accuracy_gap_points`` OR its mean
    RankMe(z) <= ``rank_ratio_max`` x offdiag's."""
    gap_min = float(params["accuracy_gap_points"])
    ratio_max = float(params["rank_ratio_max"])
    per: dict[str, bool | None] = {}
    measured: dict[str, Any] = {}
    parts = []
    for ds in params["datasets"]:
        acc_id, acc_off = _by(records, ds, "identity", "probe_acc1"), _by(records, ds, "offdiag", "probe_acc1")
        rk_id, rk_off = _by(records, ds, "identity", "rankme_z"), _by(records, ds, "offdiag", "rankme_z")
        if not acc_id or not acc_off:
            per[ds] = None
            continue
        gap = _mean(acc_off) - _mean(acc_id)
        ratio = _mean(rk_id) / _mean(rk_off) if rk_id and rk_off and _mean(rk_off) > 0 else math.nan
        ok_acc = gap >= gap_min
        ok_rank = math.isfinite(ratio) and ratio <= ratio_max
        per[ds] = bool(ok_acc or ok_rank)
        measured[ds] = {"probe_identity": _mean(acc_id), "probe_offdiag": _mean(acc_off), "gap": gap,
                        "rankme_identity": _mean(rk_id), "rankme_offdiag": _mean(rk_off), "rank_ratio": ratio}
        parts.append(f"{ds}: probe gap {gap:.1f} points (identity {_mean(acc_id):.1f}), "
                     f"RankMe ratio {ratio:.2f}")
    detail = "; ".join(parts) + (
        f" -- pass needs gap >= {gap_min:g} or ratio <= {ratio_max:g}" if parts else "")
    return _verdict(label, per, measured, {"accuracy_gap_points": gap_min, "rank_ratio_max": ratio_max}, detail)


@register_criterion("image")
def c3_rise_fall(records: Sequence[Mapping[str, Any]], params: Mapping[str, Any], label: str = "C3") -> Outcome:
    """C3 (image): in >= ``min_fraction`` of the offdiag runs of each dataset, ||W - I||_F peaks at
    >= ``peak_over_final`` x its final value, not later than ``peak_position_max`` of training."""
    pof = float(params["peak_over_final"])
    latest = float(params["peak_position_max"])
    min_fraction = float(params["min_fraction"])
    per: dict[str, bool | None] = {}
    measured: dict[str, Any] = {}
    parts = []
    for ds in params["datasets"]:
        runs = [r["head_offdiag"] for r in records if r.get("dataset") == ds and r.get("head") == "offdiag"
                and r.get("head_offdiag")]
        if not runs:
            per[ds] = None
            continue
        ok = [h["peak"] > 0 and h["peak"] >= pof * h["final"] and h["peak_position"] <= latest for h in runs]
        frac = sum(ok) / len(runs)
        per[ds] = frac >= min_fraction
        ratios = [h["peak"] / max(h["final"], 1e-300) for h in runs]
        measured[ds] = {"fraction_passing": frac, "peak_over_final": ratios,
                        "peak_position": [h["peak_position"] for h in runs]}
        parts.append(f"{ds}: {sum(ok)}/{len(runs)} runs (peak/final "
                     f"{', '.join(f'{x:.2f}' for x in ratios)}; peak at "
                     f"{', '.join(format(h['peak_position'], '.0%') for h in runs)} of training)")
    detail = "; ".join(parts) + (
        f" -- pass needs peak >= {pof:g}x final and peak <= {latest:.0%} of training in "
        f">= {min_fraction:.0%} of runs" if parts else "")
    return _verdict(label, per, measured, {"peak_over_final": pof, "peak_position_max": latest,
                                           "min_fraction": min_fraction}, detail)

