import os
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("WANDB_MODE", "disabled")


@pytest.fixture
def run_root(tmp_path):
    return str(tmp_path / "runs")


def cli(*args, cwd=None, env=None, timeout=600):
    """Run `python -m ganscale ARGS` in a fresh process; returns CompletedProcess."""
    import subprocess

    e = dict(os.environ)
    e["PYTHONPATH"] = REPO + os.pathsep + e.get("PYTHONPATH", "")
    e.pop("GANSCALE_RUN_DIR", None)
    if env:
        e.update(env)
    return subprocess.run([sys.executable, "-m", "ganscale", *args], cwd=cwd or REPO, env=e,
                          capture_output=True, text=True, timeout=timeout)
