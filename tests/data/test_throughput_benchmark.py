"""benchmarks/throughput.py runs on the CPU (tiny sizes) and reports all three paths."""

from __future__ import annotations

import json

import pytest
import torch


def test_benchmark_runs_on_cpu_and_writes_json(tmp_path, capsys, load_benchmark):
    bench = load_benchmark("throughput")
    out = tmp_path / "throughput.json"
    argv = ["--device", "cpu", "--batch-size", "4", "--dataset-size", "32", "--steps", "1", "--warmup", "1",
            "--workers", "1", "--proj-hidden", "32", "--proj-out", "16", "--profile", "--json", str(out)]  # fmt: skip
    report = bench.main(argv)
    printed = capsys.readouterr().out
    assert set(report["images_per_s"]) == {"a", "b", "c"} and all(v > 0 for v in report["images_per_s"].values())
    assert "ratio (b)/(a)" in printed and "FLOP ceiling fraction" in printed and "device: CPU" in printed
    assert report["flops_per_image_step"] > 0 and set(report["profile"]) >= {"forward", "backward", "optimizer"}
    assert json.loads(out.read_text())["batch_size"] == 4
    assert "upper bounds" in printed
    assert printed.rstrip().splitlines()[-1].startswith("ratio (b)/(c)")  # ratios last (no GPU: no memory line)


@pytest.mark.parametrize(("flag", "value"), [("--steps", "0"), ("--warmup", "-1"), ("--rounds", "0")])
def test_benchmark_refuses_bad_counts_instead_of_falling_back(flag, value, capsys, load_benchmark):
    with pytest.raises(SystemExit):
        load_benchmark("throughput").main(["--device", "cpu", flag, value])
    assert f"{flag}: got {value}; allowed: an integer >=" in capsys.readouterr().err


def test_path_a_workers_are_stopped_and_its_queue_drained(load_benchmark):
    """(a) runs last in a round; its workers exist only inside its own timing call."""
    bench = load_benchmark("throughput")
    seen = []

    class Loader:
        def __iter__(self):
            it = iter([(0, (torch.zeros(1, 3, 2, 2), torch.zeros(1, 3, 2, 2)), 0)] * 100)

            class It:
                def __next__(self):
                    seen.append("next")
                    return next(it)

                def __iter__(self):
                    return self

                def _shutdown_workers(self):
                    seen.append("shutdown")

            return It()

    class Stepper:
        def step(self, x1, x2):
            seen.append("step")

    ips = bench.time_solo_path(Stepper(), Loader(), lambda it: it_map(it), 2, 1, 3, 1, torch.device("cpu"))
    assert ips > 0
    # warm-up step, 3 drained batches without a step, 2 timed steps, then the workers stop
    assert seen == ["next", "step", "next", "next", "next", "next", "step", "next", "step", "shutdown"]


def it_map(it):
    for _, (x1, x2), _ in it:
        yield x1, x2
