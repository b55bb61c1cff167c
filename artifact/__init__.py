"""The reproduction artifact's data, packaged as ``solo_offdiag_artifact``.

The wheel carries ``claims.yaml`` (the claims and their checks) and ``configs/*.yaml`` (the pinned
image configs), so ``solo-offdiag repro`` works after a regular ``pip install``; see
:mod:`solo_offdiag.repro.artifact` and artifact/README.md.
"""
