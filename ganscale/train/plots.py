"""The training curves of <run>/plots/curves.png, from metrics.csv and metrics.jsonl (matplotlib,
no display needed). Figures of samples are ganscale/metrics/plots.py.

    python -c "from ganscale.train.plots import training_curves; print(training_curves('runs/RUN'))"
"""

from __future__ import annotations

import csv
import json
import math
import os
from typing import Optional

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from ganscale.utils.files import atomic_path  # noqa: E402


# Panels of the training-curve figure: title -> which metrics.csv columns go into it.
CURVE_PANELS = (
    ("losses", lambda k: k.startswith("loss/")),
    ("D(x) and D(G(z))", lambda k: k in ("D/real", "D/fake")),
    ("gradient norms", lambda k: k.startswith("grad_norm/")),
    ("learning rates", lambda k: k.startswith("lr/")),
)

Series = dict[str, tuple[list[float], list[float]]]  # name -> (iterations, values)


def _number(text) -> Optional[float]:
    try:
        v = float(text)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def read_csv_series(path: str) -> Series:
    """metrics.csv columns as (iterations, values), empty cells skipped. The logger writes one row
    per log call, so a column's points can spread over several rows of the same step."""
    out: Series = {}
    if not os.path.isfile(path):
        return out
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            step = _number(row.get("step"))
            if step is None:
                continue
            for key, text in row.items():
                v = _number(text) if key not in ("step", "iter", "epoch") else None
                if v is not None:
                    xs, ys = out.setdefault(key, ([], []))
                    xs.append(step)
                    ys.append(v)
    return out


def read_eval_series(path: str) -> Series:
    """metrics.jsonl (one evaluation a line) as `metrics/<name>` series. An iteration evaluated
    twice (a resumed run redoes the iterations after its checkpoint) keeps its newest line."""
    by_iter: dict[float, dict] = {}
    if os.path.isfile(path):
        with open(path) as f:
            for line in f:
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:  # a line cut short by a crash
                    continue
                it = _number(rec.get("iter")) if isinstance(rec, dict) else None
                if it is not None:
                    by_iter[it] = rec
    out: Series = {}
    for it in sorted(by_iter):
        for key, val in by_iter[it].items():
            v = _number(val) if key != "iter" and not isinstance(val, bool) else None
            if v is not None:
                xs, ys = out.setdefault(f"metrics/{key}", ([], []))
                xs.append(it)
                ys.append(v)
    return out


def training_curves(run_dir: str, path: Optional[str] = None) -> list[str]:
    """Plot the run's curves against iterations into `path` (default <run>/plots/curves.png):
    losses, D(x) and D(G(z)), gradient norms and learning rates from metrics.csv, and one panel per
    evaluation metric from metrics.jsonl. Returns the names of the series drawn (no file is
    written when there is nothing to draw yet)."""
    logged = read_csv_series(os.path.join(run_dir, "metrics.csv"))
    panels: list[tuple[str, Series]] = []
    for title, wanted in CURVE_PANELS:
        series = {k: logged[k] for k in sorted(logged) if wanted(k)}
        if series:
            panels.append((title, series))
    evals = read_eval_series(os.path.join(run_dir, "metrics.jsonl"))
    panels += [(f"evaluation: {k.split('/', 1)[1]}", {k: evals[k]}) for k in sorted(evals)]
    if not panels:
        return []
    path = path or os.path.join(run_dir, "plots", "curves.png")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    cols = min(3, len(panels))
    rows = int(math.ceil(len(panels) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.0 * rows), dpi=100, squeeze=False)
    drawn: list[str] = []
    for ax, (title, series) in zip(axes.flat, panels):
        for name, (xs, ys) in series.items():
            ax.plot(xs, ys, marker="o" if len(xs) < 30 else None, markersize=3, linewidth=1.2, label=name)
            drawn.append(name)
        if title.startswith("gradient") and all(min(ys) > 0 for _, ys in series.values()):
            ax.set_yscale("log")  # gradient norms span orders of magnitude
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("iteration", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        if len(series) > 1:
            ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    # fixed margins: tight_layout would double the drawing time (it renders the figure to measure it)
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.1 / rows + 0.02, top=1 - 0.08 / rows,
                        wspace=0.28, hspace=0.45)
    with atomic_path(path) as tmp:  # a viewer refreshing the file never reads half a PNG
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return drawn
