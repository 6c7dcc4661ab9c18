"""Shared steps of the MNIST benchmarks: pack shards, train the digit classifier, train a GAN,
time it. Every step is skipped when its output exists (pass --force to redo)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def default_mnist() -> str:
    shared = os.environ.get("GANSCALE_SHARED_DATA", os.path.join(REPO, "..", "shared", "data"))
    return os.path.join(shared, "mnist")


def ganscale(*args: str, log: str | None = None) -> float:
    """Run `python -m ganscale ARGS` from the repository root; returns the wall time in seconds
    (the CPU time of the command and its workers is in `last_cpu_seconds` afterwards)."""
    global last_cpu_seconds
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("GANSCALE_RUN_DIR", None)
    t0 = time.perf_counter()
    cpu0 = _children_cpu()
    print("+ ganscale " + " ".join(args), flush=True)
    out = open(log, "a") if log else None
    try:
        r = subprocess.run([sys.executable, "-m", "ganscale", *args], cwd=REPO, env=env,
                           stdout=out or None, stderr=subprocess.STDOUT if out else None)
    finally:
        if out:
            out.close()
    if r.returncode != 0:
        raise SystemExit(f"ganscale {args[0]} failed with exit code {r.returncode}" + (f"; see {log}" if log else ""))
    last_cpu_seconds = _children_cpu() - cpu0
    return time.perf_counter() - t0


last_cpu_seconds = 0.0


def _children_cpu() -> float:
    """User + system CPU seconds of the finished child processes (and their waited-for children)."""
    import resource

    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def pack_mnist(mnist: str, out: str, force: bool, *pack_args: str) -> None:
    """`ganscale data pack` of an MNIST-style IDX folder (extra arguments, e.g. --resize 32, passed on)."""
    if os.path.isfile(os.path.join(out, "manifest.json")) and not force:
        print(f"shards: {out} (exists)")
        return
    ganscale("data", "pack", mnist, out, "--overwrite", *pack_args)


def classifier(mnist: str, out: str, force: bool, epochs: int = 3) -> dict:
    """Train (or reuse) the digit classifier; returns {"test_accuracy", "seconds"}."""
    info = out + ".json"
    if os.path.isfile(out) and os.path.isfile(info) and not force:
        print(f"classifier: {out} (exists)")
        return json.load(open(info))
    t = ganscale("classifier", "train", "--data", mnist, "--out", out, "--epochs", str(epochs))
    from ganscale.metrics.classifier import load_classifier

    result = {"test_accuracy": load_classifier(out).test_accuracy, "seconds": round(t, 1), "epochs": epochs}
    json.dump(result, open(info, "w"), indent=2)
    return result


def train(config: str, run_root: str, run_name: str, overrides: list[str], force: bool) -> dict:
    """Train `config` into run_root/run_name; returns {"run_dir", "seconds", "iterations"}."""
    run_dir = os.path.join(run_root, run_name)
    info = os.path.join(run_dir, "benchmark_train.json")
    if os.path.isfile(info) and not force:
        print(f"train: {run_dir} (exists)")
        return json.load(open(info))
    if force and os.path.isdir(run_dir):
        import shutil

        shutil.rmtree(run_dir)
    os.makedirs(run_dir, exist_ok=True)
    t = ganscale("train", config, f"run.root={run_root}", f"run.name={run_name}", "trainer.progress_bar=false",
                 *overrides, log=os.path.join(run_dir, "train.log"))
    from ganscale.train.restore import load_module

    result = {"run_dir": run_dir, "seconds": round(t, 1), "cpu_seconds": round(last_cpu_seconds, 1),
              "iterations": load_module(run_dir).iteration,
              "config": config, "overrides": overrides}
    json.dump(result, open(info, "w"), indent=2)
    return result


def portable(obj):
    """obj with every path under the repository made relative to it (results kept in docs/ must not
    name the machine they were measured on)."""
    if isinstance(obj, str):
        return obj.replace(REPO + os.sep, "")
    if isinstance(obj, dict):
        return {k: portable(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [portable(v) for v in obj]
    return obj


def cpu_note() -> str:
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = float("nan")
    return f"{os.cpu_count()} CPU cores, load average {load:.1f} at the end of the run"
