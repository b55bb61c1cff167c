"""benchmarks/escape_probe.py: escape counts, censored median and the JSON of C8's phase-I probe."""

from __future__ import annotations

import json
import math

import pytest


def test_probe_counts_escapes_and_takes_the_censored_median(load_benchmark) -> None:
    probe = load_benchmark("escape_probe")
    long = probe.probe("smoke", d=32, batch=64, head_start_c=1.5, steps=400, seeds=3, seed_offset=7)
    assert long["runs"] == 3 and long["seeds"] == [7, 9] and len(long["t_escape"]) == 3
    assert long["escaped"] == 3  # d = 32 escapes within a few dozen steps
    times = sorted(long["t_escape"])
    assert long["censored_median"] == times[1] and long["q10_q90_of_escaped"][0] <= times[1]
    # a run cut before any escape: nothing escaped, no median, no quantiles
    short = probe.probe("smoke", d=32, batch=64, head_start_c=1.5, steps=1, seeds=2, seed_offset=7)
    assert short["escaped"] == 0 and short["censored_median"] is None and short["q10_q90_of_escaped"] is None
    assert all(t is None for t in short["t_escape"])


def test_probe_refuses_a_start_above_the_threshold_and_bad_cases(load_benchmark, tmp_path, monkeypatch, capsys) -> None:
    probe = load_benchmark("escape_probe")
    with pytest.raises(ValueError, match=r"--head-start-c: got 2; allowed: < 0.3 x sqrt\(32\)"):
        probe.probe("smoke", d=32, batch=8, head_start_c=2.0, steps=5, seeds=1, seed_offset=0)
    with pytest.raises(Exception, match="expected D:BATCH"):
        probe.parse_case("1024")
    out = tmp_path / "escape.json"
    monkeypatch.setattr("sys.argv", ["escape_probe.py", "--preset", "smoke", "--case", "32:16", "--head-start-c",
                                     "1.5", "--seeds", "2", "--steps", "200", "--out", str(out)])
    probe.main()
    case = json.loads(out.read_text())["cases"][0]
    assert (case["d"], case["batch_size"], case["runs"]) == (32, 16, 2)
    assert case["censored_median"] is None or math.isfinite(case["censored_median"])
    assert "escaped" in capsys.readouterr().out
