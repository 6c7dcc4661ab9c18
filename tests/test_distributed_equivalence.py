"""N=2 gloo ranks with per-rank batch b give the same G and D updates as one process with 2b.

One torchrun launch (tests/dist_worker.py) trains every case under DDP, DeepSpeed ZeRO-1 and
ZeRO-2; the single-process references run here. Cases: plain step, n_disc=2, unroll k=3 second
order, R1, GP, and a non-finite loss or non-finite gradients on rank 1 only (every rank must skip
that D step).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest
import torch

import dist_worker as w

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HAS_DEEPSPEED = importlib.util.find_spec("deepspeed") is not None
STRATEGIES = ["ddp", "zero1", "zero2"]
TOL = {"atol": 1e-5, "rtol": 1e-4}  # one Adam step moves a weight by ~lr = 1e-3

pytestmark = [pytest.mark.distributed, pytest.mark.slow, pytest.mark.timeout(900)]


def torchrun(args: list[str], timeout: int = 600, nproc: int = 2) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""), OMP_NUM_THREADS="1")
    env.pop("GANSCALE_RUN_DIR", None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", *args]
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    strategies = STRATEGIES if HAS_DEEPSPEED else ["ddp"]
    r = torchrun([os.path.join(REPO, "tests", "dist_worker.py"), str(out), *strategies])
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-6000:]

    def load(name: str) -> tuple[dict, dict]:
        r0, r1 = (torch.load(out / f"{name}-rank{k}.pt", weights_only=False) for k in (0, 1))
        assert "error" not in r0, r0.get("error")
        assert "error" not in r1, r1.get("error")
        return r0, r1

    return load


_refs: dict = {}


def reference(case: str, strategy: str) -> dict:
    """One process, global batch 2b, the same semantics for missing gradients as `strategy`."""
    extra = ("strategy.missing_grads=zero",) if strategy.startswith("zero") else ()
    key = (case, extra)
    if key not in _refs:
        _refs[key] = w.run_case(case, "single", 1, 2 * w.B, extra=extra)
    return _refs[key]


def compared(res: dict) -> list[str]:
    return [*res["nets"], *(["G_ema"] if "G_ema" in res else [])]


def assert_replicas_identical(r0: dict, r1: dict) -> None:
    for player in compared(r0):
        for k in r0[player]:
            assert torch.equal(r0[player][k], r1[player][k]), f"{player}.{k} differs between ranks"


def test_collectives_on_two_ranks(results):
    for rank, res in enumerate(results("collectives")):
        assert torch.equal(res["a"], torch.full((3,), 1.5))
        assert torch.equal(res["b"], torch.full((2,), 2.0)), "a gradient present on one rank only counts as 0 elsewhere"
        assert res["c_is_none"], "a gradient missing on every rank stays None"
        assert torch.allclose(res["y"], torch.tensor([1.5, 3.0]))
        # every rank backpropagates its own copy of y.w; the all-reduce's backward sums them, so
        # x_r gets d/dx_r of sum over ranks of y.w = 2 * (r+1)/2 * w (DDP then averages over ranks)
        assert torch.allclose(res["x_grad"], (rank + 1) * torch.tensor([1.0, 10.0]))
        assert res["agree_true"] is True and res["agree_one_false"] is False


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("case", list(w.CASES))
def test_two_ranks_equal_one_process_with_the_global_batch(results, strategy, case):
    if strategy != "ddp" and not HAS_DEEPSPEED:
        pytest.skip("deepspeed is not installed (pip install 'ganscale[deepspeed]')")
    r0, r1 = results(f"{case}-{strategy}")
    ref = reference(case, strategy)
    assert r0["iteration"] == ref["iteration"] == w.ITERS
    assert_replicas_identical(r0, r1)
    last = ref["stepped"]  # D, or the relay game's adversary A (the net whose initial state D_init holds)
    moved = max((ref[last][k] - ref["D_init"][k]).abs().max().item() for k in ref[last])
    assert moved > 100 * TOL["atol"], "the reference must actually train for the comparison to mean anything"
    assert compared(r0) == compared(ref)
    for player in compared(ref):
        for k in ref[player]:
            torch.testing.assert_close(r0[player][k], ref[player][k], **TOL, msg=lambda m: f"{player}.{k}: {m}")
    assert r0["skipped"] == ref["skipped"]
    if case.startswith("nonfinite"):
        # NaN reals (a non-finite loss) or NaN gradients from rank 1's samples only: every rank skips
        assert r0["skipped"] == {"D": 1, "G": 0}
    # logged losses are reduced across ranks: the mean of the per-rank means is the global-batch mean
    for row, ref_row in zip(r0["metrics"], ref["metrics"], strict=True):
        assert row["batch/global"] == ref_row["batch/global"] == 2 * w.B
        for k in w.LOGGED.get(case, ("loss/D", "loss/G", "skipped/D")):
            if ref_row[k] == ref_row[k]:  # NaN in the non-finite iteration
                assert row[k] == pytest.approx(ref_row[k], rel=1e-4, abs=1e-5), k


@pytest.mark.parametrize("strategy", ["ddp", "zero2"])
def test_bf16_mixed_keeps_replicas_identical(results, strategy):
    if strategy != "ddp" and not HAS_DEEPSPEED:
        pytest.skip("deepspeed is not installed")
    r0, r1 = results(f"bf16-{strategy}")
    assert r0["iteration"] == w.ITERS
    assert_replicas_identical(r0, r1)
    ref = reference("r1", "ddp")
    for k in ref["D"]:
        assert torch.isfinite(r0["D"][k]).all()
        # bf16 rounds, but it trains the same model: close to the fp32 run at bf16 resolution
        torch.testing.assert_close(r0["D"][k], ref["D"][k], atol=3e-2, rtol=3e-2)
    assert any(not torch.equal(r0["D"][k], r0["D_init"][k]) for k in r0["D"])


@pytest.mark.parametrize("strategy", ["ddp", "zero2"])
def test_batchnorm_statistics_stay_identical_across_ranks(results, strategy):
    if strategy != "ddp" and not HAS_DEEPSPEED:
        pytest.skip("deepspeed is not installed")
    r0, r1 = results(f"bn-{strategy}")
    assert any(k.endswith("running_mean") for k in r0["D"])
    assert_replicas_identical(r0, r1)  # running statistics included
    n0, n1 = results("bn_nosync-ddp")
    assert any(not torch.equal(n0["D"][k], n1["D"][k]) for k in n0["D"] if k.endswith("running_mean")), \
        "without strategy.sync_buffers each rank's statistics follow its own data"


def test_fp16_loss_scale_is_per_player_and_agreed(results):
    r0, r1 = results("fp16-ddp")
    assert_replicas_identical(r0, r1)
    assert r0["scales"] == r1["scales"] and set(r0["scales"]) == {"G", "D"}
    assert r0["skipped"] == r1["skipped"]
    for player in ("G", "D"):
        # every overflow skip backs off that player's scale (and only that one) by 2
        assert r0["scales"][player] == 2.0 ** 24 * 0.5 ** r0["skipped"][player]
    assert sum(r0["skipped"].values()) > 0, "2**24 must overflow fp16 gradients at least once"
