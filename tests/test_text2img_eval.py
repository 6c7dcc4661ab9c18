"""The evaluation of text-to-image runs (ganscale.metrics.text_eval): R-precision with the run's
encoder pair, the captioned-digits judge (exact, held-out, shuffled control) and FID for captions
of real images, during training (metrics.jsonl, logged metrics/<name>) and from `ganscale eval`."""

from __future__ import annotations

import csv
import json
import os

import pytest
import torch
from torch import nn

from conftest import REPO
from ganscale.cli import main as cli_main
from ganscale.config import load_config
from ganscale.errors import UserError

MNIST = os.path.join(os.environ.get("GANSCALE_SHARED_DATA", os.path.join(REPO, "..", "shared", "data")), "mnist")
pytestmark = pytest.mark.skipif(not os.path.isfile(os.path.join(MNIST, "train-images-idx3-ubyte.gz")),
                                reason=f"MNIST IDX files not found in {MNIST} (set GANSCALE_SHARED_DATA)")


def run(capsys, *args) -> tuple[int, str, str]:
    """`ganscale ARGS` in this process: (exit code, stdout, stderr)."""
    capsys.readouterr()
    code = cli_main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """Tiny captioned digits (train holds out red 7), a 3-step encoder pair, a 3-step judge and a
    digit classifier with random weights (a valid offline extractor: FID is computed, not judged)."""
    from ganscale.metrics.classifier import DigitClassifier, TrainResult, save_classifier

    d = tmp_path_factory.mktemp("digits")
    for split, num in (("train", 96), ("test", 48)):
        assert cli_main(["data", "synth", "captioned-digits", str(d / split), "--split", split, "--num", str(num),
                         "--holdout", "red 7", "--mnist", MNIST]) == 0
    assert cli_main(["text", "train", "configs/text/digits_damsm.yaml", f"data={d / 'train'}",
                     f"test_data={d / 'test'}", f"out={d / 'enc.safetensors'}", "steps=3", "image_size=32",
                     "word_dim=16", "dim=16", "image_ch=4", "batch_size=16", "eval_every=0", "patience=0"]) == 0
    # the judge trains on its own shards with every pair; on train (red 7 held out) it is refused
    assert cli_main(["data", "synth", "captioned-digits", str(d / "judge-train"), "--split", "train", "--num", "64",
                     "--mnist", MNIST]) == 0
    judge = ["text", "judge", str(d / "judge-train"), str(d / "test"), "--out", str(d / "judge.safetensors"),
             "--steps", "3", "--batch-size", "8"]
    assert cli_main(judge) == 0
    assert cli_main([judge[0], judge[1], str(d / "train"), *judge[3:5], str(d / "refused.safetensors")]) == 2
    assert not (d / "refused.safetensors").exists()
    torch.manual_seed(0)
    save_classifier(TrainResult(DigitClassifier().eval(), 0.0, 0.0), str(d / "clf.pt"), "random weights")
    return d


def train_args(d, *extra):
    return ["train", "configs/text2img/digits_dfgan.yaml", f"data.shards.urls={d / 'train'}",
            f"game.text.encoder={d / 'enc.safetensors'}", "model.dfgan.text_dim=16", "model.dfgan.nf=2",
            "model.z_dim=8", "data.batch_size=4", "trainer.accelerator=cpu", "trainer.progress_bar=false",
            "wandb.mode=disabled", f"run.root={d / 'runs'}", f"eval.text.data={d / 'test'}",
            "eval.text.num_captions=24", "eval.batch_size=8", *extra]


@pytest.fixture(scope="module")
def text_run(digits):
    """A 2-iteration DF-GAN run evaluated at its last iteration (R-precision, judge, FID): (run dir, exit code)."""
    d = digits
    code = cli_main(train_args(
        d, "run.name=r", "trainer.max_iters=2", "trainer.eval_every=2", "trainer.plot_every=2",
        f"eval.text.judge={d / 'judge.safetensors'}", "eval.metrics=[fid]", "eval.extractor=classifier",
        f"eval.classifier_path={d / 'clf.pt'}", "eval.num_samples=16", "eval.num_reference=16"))
    return d / "runs" / "r", code


def test_text_run_is_evaluated_during_training_and_by_ganscale_eval(digits, text_run, capsys):
    d = digits
    run_dir, code = text_run
    assert code == 0
    lines = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [x["iter"] for x in lines] == [2]
    got = lines[0]
    for k in ("fid", "r_precision", "caption_exact", "caption_held_out", "caption_control"):
        assert k in got and 0 <= got[k] and (k == "fid" or got[k] <= 1), (k, got)
    assert got["num_captions"] == 24 and got["r_precision_candidates"] == 24
    with open(run_dir / "metrics.csv") as f:  # the loggers got them as slash-keyed metrics
        logged = {k for row in csv.DictReader(f) for k, v in row.items() if v}
    assert {"metrics/r_precision", "metrics/caption_exact", "metrics/fid"} <= logged
    assert (run_dir / "plots" / "samples_00000002.png").stat().st_size > 0  # captions under the images

    # the same evaluation from the CLI: the encoder pair, judge, captions and extractor come from the
    # run's config; FID's fakes are conditioned on the test captions (no download: the classifier)
    out = d / "eval.json"
    code, _, err = run(capsys, "eval", run_dir, "--out", out)
    assert code == 0, err
    res = json.loads(out.read_text())
    for k in ("r_precision", "caption_exact", "caption_held_out", "caption_control"):
        assert res[k] == pytest.approx(got[k]), k  # same G_ema, captions and seeds as in training
    assert res["fid"] == pytest.approx(got["fid"], rel=1e-3) and os.path.getsize(res["grid"]) > 0
    code, _, err = run(capsys, "eval", run_dir, f"eval.text.judge={d / 'nope.safetensors'}")
    assert code == 2 and "ganscale text judge" in err and "Traceback" not in err


@pytest.mark.slow
@pytest.mark.distributed
@pytest.mark.timeout(600)
def test_ganscale_eval_on_two_ranks_equals_one_process(text_run, tmp_path):
    """torchrun, 2 gloo ranks: each generates its share of the caption rows (3 batches: 2 + 1), the
    features and judge outputs are gathered in row order; the metrics equal one process's."""
    import subprocess
    import sys

    run_dir, code = text_run
    assert code == 0
    env = dict(os.environ, PYTHONPATH=REPO, OMP_NUM_THREADS="1")
    outs = {}
    for world in (1, 2):
        out = tmp_path / f"eval-{world}.json"
        r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
                            str(world), "-m", "ganscale", "eval", str(run_dir), "--out", str(out), "--device", "cpu"],
                           env=env, cwd=REPO, capture_output=True, text=True, timeout=500)
        assert r.returncode == 0, r.stderr[-3000:]
        outs[world] = json.loads(out.read_text())
    for k in ("r_precision", "caption_exact", "caption_held_out", "caption_control", "fid"):
        assert outs[2][k] == pytest.approx(outs[1][k], rel=1e-5, abs=1e-9), k


class RowCode(nn.Module):
    """Images whose pixel (0, 0, 0) holds the row: a module that answers `table[row]` for each image."""

    def __init__(self, table: torch.Tensor, pair_output: bool = False):
        super().__init__()
        self.table, self.pair_output = table, pair_output

    def forward(self, x):
        rows = ((x[:, 0, 0, 0] + 1) * 127.5).round().long()
        out = self.table[rows]
        return (None, out) if self.pair_output else out


def test_text_metrics_against_designed_answers(digits, tmp_path):
    """R-precision and the judge rates with an image encoder and a judge whose answers are set per
    row: the true caption's sentence for every image (R-precision 1), the caption's quadrants for
    rows 0..5 of 24 (exact 6/24), every held-out image read right."""
    from text_data import make_captioned_shards

    from ganscale.metrics.digits_judge import NUM_CLASSES, parse_caption
    from ganscale.metrics.evaluation import build_evaluation
    from ganscale.metrics.text_eval import HELD_OUT_OFFSET, SEED_STRIDE, TextEvaluation, load_captions

    d = digits
    cfg = load_config([], [f"data.shards.urls={d / 'train'}", "data.kind=shards", "game.name=dfgan",
                           "game.condition=text", f"game.text.encoder={d / 'enc.safetensors'}",
                           f"eval.text.data={d / 'test'}", "eval.text.num_captions=24", "eval.batch_size=5",
                           f"eval.text.judge={d / 'judge.safetensors'}", "eval.metrics=[]", "eval.seed=3"])
    data = type("DM", (), {"info": type("Info", (), {"shape": (3, 64, 64), "kind": "image"})})()
    ev = build_evaluation(cfg, data)  # a text-conditioned run gets the text evaluation, whatever its images
    assert isinstance(ev, TextEvaluation)
    ev.prepare()
    texts, held_out = ev.captions.texts, ev.held_out
    assert len(texts) == 24 and len(held_out) == 24
    assert all("red 7" in c for c in held_out)  # the pair the training shards' manifest records
    targets = torch.tensor([parse_caption(c) for c in texts])  # canonical captions with a judge
    answer = torch.cat([targets[:6], (targets[6:] + 1) % NUM_CLASSES])
    held = torch.tensor([parse_caption(c) for c in held_out])
    judge_table = torch.zeros(100 + len(held), 4 * NUM_CLASSES)
    judge_table[:24] = nn.functional.one_hot(answer, NUM_CLASSES).float().flatten(1)
    judge_table[100:] = nn.functional.one_hot(held, NUM_CLASSES).float().flatten(1)
    image_table = torch.zeros(100 + len(held), ev.cond.sentence.shape[1])
    image_table[:24] = ev.cond.sentence
    ev.judge, ev.pair.image = RowCode(judge_table), RowCode(image_table, pair_output=True)
    starts = []

    def sample_fn(n, seed=0, y=None, truncation=None):
        # the pass and the batch from the seed: data captions from row 0, held-out captions from row 100
        k = seed - 3 * SEED_STRIDE
        first = 100 + (k - HELD_OUT_OFFSET) * 5 if k >= HELD_OUT_OFFSET else k * 5
        starts.append(first)
        assert len(y) == n
        x = torch.full((n, 3, 64, 64), -1.0)
        x[:, 0, 0, 0] = torch.arange(first, first + n) / 127.5 - 1
        return x

    got = ev.text_metrics(sample_fn)
    assert starts == [0, 5, 10, 15, 20, 100, 105, 110, 115, 120]  # batches of eval.batch_size in row order
    assert got["r_precision"] == 1.0 and got["r_precision_candidates"] <= 24
    assert got["caption_exact"] == pytest.approx(6 / 24)
    assert got["caption_held_out"] == 1.0
    shuffled = torch.roll(targets, 1, 0)
    assert got["caption_control"] == pytest.approx(float((answer == shuffled).all(1).float().mean()))
    assert got["caption_control_chance"] == pytest.approx(float((targets == shuffled).all(1).float().mean()))
    squares = make_captioned_shards(tmp_path / "squares", num=6)
    with pytest.raises(UserError, match="no canonical captioned-digits captions"):
        load_captions(squares, 4, 0, canonical=True)
    assert len(load_captions(squares, 4, 0).texts) == 4


def test_judge_file_round_trip_and_errors(tmp_path):
    from ganscale.metrics.digits_judge import DigitJudge, load_judge, save_judge

    torch.manual_seed(0)
    judge = DigitJudge(ch=4)
    save_judge(judge, str(tmp_path / "j.safetensors"), real_exact=0.5, steps=3)
    back = load_judge(str(tmp_path / "j.safetensors"))
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    assert torch.equal(back(x), judge.eval()(x)) and not any(p.requires_grad for p in back.parameters())
    (tmp_path / "bad.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(UserError, match="not a readable safetensors"):
        load_judge(str(tmp_path / "bad.safetensors"))
    from safetensors.torch import save_file

    save_file({"w": torch.ones(1)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(UserError, match="not a captioned-digits judge"):
        load_judge(str(tmp_path / "other.safetensors"))
    with pytest.raises(UserError, match="ganscale text judge"):
        load_judge(str(tmp_path / "missing.safetensors"))


def test_judge_refuses_training_data_without_the_held_out_pairs(digits):
    """A judge never shown a red 7 never predicts one: every held-out caption would score 0."""
    from ganscale.metrics.digits_judge import held_out_pairs, train_judge

    assert held_out_pairs(str(digits / "train")) == ["red 7"] and held_out_pairs(str(digits / "judge-train")) == []
    assert held_out_pairs(str(digits / "test")) == []  # made with --holdout, but a test split keeps every pair
    with pytest.raises(UserError, match="synthesized with --holdout red 7.*without --holdout"):
        train_judge(str(digits / "train"), str(digits / "test"), steps=1)
