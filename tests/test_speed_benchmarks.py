"""The speed benchmarks run: the GPU suite's CPU smoke mode (benchmarks/gpu_suite.sh --cpu-smoke), its
per-setting helper (benchmarks/gpu_bench.py) and the overhead benchmark (benchmarks/overhead.py),
each at tiny size. They prove the scripts work; the figures themselves live in docs/."""

import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(REPO, "benchmarks")
TINY = ["model.biggan.G_ch=2", "model.biggan.D_ch=2", "model.biggan.attn_res=16", "model.biggan.shared_dim=8",
        "data.batch_size=2"]


@pytest.fixture
def bench_modules(monkeypatch):
    monkeypatch.syspath_prepend(BENCH)
    import gpu_bench
    import overhead

    return gpu_bench, overhead


def test_gpu_bench_measures_one_setting_and_reports_it(tmp_path, bench_modules):
    gpu_bench, _ = bench_modules
    out = tmp_path / "r.json"
    rc = gpu_bench.main(["run", "--name", "tiny", "--device", "cpu", "--iters", "2", "--warmup", "1",
                         "--resolution", "32", "--num-classes", "10", "--json", str(out), *TINY])
    r = json.loads(out.read_text())
    assert rc == 0, r.get("traceback")
    assert r["iterations_done"] == 4 and r["batch"] == 2 and r["n_disc"] == 2  # biggan128.yaml's n_disc
    assert r["finite"] and r["seconds"] > 0 and r["images_per_s"] == pytest.approx(2 * 2 * 2 / r["seconds"])
    assert set(r["losses"]) >= {"loss/D", "loss/G"}
    # a failing setting is recorded, not raised: the suite goes on with the next one
    bad = tmp_path / "bad.json"
    assert gpu_bench.main(["run", "--name", "bad", "--device", "cpu", "--json", str(bad), "trainer.precision=64"]) == 1
    assert "precision" in json.loads(bad.read_text())["error"]
    md = tmp_path / "gpu.md"
    gpu_bench.main(["report", str(out), str(bad), "--out", str(md), "--skipped", "compile: skipped on CPU"])
    text = md.read_text()
    assert "| tiny | 32 | False | auto (gloo) | 2/2 | 2 x 2 |" in text
    assert "| bad | failed |" in text and "compile: skipped on CPU" in text


def test_gpu_bench_runs_the_dfgan_slot_on_captioned_batches(tmp_path, bench_modules):
    """The suite's DF-GAN slot at tiny size: captioned in-memory batches through an encoder file of
    the config's text dimension (configs/text2img/cub_dfgan.yaml: 256)."""
    gpu_bench, _ = bench_modules
    out = tmp_path / "dfgan.json"
    rc = gpu_bench.main(["run", "--name", "dfgan", "--device", "cpu", "--iters", "1", "--warmup", "1",
                         "--resolution", "32", "--captions", "--config",
                         os.path.join(REPO, "configs", "text2img", "cub_dfgan.yaml"), "--json", str(out),
                         "model.dfgan.nf=4", "data.batch_size=2"])
    r = json.loads(out.read_text())
    assert rc == 0, r.get("traceback")
    assert r["arch"] == "dfgan" and r["G_ch"] == 4 and r["iterations_done"] == 3 and r["finite"]
    assert {"loss/D/real", "loss/D/wrong", "loss/D/fake", "loss/G"} <= set(r["losses"])


@pytest.mark.slow  # ~2-5 min on a shared CPU: one fresh process per step
def test_gpu_suite_cpu_smoke_runs_every_step(tmp_path):
    md = tmp_path / "gpu.md"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    r = subprocess.run(["bash", os.path.join(BENCH, "gpu_suite.sh"), "--cpu-smoke", "--out", str(md)],
                       capture_output=True, text=True, env=env, timeout=1800)
    assert r.returncode == 0, r.stderr[-3000:]
    text = md.read_text()
    for row in ("| biggan128-32 | 32 | False | auto (gloo) |", "| biggan128-bf16-mixed | bf16-mixed | False |",
                "| biggan128-ddp-gloo | bf16-mixed | False | ddp (gloo) |", "| biggan128-200it-finite | 32 |",
                "| dfgan-cub-32 | 32 | False | auto (gloo) | 4/4 | 2 x 1 |"):
        assert row in text, row
    assert "| yes (4 it," in text and "| yes (3 it," in text  # finite everywhere (warm-up + timed + 1 iterations)
    assert "failed" not in text, text
    assert "16-mixed: skipped on CPU" in text and "compile on: skipped on CPU" in text


@pytest.mark.slow  # ~30 s: the ring job through ganscale and through the plain loop, a few iterations each
def test_overhead_benchmark_compares_both_loops(tmp_path, bench_modules):
    _, overhead = bench_modules
    out = tmp_path / "overhead.md"
    # the ring job steps 10 iterations at a time (trainer.iters_per_step): its clock ticks at step starts
    with pytest.raises(SystemExit, match="multiples"):
        overhead.main(["--jobs", "ring", "--repeats", "1", "--iters", "2", "--warmup", "1", "--process-iters", "0",
                       "--no-profile"])
    assert overhead.main(["--jobs", "ring", "--repeats", "1", "--iters", "10", "--warmup", "10",
                          "--process-iters", "0", "--no-profile", "--out", str(out)]) == 0
    text = out.read_text()
    assert "| ring (10) |" in text and "x** |" in text
