"""The paper's theory, simulated (torch only): substitution and acceleration effects.

Wen & Li (NeurIPS 2022), paper.md section 2. ``TheoryConfig`` holds every parameter,
``simulate``/``simulate_batch`` run SGD on the simple setting, ``phases`` detects the phase times,
``criteria`` turns summaries into pass/fail results for claims C3-C8, and ``experiments`` is the
registry of named experiments behind ``solo-offdiag theory``.
"""

from solo_offdiag.theory.config import TheoryConfig
from solo_offdiag.theory.model import Trajectory, seeds_of, simulate, simulate_batch

__all__ = ["TheoryConfig", "Trajectory", "seeds_of", "simulate", "simulate_batch"]
