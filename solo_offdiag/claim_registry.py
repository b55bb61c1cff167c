"""One registry of claim criteria (like the head registry: a decorator fills a name -> criterion dict).

A *criterion* judges one check of a claim of ``artifact/claims.yaml``. It is registered by
:func:`register_criterion` next to its code, under its function name, with the kind of evidence
it reads:

* ``"image"``: ``fn(records, params, label) -> Outcome`` on the image-run records of a preset
  (``params`` is the preset's section of the check); in :mod:`solo_offdiag.repro.claims`.
* ``"theory"``: ``fn(summary, **kwargs) -> Outcome`` on one theory experiment's ``summary.json``
  (its ``label`` is the claim, e.g. ``"C4"``); in :mod:`solo_offdiag.theory.criteria`.

Every verdict, image or theory, is one :class:`Outcome` with one :class:`Status`; it serialises
(``to_dict``: ``summary.json`` of a theory experiment, ``check.json``) with ``"status": "PASS"``
etc. A *negative control* (a check that must reject its arm, marked ``negative_control`` in a
theory summary) is shown by :func:`verdict_text`. Adding a claim is an entry in
``claims.yaml`` plus one decorated function. Standard library only, at the bottom layer, so the
torch-only theory package registers its criteria here without importing the reproduction package.

Examples:
    >>> Status.combine([Status.SKIPPED, Status.PASS])
    <Status.PASS: 'PASS'>
    >>> f"{Status.FAIL:<6}|"
    'FAIL  |'
    >>> verdict_text(Status.FAIL, negative_control=True)
    'rejected (negative control, as expected)'
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any, TypeVar

from solo_offdiag.suggest import did_you_mean

__all__ = [
    "CRITERIA",
    "EVIDENCE",
    "NEGATIVE_CONTROL_VERDICT",
    "Criterion",
    "Outcome",
    "Status",
    "UnknownCriterionError",
    "get_criterion",
    "list_criteria",
    "register_criterion",
    "verdict_text",
]

#: the kinds of evidence a criterion can read (see the module docstring).
EVIDENCE = ("image", "theory")

F = TypeVar("F", bound=Callable[..., Any])


class Status(str, Enum):
    """The verdict of a check or a claim. A ``str``: it prints, formats and serialises as its name."""

    PASS = "PASS"
    FAIL = "FAIL"
    SKIPPED = "SKIPPED"  # the evidence is missing

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)

    @classmethod
    def of(cls, passed: bool) -> Status:
        """PASS or FAIL."""
        return cls.PASS if passed else cls.FAIL

    @classmethod
    def combine(cls, statuses: Iterable[Status]) -> Status:
        """A claim's status from its checks': FAIL if any fails, else PASS if any passes, else SKIPPED."""
        found = set(statuses)
        return cls.FAIL if cls.FAIL in found else cls.PASS if cls.PASS in found else cls.SKIPPED


@dataclass
class Outcome:
    """The verdict of one check: its label, :class:`Status`, why, what was measured and the threshold.

    Every criterion returns one (image and theory); ``to_dict`` is what result files store."""

    label: str
    status: Status
    detail: str
    measured: dict[str, Any] = field(default_factory=dict)
    threshold: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """True when the status is PASS."""
        return self.status is Status.PASS

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


#: how a negative control's verdict reads (a check that must reject its arm: FAIL is the expected
#: outcome, PASS means the control is broken).
NEGATIVE_CONTROL_VERDICT = {Status.PASS: "ACCEPTED (negative control broken)",
                            Status.FAIL: "rejected (negative control, as expected)"}


def verdict_text(status: Status | str, negative_control: bool = False) -> str:
    """How a verdict is shown: its status, or for a negative control whether it rejected its arm."""
    status = Status(status)
    return NEGATIVE_CONTROL_VERDICT.get(status, status.value) if negative_control else status.value


@dataclass(frozen=True)
class Criterion:
    """A registered criterion: its name (the function's), the evidence it reads, the function."""

    name: str
    evidence: str
    function: Callable[..., Any]


#: name -> criterion. Fill it with :func:`register_criterion`, never by hand.
CRITERIA: dict[str, Criterion] = {}


class UnknownCriterionError(ValueError):
    """Raised for a criterion name that is not registered; the message lists the known ones."""


def register_criterion(evidence: str) -> Callable[[F], F]:
    """Function decorator registering a criterion reading ``evidence`` under the function's name.

    Registering the same function twice is a no-op; another function under a taken name is an error.
    """
    if evidence not in EVIDENCE:
        raise ValueError(f"evidence: got {evidence!r}; allowed: {', '.join(EVIDENCE)}")

    def decorator(function: F) -> F:
        name = function.__name__
        existing = CRITERIA.get(name)
        if existing is not None and existing.function is not function:
            raise ValueError(
                f"criterion {name!r} is already registered to {existing.function.__module__}."
                f"{existing.function.__qualname__}; refusing to replace it with "
                f"{function.__module__}.{function.__qualname__}"
            )
        CRITERIA[name] = Criterion(name, evidence, function)
        return function

    return decorator


def list_criteria(evidence: str | None = None) -> list[str]:
    """The registered criterion names (of one kind of evidence, if given), sorted."""
    return sorted(n for n, c in CRITERIA.items() if evidence is None or c.evidence == evidence)


def get_criterion(name: str, evidence: str | None = None) -> Criterion:
    """The criterion registered as ``name`` (reading ``evidence``, if given).

    Raises:
        UnknownCriterionError: no such criterion (of that evidence); the message lists the known ones.
    """
    found = CRITERIA.get(name)
    if found is None or (evidence is not None and found.evidence != evidence):
        known = list_criteria(evidence)
        what = f"{evidence} criterion" if evidence else "criterion"
        raise UnknownCriterionError(
            f"unknown {what} {name!r}{did_you_mean(name, known, parenthesised=True)}; "
            f"known: {', '.join(known) or '(none)'}"
        )
    return found
