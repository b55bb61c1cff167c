"""Kill battery for ``solo-offdiag pretrain``: SIGKILL at random moments (some timed to land inside
a checkpoint save) and SIGTERM, then re-run until the run completes; check that no step is lost
or duplicated in the analysis ``metrics.csv`` (against an uninterrupted reference run) and that the
final checkpoint is at the last step.

Needs solo-learn 1.0.6. Slow (minutes per trial on a 2-core CPU): not part of the test suite.

    python benchmarks/kill_battery.py --trials 10 --sigterm-trials 3 --out /tmp/kill_battery
    (prints one line per trial and writes <out>/kill_battery.json)

``--ddp-sigterm-trials N`` adds trials of a 2-process CPU DDP run (gloo, ``devices=2``): SIGTERM to
the launching process (rank 0) a random moment after its first checkpoint, then the re-run.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

EPOCHS, BATCHES = 3, 6
STEPS = EPOCHS * BATCHES
TINY = [
    "hardware=cpu", "data.dataset=custom", "data.num_workers=0", "optimizer.batch_size=4",
    "method_kwargs.proj_hidden_dim=32", "method_kwargs.proj_output_dim=16", "method_kwargs.pred_hidden_dim=32",
    "+method_kwargs.analysis.every_n_steps=1", "+method_kwargs.analysis.queue_size=8",
    f"+limit_train_batches={BATCHES}", "+limit_val_batches=1", "+num_sanity_val_steps=0",
    "+enable_progress_bar=false", f"max_epochs={EPOCHS}", "name=killbattery", "auto_resume.enabled=true",
]
LAUNCH = "import sys; from solo_offdiag.cli.main import main; sys.exit(main())"


def image_folder(root: Path) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in range(5):
        (root / f"class{c}").mkdir(parents=True, exist_ok=True)
        for i in range(10):  # 50 images: 6 batches of 4 per rank also under 2-process DDP (same steps)
            Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(root / f"class{c}" / f"{i}.png")
    return root


def command(images: Path, ckpt_dir: Path, ddp: bool = False) -> list[str]:
    paths = [f"data.train_path={images}", f"data.val_path={images}", f"checkpoint.dir={ckpt_dir}"]
    if ddp:  # ``-m``: Lightning's DDP launcher starts rank 1 by re-running this command
        return [sys.executable, "-m", "solo_offdiag", "pretrain", *TINY, *paths, "devices=2", "strategy=ddp"]
    return [sys.executable, "-c", LAUNCH, "pretrain", *TINY, *paths]


def run_dirs(ckpt_dir: Path) -> list[Path]:
    return sorted(p for p in (ckpt_dir / "byol_offdiag").glob("*") if p.is_dir())


def saving(ckpt_dir: Path) -> bool:
    return any((ckpt_dir / "byol_offdiag").glob("*/.*.ckpt.*.tmp"))


def attempt(cmd: list[str], log: Path, kill: str | None, delay: float, ckpt_dir: Path) -> tuple[int, float, bool]:
    """One process; ``kill``: None (run to the end), 'random' (SIGKILL after ``delay`` s), 'save'
    (SIGKILL as soon as a checkpoint save is in progress, else after ``delay``), 'term' (SIGTERM),
    'term_after_ckpt' (SIGTERM ``delay`` s after the first checkpoint exists)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled"}
    start = time.monotonic()
    with open(log, "a") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
        in_save = False
        if kill is None:
            return proc.wait(), time.monotonic() - start, False
        if kill == "term_after_ckpt":
            while proc.poll() is None and not any((ckpt_dir / "byol_offdiag").glob("*/*.ckpt")):
                time.sleep(0.05)
            start_kill = time.monotonic()
            while proc.poll() is None and time.monotonic() - start_kill < delay:
                time.sleep(0.05)
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            return proc.wait(), time.monotonic() - start, False
        while proc.poll() is None:
            elapsed = time.monotonic() - start
            if kill == "save" and saving(ckpt_dir):
                proc.send_signal(signal.SIGKILL)
                in_save = True
                break
            if elapsed >= delay:
                proc.send_signal(signal.SIGTERM if kill == "term" else signal.SIGKILL)
                break
            time.sleep(0.002 if kill == "save" else 0.05)
        return proc.wait(), time.monotonic() - start, in_save


def steps_of(run_dir: Path) -> list[int]:
    from solo_offdiag.analysis.writer import read_metrics_csv

    return [int(s) for s in read_metrics_csv(run_dir / "analysis" / "metrics.csv")["step"]]


def final_step(run_dir: Path) -> int:
    from solo_offdiag.solo_adapter.checkpoints import newest_valid_checkpoint

    info = newest_valid_checkpoint(run_dir, warn=lambda m: None)
    return -1 if info is None else info.global_step


def trial(kind: str, index: int, images: Path, out: Path, reference: list[int], rng: random.Random,
          startup: float, duration: float, max_kills: int = 1) -> dict:
    ckpt_dir = out / f"{kind}{index}"
    log = out / f"{kind}{index}.log"
    cmd = command(images, ckpt_dir, ddp=kind == "ddpterm")
    kills, codes = [], []
    restarts = 0
    for _ in range(12):  # kill up to --kills times, then let it finish
        if len(kills) >= (1 if kind in ("term", "ddpterm") else max_kills):
            code, _, _ = attempt(cmd, log, None, 0, ckpt_dir)
            codes.append(code)
            break
        mode = {"term": "term", "save": "save", "ddpterm": "term_after_ckpt"}.get(kind, "random")
        # ddpterm: a moment within the first third of the run after the first (end of epoch 0) checkpoint
        delay = rng.uniform(0.0, duration / 3) if kind == "ddpterm" else startup + rng.uniform(0.0, duration)
        code, t, in_save = attempt(cmd, log, mode, delay, ckpt_dir)
        codes.append(code)
        if code == 0 and not kills and restarts < 3:  # finished before the kill: a trial must kill
            shutil.rmtree(ckpt_dir)
            log.unlink()  # the log describes the trial that counts
            codes.clear()
            restarts += 1
            startup, duration = 0.5 * startup, 0.5 * duration
            continue
        if code == 0:
            break
        kills.append({"mode": mode, "after_s": round(t, 2), "code": code, "during_save": in_save})
    dirs = run_dirs(ckpt_dir)
    steps = steps_of(dirs[0]) if len(dirs) == 1 and (dirs[0] / "analysis" / "metrics.csv").is_file() else []
    text = log.read_text(errors="replace")
    result = {
        "kind": kind, "kills": kills, "exit_codes": codes, "completed": bool(codes) and codes[-1] == 0,
        "run_dirs": len(dirs), "final_step": final_step(dirs[0]) if dirs else -1,
        "lost_steps": sorted(set(reference) - set(steps)), "extra_steps": sorted(set(steps) - set(reference)),
        "duplicated_steps": sorted({s for s in steps if steps.count(s) > 1}),
        "sigterm_exit_143": kind not in ("term", "ddpterm") or 143 in codes,
        "sigterm_printed_run_dir": kind not in ("term", "ddpterm") or "run directory" in text,
        "run_dir_lines": text.count("solo-offdiag: run directory"),
        "tracebacks": text.count("Traceback"),
        "skipped_unreadable": text.count("skipping"),
    }
    result["ok"] = (result["completed"] and result["run_dirs"] == 1 and result["final_step"] == STEPS
                    and not result["lost_steps"] and not result["duplicated_steps"] and not result["extra_steps"]
                    and result["sigterm_exit_143"] and result["sigterm_printed_run_dir"]
                    # DDP: one "run directory" line per command (rank 0's), none from rank 1
                    and (kind != "ddpterm" or result["run_dir_lines"] == len(codes)))
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=10, help="SIGKILL trials (half timed into checkpoint saves)")
    parser.add_argument("--sigterm-trials", type=int, default=3)
    parser.add_argument("--ddp-sigterm-trials", type=int, default=0,
                        help="SIGTERM trials of a 2-process CPU DDP run (gloo), after the SIGKILL/SIGTERM ones")
    parser.add_argument("--kills", type=int, default=1, help="SIGKILLs per trial before it may finish")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("/tmp/kill_battery"))
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    images = image_folder(args.out / "images")
    rng = random.Random(args.seed)

    ref_dir = args.out / "reference"
    start = time.monotonic()
    code, wall, _ = attempt(command(images, ref_dir), args.out / "reference.log", None, 0, ref_dir)
    if code != 0:
        print(f"reference run failed ({code}); see {args.out / 'reference.log'}")
        return 1
    reference = steps_of(run_dirs(ref_dir)[0])
    # a kill window: after the imports (~40% of an uninterrupted run here) until its end
    startup, duration = 0.4 * wall, 0.6 * wall
    print(f"reference: {wall:.1f} s, {len(reference)} analysis rows, final step {final_step(run_dirs(ref_dir)[0])}",
          flush=True)
    results = []
    kinds = [("save" if i % 2 == 0 else "kill") for i in range(args.trials)]
    for j in range(args.sigterm_trials):  # SIGTERM trials spread over the battery
        kinds.insert(min(1 + 3 * j, len(kinds)), "term")
    kinds += ["ddpterm"] * args.ddp_sigterm_trials
    for i, kind in enumerate(kinds):
        r = trial(kind, i, images, args.out, reference, rng, startup, duration, args.kills)
        results.append(r)
        print(json.dumps({k: r[k] for k in ("kind", "ok", "kills", "exit_codes", "final_step", "lost_steps",
                                             "duplicated_steps", "run_dirs", "run_dir_lines",
                                             "skipped_unreadable")}), flush=True)
    summary = {
        "trials": len(results), "ok": sum(r["ok"] for r in results),
        "sigkills": sum(len(r["kills"]) for r in results if r["kind"] not in ("term", "ddpterm")),
        "sigkills_during_save": sum(1 for r in results for k in r["kills"] if k["during_save"]),
        "sigterms": sum(len(r["kills"]) for r in results if r["kind"] == "term"),
        "ddp_sigterms": sum(len(r["kills"]) for r in results if r["kind"] == "ddpterm"),
        "lost_steps": sum(len(r["lost_steps"]) for r in results),
        "duplicated_steps": sum(len(r["duplicated_steps"]) for r in results),
        "reference_wall_s": round(wall, 1), "total_wall_s": round(time.monotonic() - start, 1),
        "results": results,
    }
    (args.out / "kill_battery.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps({k: v for k, v in summary.items() if k != "results"}))
    return 0 if summary["ok"] == summary["trials"] else 1


if __name__ == "__main__":
    sys.exit(main())
