"""The mode-collapse and unroll-cost benchmarks run end to end (tiny settings; the real numbers
come from the full commands in their docstrings and live in docs/)."""

import json
import os
import sys

import pytest

from tests.conftest import REPO

sys.path.insert(0, os.path.join(REPO, "benchmarks"))


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_toy_modes_writes_table_and_figure(tmp_path):
    import toy_modes

    out = tmp_path / "docs"
    rc = toy_modes.main(["--mixtures", "ring", "--methods", "gan,pack2", "--seeds", "1", "--jobs", "2",
                         "--iters", "3", "--set", "data.batch_size=16",
                         "--out-dir", str(out), "--work-dir", str(tmp_path / "runs")])
    assert rc == 0
    md = (out / "toy_modes.md").read_text()
    assert "| plain GAN (no R1, no EMA) (`vanilla`) |" in md and "| PacGAN m=2 (`model.remedies.pack=2`) |" in md
    assert "| published: PacGAN4 | 7.8 | 95.9 |" in md
    assert (out / "toy_modes.png").stat().st_size > 10_000
    rows = json.loads((out / "toy_modes.json").read_text())
    assert {(r["method"], r["seed"]) for r in rows} == {("gan", 0), ("pack2", 0)}
    assert all(r["iters"] == 3 and 0 <= r["metrics"]["modes"] <= 8 for r in rows)
    # the pack2 run really packed: its resolved config says so
    cfg = (tmp_path / "runs" / "ring" / "pack2-s0" / "config.yaml").read_text()
    assert "pack: 2" in cfg and "r1_gamma: 0.0" in cfg and "max_iters: 3" in cfg
    # run again: finished runs of the same config are reused (an interrupted benchmark resumes),
    # a changed config trains afresh
    args = ["--mixtures", "ring", "--seeds", "1", "--jobs", "1", "--set", "data.batch_size=16",
            "--out-dir", str(out), "--work-dir", str(tmp_path / "runs")]
    assert toy_modes.main([*args, "--methods", "gan,pack2", "--iters", "3"]) == 0
    again = json.loads((out / "toy_modes.json").read_text())
    assert all(r.get("reused") for r in again)
    assert sorted((r["method"], r["metrics"]["modes"], r["metrics"]["hq_fraction"]) for r in again) == \
        sorted((r["method"], r["metrics"]["modes"], r["metrics"]["hq_fraction"]) for r in rows)
    assert toy_modes.main([*args, "--methods", "gan", "--iters", "4"]) == 0
    fresh = json.loads((out / "toy_modes.json").read_text())
    assert [(r["iters"], r.get("reused", False)) for r in fresh] == [(4, False)]
    # notes written by hand below the marker survive a regeneration of the page
    page = out / "toy_modes.md"
    page.write_text(page.read_text() + "\n" + toy_modes.NOTES + "\nseeds 5-7: see below\n")
    assert toy_modes.main([*args, "--methods", "gan", "--iters", "4"]) == 0
    assert page.read_text().endswith(toy_modes.NOTES + "\nseeds 5-7: see below\n")
    # --first-seed and --name: other seeds, their own page
    assert toy_modes.main([*args, "--methods", "gan", "--iters", "4", "--first-seed", "5", "--name", "unseen"]) == 0
    assert "(1 seeds: 5;" in (out / "unseen.md").read_text()
    assert [r["seed"] for r in json.loads((out / "unseen.json").read_text())] == [5]


def test_saved_config_from_before_a_new_field_still_matches(tmp_path):
    """A run saved before a config field existed ran with that field's neutral default (the
    behaviour before the field): it is reused where the current config has that value, and
    retrained where the current config changed it (the shipped ring now decays its lr)."""
    import yaml

    import toy_modes
    from ganscale.config import load_config
    from ganscale.config.load import to_yaml

    ring = os.path.join(REPO, "configs", "toy", "ring.yaml")
    vanilla = load_config([ring], [*toy_modes.method_overrides("gan", 2000), "seed=3"])  # constant lrs
    shipped = load_config([ring], ["seed=3"])  # linear decay over the second half
    path = tmp_path / "config.yaml"
    for cfg, reusable in ((vanilla, True), (shipped, False)):
        old = yaml.safe_load(to_yaml(cfg))
        for player in ("G", "D"):  # as written before optim.*.schedule existed
            for key in ("schedule", "decay_start", "final_scale"):
                del old["optim"][player][key]
        path.write_text(yaml.safe_dump(old))
        assert (toy_modes.saved_config_yaml(str(path)) == to_yaml(cfg)) is reusable
    old = yaml.safe_load(to_yaml(vanilla))
    old["seed"] = 4
    path.write_text(yaml.safe_dump(old))
    assert toy_modes.saved_config_yaml(str(path)) != to_yaml(vanilla)
    path.write_text("optim: {G: {lr: fast}}\n")  # no longer valid: not reusable, no crash
    assert toy_modes.saved_config_yaml(str(path)) is None


def test_toy_modes_method_overrides_switch_remedies_off_then_on():
    import toy_modes

    assert toy_modes.method_overrides("default") == []
    ov = toy_modes.method_overrides("unroll10", 100)
    assert ov[:len(toy_modes.PLAIN)] == toy_modes.PLAIN and ov[-2:] == ["unroll.steps=10", "trainer.max_iters=100"]
    assert "gan.ema.enabled=false" in ov and "reg.r1_gamma=0" in ov
    assert "optim.G.schedule=constant" in ov and "optim.D.decay_start=0.0" in ov  # the grid's decay is off
    assert toy_modes.mean_se([1.0, 2.0, 3.0]) == pytest.approx((2.0, (1 / 3) ** 0.5))


def test_unroll_cost_measures_the_graph_and_renders_the_table():
    import argparse

    import unroll_cost

    rows = [unroll_cost.child(k, so, 1, ["data.batch_size=16"], "cpu") for k, so in ((0, True), (2, True), (2, False))]
    graph = {(r["k"], r["second_order"]): r["graph_mib"] for r in rows}
    # the second-order look-ahead keeps more of the graph alive than first order, which keeps more than k=0
    assert graph[(2, True)] > graph[(2, False)] > graph[(0, True)] > 0
    assert all(r["ms"] > 0 and r["peak_mib"] > 0 for r in rows)
    md = unroll_cost.render(rows, argparse.Namespace(device="cpu", iters=1, set=["data.batch_size=16"]), ["--x"])
    assert "| 2 | first |" in md and "| 0 | second | " in md and "per-rank batch 16" in md


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_unroll_cost_command_writes_docs_table(tmp_path):
    import unroll_cost

    out = tmp_path / "cost.md"
    assert unroll_cost.main(["--steps", "1", "--first-order", "", "--iters", "1", "--set", "data.batch_size=16",
                             "--out", str(out)]) == 0
    assert "| 1 | second |" in out.read_text()


def test_toy_modes_findings_state_goal_and_collapse_from_the_numbers():
    import toy_modes

    def row(method, seed, modes, hq):
        return {"mixture": "grid", "method": method, "seed": seed, "seconds": 1.0, "iters": 10,
                "metrics": {"modes": modes, "num_modes": 25, "hq_fraction": hq, "kl": 0.01}}

    args = toy_modes.parse_args(["--mixtures", "grid", "--methods", "gan,default", "--seeds", "2"])
    met = [row("default", 0, 25, 0.975), row("default", 1, 25, 0.971), row("gan", 0, 25, 0.9), row("gan", 1, 25, 0.9)]
    text = "\n".join(toy_modes.findings(met, args, "grid"))
    assert "all 25 modes in 2/2 seeds" in text and "met." in text and "NOT met" not in text
    assert "missed modes in 0/2 seeds (no collapse in this setting)" in text
    short = [row("default", 0, 24, 0.975), row("default", 1, 25, 0.965), row("gan", 0, 17, 0.9), row("gan", 1, 25, 0.9)]
    text = "\n".join(toy_modes.findings(short, args, "grid"))
    assert "NOT met (modes missed in 1 seed(s); lowest seed 96.5% HQ, 0.5 points short)" in text
    assert "missed modes in 1/2 seeds (it collapses in this setting)" in text
