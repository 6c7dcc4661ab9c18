"""metrics.csv that survives a resume, written as each row is logged.

Lightning's CSVLogger deletes an existing metrics.csv when it starts, so a preempted and resumed
run would lose its history. This one keeps the earlier rows: those logged before the first step
the resumed run logs (rows at or after it belonged to the interrupted attempt and are redone).
"""

from __future__ import annotations

import csv
import os
from typing import Optional

from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.utilities import rank_zero_only

from ganscale.utils.files import atomic_path


def _read_rows(path: str) -> list[dict]:
    if not os.path.isfile(path):
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _step(row: dict) -> float:
    try:
        return float(row.get("step", "nan"))
    except ValueError:
        return float("nan")


class ResumableCSVLogger(CSVLogger):
    """CSVLogger(<run>, name="", version="") that continues an existing metrics.csv."""

    def __init__(self, run_dir: str):
        super().__init__(run_dir, name="", version="")
        self._previous: list[dict] = _read_rows(os.path.join(run_dir, "metrics.csv"))
        self._trim_pending = bool(self._previous)

    @property
    def experiment(self):
        if self._experiment is not None:
            return self._experiment
        exp = super().experiment  # Lightning's writer removes metrics.csv here ...
        if self._previous and rank_zero_only.rank == 0:  # (other ranks get a dummy writer)
            self._write_back(exp, self._previous)  # ... so put the history back at once
        return exp

    @staticmethod
    def _write_back(exp, rows: list[dict]) -> None:
        exp.metrics_keys = sorted(set(exp.metrics_keys).union(*rows))
        # the history lives only in memory now: a crash mid-write must not lose it
        with atomic_path(exp.metrics_file_path) as tmp, open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=exp.metrics_keys)
            writer.writeheader()
            writer.writerows(rows)

    @rank_zero_only
    def log_metrics(self, metrics, step: Optional[int] = None) -> None:
        if self._trim_pending:  # the first new row: drop what the interrupted attempt logged from here on
            self._trim_pending = False
            self._write_back(self.experiment, [r for r in self._previous if step is None or _step(r) < step])
            self._previous = []
        super().log_metrics(metrics, step)
        # on disk at once: Lightning writes every 100th *step* only ((step + 1) % 100), which the
        # iterations ganscale logs at (multiples of log_every) never hit, so a run's metrics.csv lagged
        # until the next checkpoint or the end, and a killed run lost the rows since its last save.
        # A row per log_every is cheap.
        self.save()
