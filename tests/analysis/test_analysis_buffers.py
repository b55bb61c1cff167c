"""The embedding ring buffer, the DDP gather helpers (fake and real gloo collectives), the writer."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from solo_offdiag.analysis.buffers import EmbeddingQueue, gather_rows, gather_sum
from solo_offdiag.analysis.writer import AnalysisWriter, read_metrics_csv, read_metrics_table


def test_queue_keeps_the_latest_rows_and_wraps():
    q = EmbeddingQueue(4)
    q.push(torch.arange(3.0).unsqueeze(1))
    assert len(q) == 3 and not q.full
    q.push(torch.arange(3.0, 6.0).unsqueeze(1))
    assert q.full
    assert sorted(q.values().flatten().tolist()) == [2.0, 3.0, 4.0, 5.0]
    buffer = q.buffer
    q.push(torch.tensor([[6.0]]))
    assert q.buffer is buffer  # preallocated: no reallocation on push
    assert sorted(q.values().flatten().tolist()) == [3.0, 4.0, 5.0, 6.0]
    q.reset()
    assert len(q) == 0 and q.values().shape == (0, 1)


def test_queue_subsamples_a_batch_larger_than_capacity():
    q = EmbeddingQueue(5, generator=torch.Generator().manual_seed(0))
    q.push(torch.arange(20.0).unsqueeze(1))
    values = q.values().flatten().tolist()
    assert len(values) == 5 and len(set(values)) == 5 and set(values) <= set(range(20))


def test_queue_rejects_a_width_change():
    q = EmbeddingQueue(4)
    q.push(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="width changed"):
        q.push(torch.zeros(2, 5))


class _FakeTwoRanks:
    """all_gather as rank 0 of two ranks would see it, rank 1 holding ``other`` rows."""

    def __init__(self, other: torch.Tensor) -> None:
        self.other = other

    def __call__(self, t: torch.Tensor) -> torch.Tensor:
        if t.dtype == torch.long:  # the row counts
            return torch.stack([t, torch.tensor([self.other.shape[0]])])
        padded = t.new_zeros(t.shape)
        padded[: self.other.shape[0]] = self.other
        return torch.stack([t, padded])


def test_gather_rows_trims_the_padding_of_unequal_ranks():
    mine, other = torch.randn(3, 4), torch.randn(5, 4)
    # padding is to the longest block: rank 0 pads to 5 itself, as it would in the collective
    got = gather_rows(mine, _FakeTwoRanks(other), world_size=2)
    assert torch.equal(got, torch.cat([mine, other]))
    assert gather_rows(mine, _FakeTwoRanks(other), world_size=1) is mine


def _worker(rank: int, world: int, init_file: str, queue) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)

    def all_gather(t: torch.Tensor) -> torch.Tensor:
        out = [torch.empty_like(t) for _ in range(world)]
        dist.all_gather(out, t.contiguous())
        return torch.stack(out)

    rows = torch.full((rank + 2, 3), float(rank))  # rank 0: 2 rows, rank 1: 3 rows
    gathered = gather_rows(rows, all_gather, world)
    total = gather_sum(torch.full((2, 2), float(rank + 1)), all_gather, world)
    queue.put((rank, gathered.tolist(), total.tolist()))
    dist.destroy_process_group()


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed not available")
def test_gather_with_a_real_two_process_gloo_group(tmp_path):
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    init_file = str(tmp_path / "dist_init")
    procs = [ctx.Process(target=_worker, args=(r, 2, init_file, queue)) for r in range(2)]
    for p in procs:
        p.start()
    results = sorted(queue.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(timeout=60)
    expected_rows = [[0.0] * 3] * 2 + [[1.0] * 3] * 3
    for _rank, rows, total in results:
        assert rows == expected_rows
        assert total == [[3.0, 3.0], [3.0, 3.0]]


class _Source:
    def __init__(self, rows):
        self.rows = rows


def test_writer_merges_sources_into_one_row_per_step(tmp_path):
    writer = AnalysisWriter(tmp_path)
    a = _Source({0: {"head/x": 1.0}, 10: {"head/x": 2.5}})
    b = _Source({10: {"rankme/z": math.nan}, 20: {"rankme/z": 3.0}})
    writer.register(a)
    writer.register(b)
    writer.register(a)  # idempotent
    writer.mark_dirty()
    assert writer.sync(a) is None  # only the last registered source writes
    path = writer.sync(b)
    assert path == tmp_path / "metrics.csv" and not writer.dirty
    lines = path.read_text().splitlines()
    assert lines == ["step,head/x,rankme/z", "0,1.0,", "10,2.5,nan", "20,,3.0"]
    values, present = read_metrics_table(path)
    assert values["step"].tolist() == [0, 10, 20]
    assert present["rankme/z"].tolist() == [False, True, True]
    assert math.isnan(values["rankme/z"][1]) and math.isnan(values["rankme/z"][0])
    assert np.array_equal(read_metrics_csv(path)["head/x"][:2], [1.0, 2.5])
    assert not any(name.startswith(".") for name in os.listdir(tmp_path))  # no temp files left


def test_read_metrics_csv_rejects_other_csv(tmp_path):
    (tmp_path / "x.csv").write_text("epoch,loss\n0,1\n")
    with pytest.raises(ValueError, match="step"):
        read_metrics_csv(tmp_path / "x.csv")


def test_sync_rewrites_metrics_csv_at_most_every_interval(tmp_path):
    """A rewrite is O(rows): sync() throttles it; write_metrics() (checkpoint, end) always writes."""
    from solo_offdiag.analysis.writer import METRICS_CSV, AnalysisWriter, read_metrics_csv

    class Source:
        rows = {0: {"a": 1.0}}

    source, writer = Source(), AnalysisWriter(tmp_path, min_interval_s=3600.0)
    writer.register(source)
    writer.mark_dirty()
    assert writer.sync(source) == tmp_path / METRICS_CSV  # the first write is always due
    source.rows[5] = {"a": 2.0}
    writer.mark_dirty()
    assert writer.sync(source) is None and writer.dirty  # within the interval: deferred
    assert read_metrics_csv(tmp_path / METRICS_CSV)["step"].tolist() == [0]
    writer.write_metrics()
    assert read_metrics_csv(tmp_path / METRICS_CSV)["step"].tolist() == [0, 5]
    writer.min_interval_s = 0.0
    source.rows[10] = {"a": 3.0}
    writer.mark_dirty()
    assert writer.sync(source) is not None and not writer.dirty
