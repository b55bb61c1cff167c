"""One registry of claim criteria (like the head registry: a decorator fills a name -> criterion dict).

A *criterion* judges one check of a claim of ``artifact/claims.yaml``. It is registered by
:func:`register_criterion` next to its code, under its function name, with the kind of evidence
it reads:

* ``"image"``: ``fn(records, params, label) -> Outcome`` on the image-run records of a preset
  (``params`` is the preset's section of the check); in :mod:`solo_offdiag.repro.claims`.
* ``"theory"``: ``fn(summary, **kwargs)`` on one theory experiment's ``summary.json``, returning a
  result with ``passed``, ``detail``, ``measured`` and ``threshold``
  (:class:`solo_offdiag.theory.criteria.CriterionResult`); in :mod:`solo_offdiag.theory.criteria`.

Every verdict is one :class:`Outcome` with one :class:`Status`. Adding a claim is an entry in
``claims.yaml`` plus one decorated function. Standard library only, at the bottom layer, so the
torch-only theory package registers its criteria here without importing the reproduction package.

Examples:
    >>> Status.combine([Status.SKIPPED, Status.PASS])
    <Status.PASS: 'PASS'>
    >>> f"{Status.FAIL:<6}|"
    'FAIL  |'
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
    "Criterion",
    "Outcome",
    "Status",
    "UnknownCriterionError",
    "get_criterion",
    "list_criteria",
    "register_criterion",
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
    """The verdict of one check: its :class:`Status`, why, what was measured and the threshold."""

    label: str
    status: Status
    detail: str
    measured: dict[str, Any] = field(default_factory=dict)
    threshold: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


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
