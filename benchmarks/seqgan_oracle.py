"""SeqGAN's synthetic-data protocol (Yu et al. 2017): an LSTM G trained by MLE against the same G
pretrained by MLE and then trained adversarially, both scored by the NLL under the oracle of their
samples.

    python benchmarks/seqgan_oracle.py                                  # writes docs/discrete.md (sequences)
    python benchmarks/seqgan_oracle.py --step mle            # the same in two processes side by side
    python benchmarks/seqgan_oracle.py --step adversarial    # once the MLE run has checkpoint --pretrain - --warmup
    python benchmarks/seqgan_oracle.py --step report         # then the doc
    python benchmarks/seqgan_oracle.py --vocab 1000 --iters 2000 --mle-iters 3000 --pretrain 1500 \
        --estimators reinforce gumbel_st

Steps (each skipped when its output exists; --force redoes them):
1. `ganscale data synth oracle-sequences data/oracle-V-L --vocab V --length L --num N` (the oracle,
   seeded, and its N training sequences in token shards)
2. the MLE baseline: `ganscale train configs/sequences/seqgan.yaml model.discrete.sequence.mode=mle
   trainer.max_iters=M` (--mle-iters, at least T), NLL-oracle of 10,000 samples every --eval-every
   iterations (the curve; its minimum is the plateau the bar compares with)
3. for each estimator E: the adversarial generator, `... mode=adversarial pretrain_iters=P
   d_warmup_iters=W model.discrete.estimator=E trainer.max_iters=T`. Its first P iterations are the
   MLE run's (G's phase, data stream and seeds are the same whether D trains beside it or not), so
   it starts from the MLE run's checkpoint at P - W, where its D begins to train, without computing
   the pretraining twice. G steps: P + (T - P) / g_every, no more than the MLE run's M.
4. NLL-test (G's own NLL per token of held-out oracle sequences: how much of the oracle G covers),
   the oracle's NLL of its own samples (its entropy rate) and of an untrained G's.
5. docs/discrete.md, the sequence section, and docs/discrete/seqgan_oracle.json.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _mnist_common import REPO, cpu_note, ganscale, portable, train  # noqa: E402
from binary_mnist import write_section  # noqa: E402

sys.path.insert(0, REPO)

ESTIMATORS = ["reinforce", "gumbel", "gumbel_st", "bgan"]
SECTION = "## Sequences with a known oracle (SeqGAN protocol)"
PUBLISHED = {"random": 10.310, "mle": 9.038, "ss": 8.985, "pg_bleu": 8.946, "seqgan": 8.736}
"""NLL-oracle of Yu et al. 2017, Table 1 (vocabulary 5000, length 20, 10,000 training sequences)."""


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default=os.path.join(REPO, "configs", "sequences", "seqgan.yaml"))
    p.add_argument("--vocab", type=int, default=5000)
    p.add_argument("--length", type=int, default=20)
    p.add_argument("--num", type=int, default=10000, help="training sequences drawn from the oracle")
    p.add_argument("--seed", type=int, default=0, help="the oracle's seed")
    p.add_argument("--iters", type=int, default=8000, help="the adversarial runs' last iteration (batch 64)")
    p.add_argument("--mle-iters", type=int, default=8000,
                   help="the MLE baseline's iterations (at least --iters: its curve covers every "
                        "G step of the adversarial runs and shows where MLE plateaus)")
    p.add_argument("--step", choices=["all", "mle", "adversarial", "report"], default="all",
                   help="mle: the baseline only; adversarial: the adversarial runs only (from the MLE run's "
                        "checkpoint at --pretrain - --warmup, which may still be training: the two can run side "
                        "by side); report: the doc from finished runs; all: the three in turn")
    p.add_argument("--pretrain", type=int, default=3000, help="MLE iterations before the adversarial ones")
    p.add_argument("--warmup", type=int, default=1500, help="D's iterations before the adversarial G steps")
    p.add_argument("--eval-every", type=int, default=500)
    p.add_argument("--eval-samples", type=int, default=10000)
    p.add_argument("--test-samples", type=int, default=2000, help="held-out oracle sequences for NLL-test")
    p.add_argument("--draws", type=int, default=5,
                   help="fresh draws of --eval-samples each that re-score the MLE plateau's checkpoints and the "
                        "adversarial end points (one draw's NLL-oracle moves by about 0.005-0.01)")
    p.add_argument("--estimators", nargs="*", default=["reinforce"], choices=ESTIMATORS,
                   help="adversarial runs (none: the MLE baseline only)")
    p.add_argument("--data", default=None, help="shard folder (default data/oracle-V-L)")
    p.add_argument("--runs", default=os.path.join(REPO, "runs", "benchmarks"))
    p.add_argument("--doc", default=os.path.join(REPO, "docs", "discrete.md"))
    p.add_argument("--force", action="store_true", help="redo every step")
    p.add_argument("overrides", nargs="*", help="config overrides for every training (after --)")
    args = p.parse_args(argv)
    if args.mle_iters < args.iters:
        p.error(f"--mle-iters {args.mle_iters} < --iters {args.iters}: the baseline must cover the adversarial runs")
    if not 0 < args.warmup <= args.pretrain < args.iters or (args.pretrain - args.warmup) % args.eval_every:
        p.error("need 0 < --warmup <= --pretrain < --iters, and --pretrain - --warmup a multiple of --eval-every "
                "(the MLE run's checkpoint there is where the adversarial run starts)")
    return args


def recipe(run_dir: str) -> dict:
    """The adversarial run's G and D settings, from the config it ran (its run directory)."""
    from ganscale.config import load_config

    cfg = load_config([os.path.join(run_dir, "config.yaml")], [])
    sc = cfg.model.discrete.sequence
    return {"g_lr": cfg.optim.G.lr, "adv_lr": sc.adv_lr or cfg.optim.G.lr, "d_lr": cfg.optim.D.lr,
            "g_every": sc.g_every, "reward": sc.reward, "baseline": sc.baseline, "rollouts": sc.rollouts,
            "baseline_decay": cfg.model.discrete.baseline_decay, "clip_norm": cfg.optim.G.clip_norm}


def describe(est: str, r: dict) -> str:
    """One sentence: how the adversarial G step of estimator `est` ran."""
    if est != "reinforce":
        return f"`{est}`: G steps on D's loss through the estimator every {r['g_every']} iteration(s)"
    reward = "D(x) = sigmoid(logit) (SeqGAN's)" if r["reward"] == "prob" else "log D(x)"
    tokens = (f"every token's reward the mean over {r['rollouts']} Monte Carlo completions of its prefix (SeqGAN's)"
              if r["rollouts"] else "the sequence's reward for every token (no rollouts: `...rollouts=K` gives "
              "SeqGAN's per-token rewards for K x L/2 times the sampling of a G step)")
    base = (f"minus a moving-average baseline (decay {r['baseline_decay']})" if r["baseline"]
            else "with no baseline (SeqGAN's)")
    return f"`reinforce`: reward {reward}, {tokens}, {base}"


def adversarial_name(args, est: str) -> str:
    return f"seqgan-{args.vocab}-{args.length}-{args.iters}-{est}-p{args.pretrain}"


def finished(run_dir: str) -> dict:
    """A finished training's benchmark record (benchmarks/_mnist_common.train writes it)."""
    info = os.path.join(run_dir, "benchmark_train.json")
    if not os.path.isfile(info):
        raise SystemExit(f"{run_dir} has not finished training (no benchmark_train.json): run its --step first")
    return json.load(open(info))


def curve(run_dir: str) -> dict[int, float]:
    rows = [json.loads(line) for line in open(os.path.join(run_dir, "metrics.jsonl"))]
    return {int(r["iter"]): float(r["oracle_nll"]) for r in rows if "oracle_nll" in r}


def nll_test(run_dir: str, test) -> float:
    """G's mean NLL per token (nats) of held-out oracle sequences."""
    import torch

    from ganscale.train.restore import load_module

    G = load_module(run_dir).sampler
    with torch.no_grad():
        return float(-torch.cat([G.log_probs(t) for t in test.split(500)]).mean())


def rescore(ckpt: str, oracle, n: int, draws: int) -> dict:
    """NLL-oracle of `draws` fresh draws of n samples (seeds 1..draws) of a checkpoint's G."""
    import statistics

    import torch

    from ganscale.metrics.oracle import oracle_nll
    from ganscale.train.restore import load_module

    module = load_module(ckpt)
    with torch.no_grad():
        vals = [oracle_nll(oracle, module.sample(n, seed=s)) for s in range(1, draws + 1)]
    return {"mean": statistics.fmean(vals), "std": statistics.stdev(vals) if draws > 1 else 0.0, "draws": vals}


def verdict(adv: dict, mle: dict) -> tuple[str, float, float]:
    """(met | tie | not met, gap, noise): the adversarial end's mean against the MLE checkpoint's,
    with noise = twice the standard error of their difference."""
    se2 = sum(d["std"] ** 2 / len(d["draws"]) for d in (adv, mle))
    gap, noise = mle["mean"] - adv["mean"], 2 * se2**0.5
    return ("met" if gap > noise else "tie" if gap > -noise else "not met"), gap, noise


def main(argv=None) -> dict:
    import torch

    from ganscale.data.synth.oracle import load_oracle
    from ganscale.data.synth.oracle_sequences import draw_sequences
    from ganscale.metrics.oracle import oracle_nll
    from ganscale.nets.discrete.sequence import SequenceGenerator

    args = parse_args(argv)
    torch.set_num_threads(1)
    data = args.data or os.path.join(REPO, "data", f"oracle-{args.vocab}-{args.length}")
    if args.force or not os.path.isfile(os.path.join(data, "manifest.json")):
        ganscale("data", "synth", "oracle-sequences", data, "--vocab", str(args.vocab), "--length", str(args.length),
                 "--num", str(args.num), "--seed", str(args.seed), "--overwrite")
    common = [f"data.shards.urls={data}", f"trainer.eval_every={args.eval_every}",
              f"trainer.ckpt_every={args.eval_every}", "checkpoint.keep_last=1000", f"eval.num_samples={args.eval_samples}",
              "wandb.mode=disabled", *args.overrides]
    mle_dir = os.path.join(args.runs, f"seqgan-{args.vocab}-{args.length}-{args.mle_iters}-mle")
    if args.step in ("all", "mle"):
        train(args.config, args.runs, os.path.basename(mle_dir),
              [*common, f"trainer.max_iters={args.mle_iters}", "model.discrete.sequence.mode=mle"], args.force)
    start = args.pretrain - args.warmup
    for est in args.estimators if args.step in ("all", "adversarial") else []:
        name = adversarial_name(args, est)
        run_dir = os.path.join(args.runs, name)
        if args.force or not os.path.isfile(os.path.join(run_dir, "benchmark_train.json")):
            shutil.rmtree(run_dir, ignore_errors=True)
            os.makedirs(os.path.join(run_dir, "checkpoints"))
            ckpt = os.path.join(mle_dir, "checkpoints", f"iter_{start:08d}.ckpt")
            if not os.path.isfile(ckpt + ".complete"):
                raise SystemExit(f"{ckpt} is not written (yet): run --step mle first")
            for f in glob.glob(ckpt + "*"):
                shutil.copy(f, os.path.join(run_dir, "checkpoints"))
            shutil.copy(os.path.join(mle_dir, "metrics.jsonl"), run_dir)  # the shared pretraining curve
            with open(os.path.join(run_dir, "metrics.jsonl"), "r+") as f:
                kept = [line for line in f if json.loads(line)["iter"] <= start]
                f.seek(0)
                f.writelines(kept)
                f.truncate()
        train(args.config, args.runs, name,
              [*common, f"trainer.max_iters={args.iters}", "model.discrete.sequence.mode=adversarial",
               f"model.discrete.estimator={est}",
               f"model.discrete.sequence.pretrain_iters={args.pretrain}",
               f"model.discrete.sequence.d_warmup_iters={args.warmup}"],
              args.force)
    if args.step not in ("all", "report"):
        return {}
    mle = finished(mle_dir)
    runs = {est: finished(os.path.join(args.runs, adversarial_name(args, est))) for est in args.estimators}
    oracle = load_oracle(os.path.join(data, "oracle.safetensors"))
    test = draw_sequences(oracle, args.test_samples, seed=10_000 + args.seed)  # not the training draws (seed + 1)
    torch.manual_seed(0)
    untrained = SequenceGenerator(args.vocab, args.length)
    with torch.no_grad():
        random_nll = oracle_nll(oracle, untrained(untrained.sample_z(args.eval_samples)))
    from ganscale.ops.checkpoint.store import iteration_of, list_checkpoints

    # the MLE plateau (every checkpoint from the end of pretraining on) and the adversarial end
    # points, each re-scored on --draws fresh draws: the bar turns on differences of a few 0.001
    mle_ckpts = list_checkpoints(os.path.join(mle["run_dir"], "checkpoints"))
    plateau = {iteration_of(c): rescore(c, oracle, args.eval_samples, args.draws)
               for c in mle_ckpts if iteration_of(c) >= args.pretrain}
    ends = {est: rescore(list_checkpoints(os.path.join(r["run_dir"], "checkpoints"))[-1], oracle,
                         args.eval_samples, args.draws) for est, r in runs.items()}
    result = {
        "args": vars(args), "cpu": cpu_note(),
        "oracle_self_nll": oracle_nll(oracle, draw_sequences(oracle, args.eval_samples, seed=20_000 + args.seed)),
        "untrained_nll": random_nll,
        "mle": {**mle, "curve": curve(mle["run_dir"]), "nll_test": nll_test(mle["run_dir"], test),
                "plateau": plateau},
        "adversarial": {est: {**r, "curve": curve(r["run_dir"]), "nll_test": nll_test(r["run_dir"], test),
                              "recipe": recipe(r["run_dir"]), "end": ends[est]} for est, r in runs.items()},
    }
    os.makedirs(os.path.join(os.path.dirname(args.doc), "discrete"), exist_ok=True)
    with open(os.path.join(os.path.dirname(args.doc), "discrete", "seqgan_oracle.json"), "w") as f:
        json.dump(portable(result), f, indent=2)
    write_doc(args, result)
    return result


def write_doc(args, r: dict) -> None:
    mle_curve = r["mle"]["curve"]
    plateau_it = min(mle_curve, key=mle_curve.get)
    plateau = mle_curve[plateau_it]
    final_mle = mle_curve[max(mle_curve)]
    adv = r["adversarial"]
    finals = {est: a["curve"][max(a["curve"])] for est, a in adv.items()}
    best = min(finals, key=finals.get) if finals else None
    smaller = args.vocab != 5000 or args.length != 20 or args.num != 10000
    lines = [
        SECTION, "",
        "The oracle is a randomly initialised LSTM (embedding 32, hidden 32, every weight N(0, 1) from a "
        "seeded generator, as in SeqGAN), saved as `oracle.safetensors` beside its token shards. G is an "
        "LSTM of the oracle's size (embedding 32, hidden 32; `ganscale/nets/discrete/sequence.py`). "
        "D is a smaller CNN than SeqGAN's: windows 2-5 with 32 filters each (SeqGAN: windows 1-10, 15, 20 "
        "with 100-200 filters), max over time, a highway layer, no dropout. "
        "`game.name=seqgan` (`ganscale/games/sequence.py`) trains G by MLE (teacher forcing) for "
        "`pretrain_iters`, then against D with `model.discrete.estimator`; `mode=mle` trains G by MLE only "
        "(the baseline, same G). `reinforce` rewards each sequence with log D(x) or D(x) "
        "(`model.discrete.sequence.reward`), with or without a moving-average baseline (`...baseline`), per "
        "sequence or per token from K Monte Carlo rollouts (`...rollouts=K`, SeqGAN's); `...g_every` steps G "
        "adversarially every k-th iteration while D steps every iteration, at `...adv_lr`.",
        "",
        "```bash",
        f"ganscale data synth oracle-sequences data/oracle --vocab {args.vocab} --length {args.length} --num {args.num}",
        "ganscale train configs/sequences/seqgan.yaml data.shards.urls=data/oracle                 # MLE, then REINFORCE",
        "ganscale train configs/sequences/seqgan.yaml data.shards.urls=data/oracle model.discrete.sequence.mode=mle",
        "ganscale eval runs/<run>                         # NLL under the oracle of 10,000 samples",
        "python benchmarks/seqgan_oracle.py               # the tables below",
        "```",
        "",
        f"Measured with `python benchmarks/seqgan_oracle.py --vocab {args.vocab} --length {args.length} "
        f"--num {args.num} --iters {args.iters} --mle-iters {args.mle_iters} --pretrain {args.pretrain} "
        f"--warmup {args.warmup} "
        f"--eval-every {args.eval_every} "
        f"--estimators {' '.join(args.estimators)}` on {r['cpu']}. "
        + (f"**Smaller than SeqGAN's setting** (vocabulary 5000, length 20, 10,000 sequences) to fit the CPU. "
           if smaller else "Vocabulary, length and training set are SeqGAN's. ")
        + f"**Budget:** batches of 64 (SeqGAN: 80 epochs of MLE pretraining, about "
        f"12,500 batches, then 200 adversarial rounds of one G step each). The MLE run steps G by MLE every "
        f"iteration for {args.mle_iters} iterations (its curve shows where MLE stops improving). The adversarial "
        f"runs share its first {args.pretrain} iterations "
        f"(MLE pretraining; D trains from iteration {args.pretrain - args.warmup} on the pretrained G's samples), "
        f"then train adversarially until iteration {args.iters}:",
        "",
        *[f"- {describe(est, a['recipe'])}; G: Adam {a['recipe']['g_lr']:g} while pretraining, "
          f"{a['recipe']['adv_lr']:g} adversarially, one adversarial G step every {a['recipe']['g_every']} "
          f"iteration(s) ({(args.iters - args.pretrain) // a['recipe']['g_every']} G steps, "
          f"{args.pretrain + (args.iters - args.pretrain) // a['recipe']['g_every']} G steps in all: no more than "
          f"the MLE run's); D: Adam {a['recipe']['d_lr']:g}, one step of batch 64 every iteration."
          for est, a in adv.items()],
        "",
        *sorted({(f"G's gradient norm clipped at {a['recipe'].get('clip_norm', 0):g} (`optim.G.clip_norm`, SeqGAN's 5), "
                  "in pretraining and adversarially." if a["recipe"].get("clip_norm") else
                  "No gradient clipping (SeqGAN clips G's gradient norm at 5).") for a in adv.values()}),
        "",
        "**NLL-oracle** = mean NLL per token (nats) under the oracle of 10,000 samples of G "
        "(`ganscale/metrics/oracle.py`; lower = samples the oracle finds likelier). **NLL-test** = G's "
        f"own NLL per token of {args.test_samples} held-out oracle sequences (lower = G covers more of "
        "the oracle). NLL-oracle rewards precision only: a G that emits only the oracle's likeliest "
        "sequences scores below the oracle itself, so read it with NLL-test.",
        "",
        "| generator | G steps (MLE + adversarial) | NLL-oracle | NLL-test | SeqGAN paper (NLL-oracle) |",
        "| --- | --- | --- | --- | --- |",
        f"| the oracle's own samples (its entropy rate) | | {r['oracle_self_nll']:.3f} | {r['oracle_self_nll']:.3f} "
        "(expected) | |",
        f"| untrained G | 0 | {r['untrained_nll']:.3f} | | random: {PUBLISHED['random']} |",
        f"| MLE, best point of its curve (iteration {plateau_it}) | {plateau_it} + 0 | {plateau:.3f} | | |",
        f"| MLE, end | {args.mle_iters} + 0 | {final_mle:.3f} | {r['mle']['nll_test']:.3f} | MLE: {PUBLISHED['mle']}; "
        f"scheduled sampling: {PUBLISHED['ss']}; PG-BLEU: {PUBLISHED['pg_bleu']} |",
    ]
    for est, a in adv.items():
        steps = (args.iters - args.pretrain) // a["recipe"]["g_every"]
        lines.append(f"| adversarial, `{est}`, end | {args.pretrain} + {steps} "
                     f"| {finals[est]:.3f} "
                     f"| {a['nll_test']:.3f} | SeqGAN: {PUBLISHED['seqgan']} |")
    lines += ["", "SeqGAN's figures are Table 1 of Yu et al. 2017 (vocabulary 5000, length 20, 10,000 "
              "training sequences, their own oracle draw: only the differences between rows compare)."]
    its_mle = sorted(mle_curve)
    if plateau_it != its_mle[-1]:
        after = [mle_curve[i] for i in its_mle if i >= plateau_it]
        lines += ["", f"The MLE curve reaches its minimum at iteration {plateau_it}; from there to iteration "
                  f"{its_mle[-1]} it stays between {plateau:.3f} and {max(after):.3f} and ends at {final_mle:.3f}: "
                  "MLE has plateaued (the bar below re-scores these checkpoints on several draws)."]
    if plateau_it == its_mle[-1] and len(its_mle) > 1:
        drop = mle_curve[its_mle[-2]] - plateau
        lines += ["", f"The MLE curve still falls at the end of the budget ({drop:.3f} nats over its last "
                  f"{its_mle[-1] - its_mle[-2]} iterations): its plateau is not reached here."]
    rescored = r["mle"].get("plateau") or {}
    if best is not None and rescored:
        d = args.draws
        level = sum(v["mean"] for v in rescored.values()) / len(rescored)
        mle_best_it = min(rescored, key=lambda i: rescored[i]["mean"])
        mle_best = rescored[mle_best_it]
        lines += ["", f"**Re-scored on {d} fresh draws of {args.eval_samples:,} samples each** (seeds 1-{d}; one "
                  "draw's NLL-oracle moves by about 0.005-0.01, the size of the differences the bar turns on): "
                  f"every MLE checkpoint from iteration {args.pretrain} on (the plateau the adversarial runs "
                  "compete with) and each adversarial end point, mean ± standard deviation over the draws:", "",
                  "| generator | NLL-oracle, mean ± std over the draws |", "| --- | --- |"]
        lines += [f"| MLE, iteration {i} | {v['mean']:.4f} ± {v['std']:.4f} |" for i, v in sorted(rescored.items(), key=lambda kv: int(kv[0]))]
        lines += [f"| MLE plateau level (mean of the rows above) | {level:.4f} |"]
        lines += [f"| adversarial, `{est}`, end (iteration {args.iters}) | {a['end']['mean']:.4f} ± {a['end']['std']:.4f} |"
                  for est, a in adv.items()]
        best_end = min(adv, key=lambda e: adv[e]["end"]["mean"])  # by the re-scored ends, not the single draw
        outcome, gap, noise = verdict(adv[best_end]["end"], mle_best)
        lines += ["", f"**Bar** (the adversarial generator ends below the MLE baseline's plateau; judged strictly, "
                  f"against the plateau's best checkpoint, iteration {mle_best_it}: {mle_best['mean']:.4f}, and "
                  f"counted only beyond twice the standard error of the difference, {noise:.4f}): best estimator "
                  f"`{best_end}` ends at {adv[best_end]['end']['mean']:.4f}, {gap:+.4f} nats per token below it "
                  f"({level - adv[best_end]['end']['mean']:+.4f} below the plateau's level): **"
                  + {"met": "met", "tie": "not met: a tie within the noise", "not met": "not met"}[outcome] + "**"
                  + (f" (SeqGAN's gap to its MLE: {PUBLISHED['mle'] - PUBLISHED['seqgan']:.3f})." if outcome == "met" else ".")]
    diverged = [e for e, v in finals.items() if v >= r["untrained_nll"] - 0.05]
    if diverged:
        lines += ["", f"Diverged (ends no better than an untrained G): {', '.join(f'`{e}`' for e in diverged)}."]
    its = sorted(set(mle_curve) | {i for a in adv.values() for i in a["curve"]})
    lines += ["", "NLL-oracle curves (every " f"{args.eval_every} iterations; the adversarial runs equal the MLE "
              f"run up to iteration {args.pretrain - args.warmup}, where they start from its checkpoint):", "",
              "| iteration | MLE | " + " | ".join(f"`{e}`" for e in adv) + " |",
              "| --- | --- | " + " | ".join("---" for _ in adv) + " |"]
    for i in its:
        cells = [f"{mle_curve[i]:.3f}" if i in mle_curve else ""]
        cells += [f"{a['curve'][i]:.3f}" if i in a["curve"] and i > args.pretrain - args.warmup else ""
                  for a in adv.values()]
        lines.append(f"| {i} | " + " | ".join(cells) + " |")
    lines += ["", "Raw numbers: `docs/discrete/seqgan_oracle.json`.", ""]
    write_section(args.doc, SECTION, "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
