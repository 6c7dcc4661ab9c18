"""Fixtures of the data tests (helpers live in shardkit.py)."""

import os

import pytest

from shardkit import shared_data_dir

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("WANDB_MODE", "disabled")


@pytest.fixture
def mnist_dir():
    d = shared_data_dir()
    if d is None:
        pytest.skip("MNIST IDX files not found: set GANSCALE_SHARED_DATA or put them in <repo>/../shared/data/mnist")
    return os.path.join(d, "mnist")


class CliResult:
    def __init__(self, returncode, stdout, stderr):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


@pytest.fixture
def cli(capsys):
    """`ganscale ARGS` in this process (argparse, dispatch, UserError -> exit 2), output captured."""
    from ganscale.cli import main

    def call(*args):
        capsys.readouterr()
        code = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return CliResult(code, out, err)

    return call
