"""The captioned-digits benchmark's time axis: training seconds per checkpoint come from the run's
own logged rate, so a run that was preempted and resumed keeps its whole curve against time."""

import os
import sys

import pytest

from tests.conftest import REPO

sys.path.insert(0, os.path.join(REPO, "benchmarks"))


def test_training_seconds_sum_each_logging_window_once(tmp_path):
    import text2img_digits as bench

    # 2 it/s for iterations 0-100, then 1 it/s; the row at 100 logged twice (a resume from a checkpoint
    # at 100 repeats it), and a row without a rate (an evaluation-only row) is ignored
    (tmp_path / "metrics.csv").write_text("iter,perf/it_per_s,loss/D\n50,2.0,1\n100,2.0,1\n100,2.0,1\n"
                                         "150,1.0,1\n150,,1\n200,1.0,1\n")
    table = bench.training_seconds(str(tmp_path))
    assert table == [(50, 25.0), (100, 50.0), (150, 100.0), (200, 150.0)]
    assert bench.seconds_at(table, 100) == pytest.approx(50.0)
    assert bench.seconds_at(table, 120) == pytest.approx(50.0)  # the last row at or before it
    assert bench.seconds_at(table, 10) == 0.0
