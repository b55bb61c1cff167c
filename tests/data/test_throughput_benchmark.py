"""benchmarks/throughput.py runs on the CPU (tiny sizes) and reports all three paths."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_benchmark_runs_on_cpu_and_writes_json(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("throughput_benchmark", ROOT / "benchmarks" / "throughput.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "throughput.json"
    argv = ["--device", "cpu", "--batch-size", "4", "--dataset-size", "32", "--steps", "1", "--warmup", "1",
            "--workers", "1", "--proj-hidden", "32", "--proj-out", "16", "--profile", "--json", str(out)]  # fmt: skip
    report = bench.main(argv)
    printed = capsys.readouterr().out
    assert set(report["images_per_s"]) == {"a", "b", "c"} and all(v > 0 for v in report["images_per_s"].values())
    assert "ratio (b)/(a)" in printed and "FLOP ceiling fraction" in printed and "device: CPU" in printed
    assert report["flops_per_image_step"] > 0 and set(report["profile"]) >= {"forward", "backward", "optimizer"}
    assert json.loads(out.read_text())["batch_size"] == 4
