import os
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("WANDB_MODE", "disabled")


@pytest.fixture(autouse=True)
def _no_inherited_run_dir():
    """A test that builds a run with ganscale.train.run.setup (not main) leaves the run directory in
    the environment, where launched children find it; the next test's run would land there. Drop it
    after every test, whatever order -k or a plugin gives them."""
    yield
    os.environ.pop("GANSCALE_RUN_DIR", None)


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


def backward_phases(m) -> list[str]:
    """One pass over the game's enabled phases without optimizer steps: each phase's loss (checked
    finite) backpropagated into its player's gradients; returns the names of the phases that gave a
    loss. The game's start_iteration must have run."""
    import torch

    stepped = []
    for phase in m.phase_list:
        m.phase = phase.name
        m._train(phase.player)
        loss = phase.loss(m, 0) if phase.enabled else None
        if loss is not None:
            assert torch.isfinite(loss)
            loss.backward()
            stepped.append(phase.name)
    return stepped


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (for a test's own rendezvous)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
