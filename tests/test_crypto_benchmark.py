"""benchmarks/crypto.py runs end to end with tiny settings (the real table comes from the command
in its docstring and lives in docs/crypto.md)."""

import json
import os
import sys

from tests.conftest import REPO

sys.path.insert(0, os.path.join(REPO, "benchmarks"))


def test_crypto_benchmark_stops_at_the_target_and_writes_the_table(tmp_path):
    import crypto

    out = tmp_path / "docs"
    # a target every seed meets at its first measurement (Bob below 17 of 16 bits, Eve above 0)
    rc = crypto.main(["--seeds", "1", "--iters", "50", "--batch", "32", "--eve-steps", "3", "--eve-restarts", "2",
                      "--eval-every", "4", "--jobs", "1", "--stop-bob", "17", "--stop-eve", "0",
                      "--set", "game.crypto.eval_samples=256", "--out-dir", str(out),
                      "--work-dir", str(tmp_path / "runs")])
    assert rc == 0
    md = (out / "crypto.md").read_text()
    assert "| seed | iterations | Bob (bits) |" in md and "\n| 0 | 4 | " in md
    assert "1 of 1 seeds met the reference code's target (Bob < 17.0, co-trained Eve > 0.0 bits)" in md
    assert "| fresh Eve | 2 x 3 steps of batch 32 from new initialisations" in md
    res = json.loads((out / "crypto.json").read_text())["results"]
    assert [r["metrics"]["iter"] for r in res] == [4] and "fresh_eve_bits" in res[0]["metrics"]
    cfg = (tmp_path / "runs" / "s0" / "config.yaml").read_text()
    assert "eval_eve_restarts: 2" in cfg and "stop_bob_bits: 17.0" in cfg
    # --report-only over 2 seeds while seed 1 is still training: the finished one is tabled, the
    # other's last measurement is stated, nothing is extrapolated
    os.makedirs(tmp_path / "runs" / "s1")
    (tmp_path / "runs" / "s1" / "metrics.jsonl").write_text('{"iter": 250, "bob_bits": 7.5, "eve_bits": 6.25}\n')
    assert crypto.main(["--seeds", "2", "--report-only", "--iters", "50", "--out-dir", str(out),
                        "--work-dir", str(tmp_path / "runs")]) == 0
    md = (out / "crypto.md").read_text()
    assert "Only 1 of the 2 requested seeds finished" in md
    assert "seed 1 at iteration 250: Bob 7.50, co-trained Eve 6.25 bits" in md
