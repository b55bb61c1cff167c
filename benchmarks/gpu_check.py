"""One prepared GPU check of the GPU data path (issue #11): run it once on an H100/H200 (~8 min).

    bash benchmarks/gpu_check.sh                       # = python benchmarks/gpu_check.py --out results/gpu_check
    python benchmarks/gpu_check.py --cpu-smoke         # reduced sizes on the CPU: proves every step executes

Steps, in priority order (each a subprocess with its own time limit; a global ``--budget`` skips
what no longer fits, and says so):

  env          device, driver, versions, cores
  sync         torch.cuda.set_sync_debug_mode("error") around our hot path: GPU batches
               (index gather + GPUAugment, seeded and unseeded), a bf16 training step with
               SyncFreeLARS, and the in-place momentum update; plus the CPU->GPU copy audit test
  tp_default   benchmarks/throughput.py: (b) ours, (c) synthetic ceiling, (a) solo's PIL path with
               every core as workers; bf16, channels-last, --profile
  tp_recipe    (a) with solo's shipped CIFAR recipe: num_workers 4, vs (b)
  precision    a few Lightning steps through GPUPretrainDataModule for bf16-true, 16-true,
               bf16-mixed, 16-mixed (views must arrive in the module's dtype)
  tp_compile   (b), (c) with torch.compile
  analysis     benchmarks/callback_overhead.py --device cuda (if that flag exists)
  tp_fp32      (b), (c) in fp32 (TF32 matmuls)
  tp_nocl      (b), (c) without channels-last
  ops          benchmarks/op_count.py (aten ops per augmentation / LARS step)

Everything goes to ``--out``: ``log.txt`` (all output), one JSON per throughput step, and
``summary.json`` / ``summary.md`` (img/s, ratios against the targets, peak memory, per-step status).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent

#: (name, time limit in seconds on a GPU). Priority order.
STEPS = [
    ("env", 45), ("sync", 90), ("tp_default", 150), ("tp_recipe", 60), ("precision", 90),
    ("tp_compile", 180), ("analysis", 120), ("tp_fp32", 60), ("tp_nocl", 60), ("ops", 40),
]  # fmt: skip
SMOKE_TP = ["--device", "cpu", "--batch-size", "8", "--dataset-size", "32", "--steps", "1", "--warmup", "1",
            "--rounds", "1", "--workers", "1", "--proj-hidden", "32", "--proj-out", "16"]  # fmt: skip
SMOKE_SLOWDOWN = 6  # --cpu-smoke: a shared 2-core CPU runs each step many times slower than a GPU host
TARGETS = {"b_img_s": 15000.0, "b_over_c": 0.9, "b_over_recipe_a": 5.0}


def tp_argv(step: str, out: Path, smoke: bool) -> list[str]:
    base = SMOKE_TP if smoke else ["--device", "cuda"]
    extra = {
        "tp_default": ["--profile"],
        "tp_recipe": ["--paths", "ab", "--workers", "4"] + (["--workers", "1"] if smoke else []),
        "tp_compile": ["--paths", "bc", "--compile"],
        "tp_fp32": ["--paths", "bc", "--precision", "fp32"],
        "tp_nocl": ["--paths", "bc", "--no-channels-last"],
    }[step]
    return [*base, *extra, "--json", str(out / f"{step}.json")]


# ------------------------------------------------------------------------------ in-process steps


def step_env(smoke: bool) -> None:
    import platform

    import lightning
    import torch
    import torchvision

    print(f"date {_dt.datetime.now(_dt.timezone.utc).isoformat(timespec='seconds')}")
    print(f"python {platform.python_version()} torch {torch.__version__} torchvision {torchvision.__version__} "
          f"lightning {lightning.__version__} cores {os.cpu_count()}")  # fmt: skip
    if torch.cuda.is_available():
        print(f"device {torch.cuda.get_device_name()} (capability {torch.cuda.get_device_capability()}, "
              f"{torch.cuda.get_device_properties(0).total_memory / 2**30:.0f} GiB)")  # fmt: skip
        subprocess.run(["nvidia-smi", "-L"], check=False)
    else:
        print("device: CPU only" + (" (--cpu-smoke)" if smoke else " -- NOT A GPU: this run measures nothing about the GPU goal"))


def _device(smoke: bool) -> Any:
    import torch

    if not smoke and not torch.cuda.is_available():
        raise SystemExit("no CUDA device: run with --cpu-smoke for a CPU dry run")
    return torch.device("cpu" if smoke else "cuda")


def step_sync(smoke: bool) -> None:
    import torch
    from torch import nn

    sys.path.insert(0, str(HERE))
    import throughput as tp

    from solo_offdiag.data.gpu_augment import views_from_solo_cfg
    from solo_offdiag.data.gpu_datamodule import GPUPretrainDataModule
    from solo_offdiag.perf import forbid_host_sync, in_place_momentum_update

    dev = _device(smoke)
    batch, hid, out = (8, 32, 16) if smoke else (256, 4096, 256)
    torch.backends.cudnn.benchmark = True
    torch.set_float32_matmul_precision("high")
    model = tp.build_model(hid, out).to(dev).to(memory_format=torch.channels_last)
    stepper = tp.Stepper(model, dev, bf16=dev.type == "cuda", fused_sgd=False, optimizer="lars")  # CPU bf16 conv: slow

    class Updater:  # solo's MomentumUpdater interface (cur_tau, update), patched in place
        cur_tau = 0.99

        def update(self, online: nn.Module, momentum: nn.Module) -> None:
            raise AssertionError("replaced by in_place_momentum_update")

    holder = nn.Module()
    holder.momentum_updater = Updater()
    assert in_place_momentum_update(holder)
    failures = []
    for seed in (0, None):
        dm = GPUPretrainDataModule(tp.make_images(4 * batch, 32, None), views_from_solo_cfg(tp.ASYMMETRIC, "cifar10"),
                                   batch, seed=seed, channels_last=True)  # fmt: skip
        idx = [torch.randperm(4 * batch)[:batch].to(dev) for _ in range(1 if smoke else 3)]
        for i in idx:  # warm: constants reach the device, cudnn picks algorithms
            x1, x2 = dm.make_batch(i)[1]
            stepper.step(x1, x2)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        checks = {
            "make_batch (gather + GPUAugment)": lambda dm=dm, i=idx[0]: dm.make_batch(i),
            "training step (fwd/bwd, bf16 on GPU + SyncFreeLARS + foreach EMA)": lambda x1=x1, x2=x2: stepper.step(x1, x2),
            "in-place momentum update": lambda: holder.momentum_updater.update(model.backbone, model.momentum_backbone),
        }
        for label, fn in checks.items():
            try:
                with forbid_host_sync():
                    for _ in range(1 if smoke else 2):
                        fn()
                status = "SYNC-FREE" if dev.type == "cuda" else "ran (CPU: sync debug mode not available)"
            except RuntimeError as err:
                status = f"HOST SYNC: {str(err).splitlines()[0][:120]}"
                failures.append(label)
            print(f"{status:<10}  {label}  [augment_seed={seed}]")
    if dev.type == "cuda":
        rc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs",
                             str(ROOT / "tests/data/test_gpu_augment.py"), "-k", "real_gpu"], check=False).returncode  # fmt: skip
        print(f"CPU->GPU copy audit (tests/data/test_gpu_augment.py -k real_gpu): {'passed' if rc == 0 else 'FAILED'}")
        failures += ["copy audit"] if rc else []
    if failures:
        raise SystemExit(f"host syncs found in: {failures}")


def step_precision(smoke: bool) -> None:
    import lightning.pytorch as pl
    import torch
    import torch.nn.functional as F

    sys.path.insert(0, str(HERE))
    import throughput as tp

    from solo_offdiag.data.gpu_augment import views_from_solo_cfg
    from solo_offdiag.data.gpu_datamodule import GPUPretrainDataModule

    dev = _device(smoke)
    batch = 8 if smoke else 256

    class Module(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            m = tp.build_model(32 if smoke else 1024, 16 if smoke else 256)
            self.backbone, self.projector, self.predictor = m.backbone, m.projector, m.predictor
            self.seen: list[Any] = []

        def training_step(self, b: Any, _: int) -> Any:
            x1, x2 = b[1]
            self.seen.append(x1.dtype)
            p1, p2 = self.predictor(self.projector(self.backbone(torch.cat([x1, x2])))).chunk(2)
            return 2 - 2 * F.cosine_similarity(p1, p2.detach(), dim=-1).mean()

        def configure_optimizers(self) -> Any:
            return torch.optim.SGD(self.parameters(), lr=0.01)

    failures = []
    for precision in (("bf16-true", "bf16-mixed") if smoke else ("bf16-true", "16-true", "bf16-mixed", "16-mixed")):
        dm = GPUPretrainDataModule(tp.make_images(4 * batch, 32, None), views_from_solo_cfg(tp.ASYMMETRIC, "cifar10"), batch, seed=0)
        module = Module()
        trainer = pl.Trainer(accelerator=dev.type if dev.type == "cpu" else "gpu", devices=1, max_steps=1 if smoke else 3,
                             precision=precision, logger=False, enable_checkpointing=False,
                             enable_progress_bar=False, enable_model_summary=False)  # fmt: skip
        try:
            trainer.fit(module, datamodule=dm)
            print(f"ok      {precision:<11} views arrived as {sorted({str(d) for d in module.seen})}")
        except Exception as err:  # report every precision, then fail
            failures.append(precision)
            print(f"FAILED  {precision:<11} {type(err).__name__}: {str(err).splitlines()[0][:160]}")
    if failures:
        raise SystemExit(f"precisions failing: {failures}")


def step_analysis(smoke: bool) -> None:
    script = HERE / "callback_overhead.py"
    help_text = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True).stdout
    if "--device" not in help_text:
        print("SKIPPED: benchmarks/callback_overhead.py has no --device flag at this commit")
        return
    args = ["--device", "cpu", "--steps", "30", "--repeats", "1", "--batch-size", "8"] if smoke else ["--device", "cuda", "--batch-size", "256"]
    subprocess.run([sys.executable, str(script), *args], check=True)


# ------------------------------------------------------------------------------ driver


def run_step(step: str, limit: float, out: Path, smoke: bool, log: Any) -> dict[str, Any]:
    if step.startswith("tp_"):
        if smoke and step == "tp_compile":
            return {"status": "skipped", "why": "torch.compile takes minutes on the CPU; GPU only"}
        cmd = [sys.executable, str(HERE / "throughput.py"), *tp_argv(step, out, smoke)]
    elif step == "ops":
        cmd = [sys.executable, str(HERE / "op_count.py"), "--json", str(out / "ops.json")]
    else:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--step", step] + (["--cpu-smoke"] if smoke else [])
    header = f"=== {step} (limit {limit:.0f} s): {' '.join(cmd[1:])}"
    print(header, flush=True)
    log.write(header + "\n")
    start = time.perf_counter()
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    watchdog = threading.Timer(limit, proc.kill)  # a step that hangs silently is killed too
    watchdog.start()
    try:
        for line in proc.stdout:  # type: ignore[union-attr]
            print(line, end="", flush=True)
            log.write(line)
        rc = proc.wait()
    finally:
        watchdog.cancel()
    seconds = time.perf_counter() - start
    status = "ok" if rc == 0 else ("timeout" if seconds >= limit else f"failed (rc {rc})")
    log.write(f"=== {step}: {status} in {seconds:.0f} s\n")
    log.flush()
    print(f"=== {step}: {status} in {seconds:.0f} s", flush=True)
    return {"status": status, "seconds": round(seconds, 1)}


def summarise(out: Path, steps: dict[str, Any], smoke: bool) -> dict[str, Any]:
    def load(name: str) -> dict[str, Any] | None:
        path = out / f"{name}.json"
        return json.loads(path.read_text()) if path.exists() else None

    summary: dict[str, Any] = {"steps": steps, "cpu_smoke": smoke, "targets": TARGETS}
    for name in ("tp_default", "tp_recipe", "tp_compile", "tp_fp32", "tp_nocl"):
        rep = load(name)
        if rep:
            summary[name] = {k: rep.get(k) for k in ("device", "date", "command", "images_per_s", "ratios", "peak_memory_gib",
                                                     "precision", "channels_last", "compile", "profile")}  # fmt: skip
    default, recipe = summary.get("tp_default"), summary.get("tp_recipe")
    if default and recipe:
        ips = default["images_per_s"]
        summary["verdict"] = {
            "b_img_s": ips.get("b"), "c_img_s": ips.get("c"), "a_all_cores_img_s": ips.get("a"),
            "a_recipe_img_s": recipe["images_per_s"].get("a"),
            "b_over_c": default["ratios"].get("b_over_c"), "b_over_recipe_a": recipe["ratios"].get("b_over_a"),
        }  # fmt: skip
        v = summary["verdict"]
        v["met"] = "n/a: CPU smoke run, no GPU number" if smoke else {
            "b_img_s >= 15000": (v["b_img_s"] or 0) >= TARGETS["b_img_s"],
            "b/c >= 0.9": (v["b_over_c"] or 0) >= TARGETS["b_over_c"],
            "b / recipe a >= 5": (v["b_over_recipe_a"] or 0) >= TARGETS["b_over_recipe_a"],
        }
    from solo_offdiag.io import atomic_write_json

    atomic_write_json(out / "summary.json", summary)
    lines = [f"# GPU check ({'CPU smoke run: no GPU numbers' if smoke else 'GPU run'})", ""]
    lines += [f"- {k}: {v['status']}" + (f" ({v.get('seconds')} s)" if "seconds" in v else f" ({v.get('why', '')})") for k, v in steps.items()]
    if "verdict" in summary:
        lines += ["", "```", json.dumps(summary["verdict"], indent=2), "```"]
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--out", default=str(ROOT / "results" / "gpu_check"), help="results folder (default results/gpu_check)")
    parser.add_argument("--cpu-smoke", action="store_true", help="reduced sizes on the CPU (a dry run; measures nothing)")
    parser.add_argument("--budget", type=float, help="seconds for all steps (default 480; --cpu-smoke: 3600); "
                        "steps that no longer fit are skipped")
    parser.add_argument("--only", help="comma-separated subset of: " + ", ".join(s for s, _ in STEPS))
    parser.add_argument("--step", help=argparse.SUPPRESS)  # internal: run one in-process step
    args = parser.parse_args(argv)
    if args.step:
        {"env": step_env, "sync": step_sync, "precision": step_precision, "analysis": step_analysis}[args.step](args.cpu_smoke)
        return 0
    names = [s for s, _ in STEPS]
    chosen = names if not args.only else [s.strip() for s in args.only.split(",")]
    unknown = [s for s in chosen if s not in names]
    if unknown:
        parser.error(f"--only: got {unknown}; allowed: {', '.join(names)}")
    if args.budget is None:
        args.budget = 3600.0 if args.cpu_smoke else 480.0
    if args.budget <= 0:
        parser.error(f"--budget: got {args.budget}; allowed: a number of seconds > 0")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    deadline = time.perf_counter() + args.budget
    results: dict[str, Any] = {}
    with open(out / "log.txt", "w") as log:
        for step, limit in STEPS:
            if step not in chosen:
                continue
            left = deadline - time.perf_counter()
            if left < min(limit, 30):
                results[step] = {"status": "skipped", "why": f"budget: {left:.0f} s left"}
                print(f"=== {step}: skipped ({results[step]['why']})")
                continue
            limit = limit * SMOKE_SLOWDOWN if args.cpu_smoke else limit
            results[step] = run_step(step, min(limit, left), out, args.cpu_smoke, log)
    summary = summarise(out, results, args.cpu_smoke)
    print((out / "summary.md").read_text())
    print(f"results in {out}/ (log.txt, summary.json, summary.md, one JSON per throughput step)")
    failed = [k for k, v in results.items() if v["status"] not in ("ok", "skipped")]
    return 1 if failed or not summary else 0


if __name__ == "__main__":
    raise SystemExit(main())
