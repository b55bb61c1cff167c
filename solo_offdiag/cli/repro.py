"""``solo-offdiag repro``: the reproduction artifact (every claim, figure and table; PASS/FAIL).

Top-level imports stay light (argparse only): the work happens in :mod:`solo_offdiag.repro`.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from solo_offdiag.cli import argtypes
from solo_offdiag.repro.artifact import REPRO_PRESETS
from solo_offdiag.repro.experiments import THEORY_FIRST_SEED
from solo_offdiag.solo_adapter.requirements import SOLO_COMMIT, SOLO_PIN

_DESCRIPTION = f"""\
Reproduce Wen & Li (NeurIPS 2022): run the experiments behind claims C1-C8, draw the figures,
write the tables (Markdown, LaTeX, CSV) and check every claim (PASS/FAIL) against artifact/claims.yaml.

presets:
  smoke  minutes on a CPU: the theory experiments (theory default preset) and, when solo-learn is
         installed, the image experiment on scikit-learn's bundled digits (3 heads, 1 seed)
  medium about an hour on a CPU: smoke's theory and digits recipe, 7 heads x 3 seeds
  full   the study: theory default preset; CIFAR-10/100 and STL-10, 7 heads x 3 seeds (GPU)

Results go to RESULTS/<preset>/ (default ./results): one folder per run, with run.json (config,
seed, git SHA), env.json (versions, GPU) and done.json (written last). Finished runs are not
recomputed (a corrupt done.json or summary.json is); an interrupted run resumes when the command
is repeated. One writer per results folder: a second command on the same folder exits 2 naming the
holder's PID (or waits, with --wait). Exit codes: 0 ok, 1 a failed run or claim, 2 bad input or
folder in use, 130 Ctrl-C, 143 SIGTERM (finished runs and checkpoints are kept).

The claims file and the pinned image configs are the packaged copy of artifact/ unless
--artifact DIR names another folder holding claims.yaml and configs/image_heads.yaml (e.g. an
edited copy of artifact/); every command takes it and validates the folder before any work.

commands:
  list                       the experiments
  run EXPERIMENT [...]       run experiments (a theory experiment name or image_heads)
  figures | tables | check   from the finished runs of a preset
  all                        run everything, then figures, tables and check (the main job)

The image experiment needs solo-learn 1.0.6 (github.com/vturrisi/solo-learn, commit {SOLO_COMMIT}):
    pip install 'setuptools<81'
    pip install --no-build-isolation 'git+https://github.com/vturrisi/solo-learn@{SOLO_PIN}'
Without it `all` skips the image experiment, says so, and checks the theory claims."""


def _artifact(p: argparse.ArgumentParser) -> None:
    p.add_argument("--artifact", type=Path, default=None, metavar="DIR",
                   help="take claims.yaml and configs/image_heads.yaml from DIR (default: the packaged "
                        "copy of artifact/)")


def _common(p: argparse.ArgumentParser, *, run: bool) -> None:
    _artifact(p)
    p.add_argument("--preset", choices=REPRO_PRESETS, default="smoke", help="smoke (default), medium or full")
    p.add_argument("--results", type=Path, default=Path("results"), help="results folder (default: ./results)")
    p.add_argument("--wait", action="store_true",
                   help="if another repro command holds the results folder, wait for it (default: exit 2 at once)")
    if run:
        p.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="cpu (default) or cuda")
        p.add_argument("--seeds", type=argtypes.positive_int, default=None,
                       help="seeds per arm/head, >= 1 (default: the preset's)")
        p.add_argument("--seed-offset", type=argtypes.non_negative_int, default=None, metavar="K",
                       help=f"every experiment uses seeds K, K+1, ...: the theory arms and the image runs "
                            f"(default {THEORY_FIRST_SEED} for the theory, whose model was chosen on seeds 0-63, "
                            "docs/theory.md, and the image grid's first_seed in configs/image_heads.yaml, its "
                            "recipe tuned on seeds 0-1, docs/image_study.md). Recorded in run.json and the run fingerprint (theory) "
                            "and the run name (image), so another K is another run; `repro check` judges every "
                            "finished run of the preset, so use a fresh --results folder for a report on K alone")
        p.add_argument("--data-dir", type=Path, default=None,
                       help="where CIFAR-10/100 and STL-10 live or are downloaded to (full preset; "
                            "default ./datasets)")
        p.add_argument("--force", action="store_true", help="recompute finished runs")
        p.add_argument("--no-progress", action="store_true", help="hide progress bars")
        p.add_argument("--threads", type=argtypes.positive_int, default=None,
                       help="torch intra-op threads (default: 1 with --device cpu, which is much faster "
                            "than torch's default on a busy CPU; torch's default with cuda)")
        p.add_argument("--jobs", type=argtypes.positive_int, default=1, metavar="N",
                       help="runs at once, each in its own process with --threads threads (default 1). "
                            "On a CPU, N x threads <= cores: the smoke preset uses --jobs 2 on 2 cores. "
                            "Results are those of --jobs 1; each run's output goes to "
                            "<results>/<preset>/logs/<run>.log")


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "repro", help="reproduce the paper: run experiments, figures, tables, PASS/FAIL claim checks",
        description=_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="repro_command", metavar="{list,run,figures,tables,check,all,snapshot}")

    p = sub.add_parser("list", help="list the experiments and the claims they serve")
    _artifact(p)
    p.set_defaults(func=_with_artifact(_list))

    p = sub.add_parser("run", help="run (or resume) experiments",
                       description="Run experiments; finished runs are skipped, unfinished ones resumed.")
    p.add_argument("experiments", nargs="+", metavar="EXPERIMENT",
                   help="theory experiment names (a_trainable_head ... f_wide_head), image_heads, or 'theory'")
    _common(p, run=True)
    p.set_defaults(func=_locked(_run))

    p = sub.add_parser("figures", help="draw the figures of a preset's finished runs")
    _common(p, run=False)
    p.set_defaults(func=_locked(_figures))

    p = sub.add_parser("tables", help="write the tables (Markdown, LaTeX, CSV) of a preset")
    _common(p, run=False)
    p.set_defaults(func=_locked(_tables))

    p = sub.add_parser("check", help="a PASS/FAIL/SKIPPED line per claim; exit 1 on any FAIL",
                       description="Judge every claim of the claims file (artifact/claims.yaml, or "
                                   "--artifact DIR's) on the finished runs. "
                                   "Exit 1 on any FAIL; SKIPPED (missing evidence) fails only with --strict.")
    _common(p, run=False)
    p.add_argument("--strict", action="store_true", help="SKIPPED claims fail too (for the full study)")
    p.set_defaults(func=_locked(_check))

    p = sub.add_parser("all", help="run everything, then figures, tables and check (the main job)",
                       description="Every theory experiment; the image experiment when solo-learn is "
                                   "installed (else it says what it skipped and how to enable it); then "
                                   "figures, tables and check. Exit 1 on a failed run or a FAILed claim.")
    _common(p, run=True)
    p.add_argument("--strict", action="store_true", help="SKIPPED claims fail too")
    p.set_defaults(func=_locked(_all))

    p = sub.add_parser("snapshot", help="copy a finished preset's verdicts, tables and figures into a folder "
                                        "with a README (a results snapshot to keep)",
                       description="Copy check.txt/json, the tables, the figures (theory: without the per-seed "
                                   "grids) and each theory summary.json of a finished preset into --out and "
                                   "write --out/README.md (dates, commit, wall times, verdicts, tables, figures). "
                                   "Runs nothing; exit 2 when the preset has no verdicts yet.")
    p.add_argument("--preset", choices=REPRO_PRESETS, default="smoke", help="smoke (default), medium or full")
    p.add_argument("--results", type=Path, default=Path("results"), help="results folder (default: ./results)")
    p.add_argument("--wait", action="store_true",
                   help="if another repro command holds the results folder, wait for it (default: exit 2 at once)")
    p.add_argument("--out", type=Path, required=True, help="snapshot folder, e.g. artifact/results/medium-<date>")
    p.add_argument("--produced-by", default=None, metavar="COMMAND",
                   help="the command that produced the results, quoted in the README")
    p.set_defaults(func=_locked(_snapshot, artifact=False))

    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1])
    return parser


def _list(args: argparse.Namespace) -> int:
    from solo_offdiag.repro import experiments as E

    for name, desc in E.describe().items():
        print(f"{name:<17} {desc}")
    return 0


def _names(requested: list[str]) -> list[str]:
    from solo_offdiag.repro import experiments as E

    out: list[str] = []
    for name in requested:
        name = name.removeprefix("theory/")
        for n in (E.theory_experiments() if name == "theory" else [name]):
            if n not in out:
                out.append(n)
    return out


def _run(args: argparse.Namespace) -> int:
    from solo_offdiag.repro import experiments as E
    from solo_offdiag.repro.pipeline import DataUnavailable, run_experiments

    try:
        names = _names(args.experiments)
        E.specs_for(names, args.preset, args.device, args.seeds, args.results / "data", args.data_dir,
                    seed_offset=args.seed_offset)
    except ValueError as err:
        print(f"solo-offdiag repro run: {err}")
        return 2
    if E.IMAGE_EXPERIMENT in names:
        reason = E.image_unavailable()
        if reason is not None:
            print(f"solo-offdiag repro run: {E.IMAGE_EXPERIMENT} needs solo-learn 1.0.6.\n{reason}")
            return 2
    try:
        outcomes = run_experiments(names, preset=args.preset, device=args.device, seeds=args.seeds,
                                   results=args.results, data_dir=args.data_dir,
                                   progress=not args.no_progress, force=args.force, threads=_threads(args),
                                   seed_offset=args.seed_offset, jobs=args.jobs)
    except KeyboardInterrupt as err:
        return _interrupted(err)
    except DataUnavailable as err:
        print(f"solo-offdiag repro run: {err}")
        return 2
    return 1 if any(o.status == "failed" for o in outcomes) else 0


def _interrupted(err: BaseException | None = None) -> int:
    """130 for Ctrl-C, 143 for SIGTERM (the pipeline re-raises with the signal's name)."""
    sigterm = "SIGTERM" in str(err or "")
    print(f"solo-offdiag repro: {'stopped by SIGTERM' if sigterm else 'interrupted'}; finished runs are "
          "kept and the interrupted one resumes when the same command is run again", flush=True)
    return 143 if sigterm else 130


def _select_artifact(folder: Path | None) -> str | None:
    """Use the artifact folder ``folder`` (None: the packaged copy), its files validated; the
    error message if it is not usable (the packaged copy is then in use)."""
    import yaml

    from solo_offdiag.repro.artifact import ArtifactError, use_artifact
    from solo_offdiag.repro.claims import claims_file, load_claims
    from solo_offdiag.repro.experiments import image_grid

    try:
        use_artifact(folder)
    except ArtifactError as err:
        return str(err)
    if folder is None:
        return None
    try:
        load_claims()
    except (ValueError, OSError, yaml.YAMLError) as err:
        use_artifact(None)
        return f"--artifact {str(folder)!r}: {claims_file().name}: {err}"
    try:
        for preset in REPRO_PRESETS:
            image_grid(preset)
    except (ValueError, OSError, yaml.YAMLError) as err:
        use_artifact(None)
        return f"--artifact {str(folder)!r}: {err}"
    return None


def _with_artifact(func: Any) -> Any:
    """Run ``func(args)`` with ``--artifact DIR`` in use (exit 2, naming the problem, if it is not usable)."""
    def wrapper(args: argparse.Namespace) -> int:
        from solo_offdiag.repro.artifact import use_artifact

        error = _select_artifact(args.artifact)
        if error is not None:
            print(f"solo-offdiag repro: {error}", flush=True)
            return 2
        try:
            return int(func(args))
        finally:
            use_artifact(None)  # the packaged copy again (main() may be called again in-process)

    wrapper.__name__ = getattr(func, "__name__", "with_artifact")
    return wrapper


def _locked(func: Any, *, artifact: bool = True) -> Any:
    """Run ``func(args)`` holding the results folder's lock (exit 2 if the folder is not usable or
    another process holds the lock), with ``--artifact DIR`` in use unless ``artifact`` is False
    (a subcommand that reads no artifact file has no --artifact option)."""
    def wrapper(args: argparse.Namespace) -> int:
        from solo_offdiag.repro.lock import ResultsLocked, results_lock

        lock = results_lock(args.results, wait=args.wait)
        try:
            lock.__enter__()
        except ResultsLocked as err:
            print(f"solo-offdiag repro: {err}", flush=True)
            return 2
        except OSError as err:  # e.g. --results names a file
            print(f"solo-offdiag repro: --results {str(args.results)!r}: cannot use it as the results "
                  f"folder ({err.strerror or err})", flush=True)
            return 2
        try:
            return int(func(args))
        finally:
            lock.__exit__(None, None, None)

    wrapper.__name__ = getattr(func, "__name__", "locked")
    return _with_artifact(wrapper) if artifact else wrapper


def _threads(args: argparse.Namespace) -> int | None:
    from solo_offdiag.repro.pipeline import CPU_THREADS

    if args.threads is not None:
        return args.threads
    return CPU_THREADS if args.device == "cpu" else None


def _figures(args: argparse.Namespace) -> int:
    from solo_offdiag.repro.figures import write_figures

    paths = write_figures(args.results / args.preset, args.preset)
    for p in paths:
        print(p)
    print(f"index: {args.results / args.preset / 'figures' / 'index.md'}")
    return 0


def _snapshot(args: argparse.Namespace) -> int:
    from solo_offdiag.repro.snapshot import SnapshotError, write_snapshot

    try:
        paths = write_snapshot(args.results / args.preset, args.out, args.preset, args.produced_by)
    except SnapshotError as err:
        print(f"solo-offdiag repro snapshot: {err}")
        return 2
    print(f"{len(paths)} files in {args.out}; read {args.out / 'README.md'}")
    return 0


def _report(args: argparse.Namespace, strict: bool = False) -> Any:
    from solo_offdiag.repro import experiments as E
    from solo_offdiag.repro.check import evaluate

    reason = E.image_unavailable()
    hint = None
    if reason is not None:
        hint = f"needs solo-learn 1.0.6: {reason.splitlines()[0]} To enable: {E.SOLO_INSTALL_HINT}"
    return evaluate(args.results, args.preset, strict=strict, image_skip_reason=hint)


def _tables(args: argparse.Namespace) -> int:
    from solo_offdiag.repro.tables import write_tables

    for p in write_tables(args.results / args.preset, _report(args)):
        print(p)
    return 0


def _check(args: argparse.Namespace) -> int:
    from solo_offdiag.repro.check import write_report

    report = _report(args, strict=args.strict)
    (args.results / args.preset).mkdir(parents=True, exist_ok=True)
    write_report(report, args.results / args.preset)
    print("\n".join(report.lines()))
    return report.exit_code


def _all(args: argparse.Namespace) -> int:
    from solo_offdiag.repro.pipeline import DataUnavailable, run_all

    try:
        result = run_all(preset=args.preset, device=args.device, seeds=args.seeds, results=args.results,
                         data_dir=args.data_dir, progress=not args.no_progress, force=args.force,
                         strict=args.strict, threads=_threads(args), seed_offset=args.seed_offset, jobs=args.jobs)
    except KeyboardInterrupt as err:
        return _interrupted(err)
    except DataUnavailable as err:
        print(f"solo-offdiag repro all: {err}")
        return 2
    print("\n".join(result.report.lines()))
    print(f"[repro] all --preset {args.preset}: {result.wall_time_s:.0f} s; results in "
          f"{args.results / args.preset} (check.txt, tables/, figures/)")
    return result.exit_code
