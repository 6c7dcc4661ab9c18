"""Adversarial neural cryptography over seeds: the paper's success criterion after retraining Eve.

    nice -n 10 python benchmarks/crypto.py --seeds 10          # docs/crypto.md and docs/crypto.json
    python benchmarks/crypto.py --seeds 2 --iters 500 --out-dir /tmp/crypto     # a quick look

Every seed trains configs/crypto/abadi16.yaml through `ganscale.train.run.main` (the same code as
`ganscale train`), with at most --iters iterations of batch --batch, stopping early as the authors'
reference code does once Bob is below --stop-bob bits and the co-trained Eve above --stop-eve (0
disables), then the paper's protocol (ganscale.games.crypto_eval): --eve-restarts fresh Eves of
--eve-steps steps each (batch --batch) attack the frozen Alice and the strongest counts. A seed
succeeds when Bob's error is below 0.05 bits and the fresh Eve's at least 7.3 of 16 bits. The
reference code trains with batch 4096 for up to 850,000 iterations and retrains Eve 5 x 250,000
steps; on a shared CPU the budget here is smaller, and the document states exactly what ran.

Writes <out-dir>/crypto.md (the per-seed table, the fraction of successful seeds, the paper's
figures beside) and <out-dir>/crypto.json. Runs live in --work-dir (deleted and retrained each time).
`--report-only` rebuilds both from the seeds already finished there (e.g. after an interrupted
benchmark); the document then says how many of the requested seeds it holds.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import shutil
import signal
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)  # this checkout's ganscale, in the spawned workers too
CONFIG = os.path.join(REPO, "configs", "crypto", "abadi16.yaml")
BAR = 5  # successful seeds of 10 that the issue asks for


def run_one(job: dict) -> dict:
    """Train and evaluate one seed in this worker process."""
    import torch

    torch.set_num_threads(1)
    from ganscale.config import load_config
    from ganscale.train.run import main

    run_dir = os.path.join(job["work_dir"], f"s{job['seed']}")
    shutil.rmtree(run_dir, ignore_errors=True)
    os.makedirs(run_dir)
    overrides = ["trainer.progress_bar=false", "trainer.ckpt_every=0", "trainer.plot_every=0", "wandb.mode=disabled",
                 f"trainer.eval_every={job['eval_every']}", f"trainer.max_iters={job['iters']}",
                 f"data.batch_size={job['batch']}", f"game.crypto.eval_eve_steps={job['eve_steps']}",
                 f"game.crypto.eval_eve_batch={job['batch']}", f"game.crypto.eval_eve_restarts={job['eve_restarts']}",
                 f"game.crypto.stop_bob_bits={job['stop_bob']}", f"game.crypto.stop_eve_bits={job['stop_eve']}",
                 *job["extra"], f"seed={job['seed']}",
                 f"run.root={os.path.dirname(run_dir)}", f"run.name={os.path.basename(run_dir)}", "run.resume=never"]
    cfg = load_config([CONFIG], overrides)
    t0 = time.perf_counter()
    with open(os.path.join(run_dir, "train.log"), "w") as log:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(log.fileno(), 1)  # one job per worker process (maxtasksperchild=1)
        os.dup2(log.fileno(), 2)
        main(cfg)
    return finished_seed(run_dir, job["seed"], seconds=time.perf_counter() - t0)


def finished_seed(run_dir: str, seed: int, seconds: float | None = None) -> dict | None:
    """A finished run's evaluations (None if it has no final_metrics.json); without `seconds`,
    the time from its config.yaml to its final_metrics.json."""
    final = os.path.join(run_dir, "final_metrics.json")
    if not os.path.exists(final):
        return None
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        history = [json.loads(line) for line in f]
    if seconds is None:
        seconds = os.path.getmtime(final) - os.path.getmtime(os.path.join(run_dir, "config.yaml"))
    return {"seed": seed, "metrics": history[-1], "history": history, "seconds": seconds}


def last_measurement(run_dir: str) -> dict | None:
    """The newest row of an unfinished run's metrics.jsonl (None if it has none)."""
    path = os.path.join(run_dir, "metrics.jsonl")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return rows[-1] if rows else None


def write_markdown(results: list[dict], args, path: str, wall: float) -> str:
    from ganscale.games.crypto_eval import SUCCESS_BOB_BITS, SUCCESS_EVE_FRACTION

    n_ok = sum(int(r["metrics"]["success"]) for r in results)
    eve_bar = SUCCESS_EVE_FRACTION * 16
    lines = [
        "# Adversarial neural cryptography (Abadi & Andersen 2016)",
        "",
        "Alice and Bob share a 16-bit key; Alice encrypts a 16-bit plaintext, Bob decrypts it, Eve",
        "reads only the ciphertext (`ganscale/games/crypto.py`, networks `ganscale/nets/crypto.py`).",
        "After training, a fresh Eve trains from scratch against the frozen Alice and both errors are",
        "measured on 16,384 new random (plaintext, key) pairs (`ganscale/games/crypto_eval.py`). A seed",
        f"succeeds when Bob's error is below {SUCCESS_BOB_BITS} bits and the fresh Eve's at least",
        f"{eve_bar:.1f} of 16 bits (8 = chance).",
        "",
        "```bash",
        args.command,
        "```",
        "",
        f"**{n_ok} of {len(results)} seeds succeed** (the issue's bar: {BAR} of 10)."
        + ("" if len(results) == args.seeds else
           f" Only {len(results)} of the {args.seeds} requested seeds finished within the CPU time this run had; "
           "the others did not finish (below: how far the interrupted ones got), and nothing is extrapolated."),
        "",
        "| seed | iterations | Bob (bits) | co-trained Eve (bits) | fresh Eve (bits) | success | against the stronger Eve | seconds |",
        "| ---: | ---: | ---: | ---: | ---: | :---: | :---: | ---: |",
    ]
    n_strict = 0
    for r in sorted(results, key=lambda r: r["seed"]):
        m = r["metrics"]
        strict = m["bob_bits"] < SUCCESS_BOB_BITS and min(m["eve_bits"], m["fresh_eve_bits"]) >= eve_bar
        n_strict += strict
        lines.append(f"| {r['seed']} | {m['iter']} | {m['bob_bits']:.3f} | {m['eve_bits']:.2f} | {m['fresh_eve_bits']:.2f} | "
                     f"{'yes' if m['success'] else 'no'} | {'yes' if strict else 'no'} | {r['seconds']:.0f} |")
    lines += [
        "",
        "*iterations*: Alice/Bob steps run (fewer than the budget when the seed met the reference code's",
        "target and stopped). *success* is the paper's criterion, judged on the fresh Eve. *Against the",
        "stronger Eve* also requires the co-trained Eve (which trained 2 steps per iteration for the whole",
        "run) to stay at or above the bar: "
        f"{n_strict} of {len(results)} seeds.",
    ]
    at_chance = [r["seed"] for r in results if r["metrics"]["bob_bits"] > 7.5]  # of 16: Bob never decrypted
    if at_chance:
        lines += ["", f"In {len(at_chance)} of {len(results)} seeds (seeds {', '.join(map(str, sorted(at_chance)))}) "
                  "Bob never left chance (8 bits): Alice and Bob found no code within the budget."]
    rising = [r["seed"] for r in results if len(r["history"]) > 1 and r["metrics"]["iter"] == args.iters
              and r["seed"] not in at_chance and r["history"][-1]["eve_bits"] > r["history"][-2]["eve_bits"]]
    if rising:
        lines += ["", f"In {len(rising)} of {len(results)} seeds (seeds {', '.join(map(str, sorted(rising)))}) the "
                  "co-trained Eve's error was still rising at the last measurement: those runs ended while Alice "
                  "was still learning to hide the plaintext, before a plateau."]
    unfinished = [f"seed {s} at iteration {h['iter']}: Bob {h['bob_bits']:.2f}, co-trained Eve {h['eve_bits']:.2f} bits"
                  for s in range(args.seeds) if s not in {r["seed"] for r in results}
                  and (h := last_measurement(os.path.join(args.work_dir, f"s{s}")))]
    if unfinished:
        lines += ["", "Interrupted before the end (last measurement, no fresh Eve): " + "; ".join(unfinished) + "."]
    stopped = [r["seed"] for r in results if r["metrics"]["iter"] < args.iters]
    if args.stop_bob > 0:
        lines += ["", f"{len(stopped)} of {len(results)} seeds met the reference code's target (Bob < {args.stop_bob}, "
                  f"co-trained Eve > {args.stop_eve} bits) within {args.iters} iterations and stopped there."]
    iters_row = " / ".join(f"{h['iter']}: {h['bob_bits']:.2f}, {h['eve_bits']:.2f}"
                           for h in sorted(results, key=lambda r: r["seed"])[0]["history"])
    lines += [
        "",
        f"Seed {min(r['seed'] for r in results)} during training (iteration: Bob's and the co-trained Eve's bits): "
        f"{iters_row}.",
        "",
        "## What ran, and the paper's settings",
        "",
        "| | this table | the paper |",
        "| --- | --- | --- |",
        f"| batch of (plaintext, key) pairs | {args.batch} | 4096 |",
        f"| training | at most {args.iters} iterations (1 Alice/Bob + 2 Eve steps each)"
        + (f", stopping at Bob < {args.stop_bob} and Eve > {args.stop_eve} bits (measured every {args.eval_every})"
           if args.stop_bob > 0 else "") + " | "
        "the same steps; the reference code trains until Bob < 0.02 and Eve > 7.7 bits (at most 850,000 iterations) |",
        "| networks | the paper's mix & transform: FC 2N -> 2N, sigmoid; convolutions (window, depth in, depth out, "
        "stride) [4,1,2,1], [2,2,4,2], [1,4,4,1] sigmoid, [1,4,1,1] tanh; Eve one more FC (N -> 2N) | the same "
        "(the reference code's own network is smaller: FC without a nonlinearity, then three convolutions) |",
        "| initialisation | Glorot-uniform weights, zero biases | the reference code's (TensorFlow's defaults) |",
        "| Alice/Bob's loss | Bob's bits / N + mean over pairs of (N/2 - Eve's bits)^2 / (N/2)^2 | "
        "the reference code's (the paper writes it with Eve's expected error inside the square) |",
        "| optimizer | Adam, lr 0.0008, betas (0.9, 0.999), every player | Adam, lr 0.0008 |",
        f"| fresh Eve | {args.eve_restarts} x {args.eve_steps} steps of batch {args.batch} from new initialisations, "
        "the strongest counts | "
        "retrained from scratch (the reference code: up to 250,000 steps, 5 restarts) |",
        "| success | Bob < 0.05 bits, fresh Eve >= 7.3 bits | the same criterion |",
        "",
        "The paper's settings are those of its text and of the authors' reference code",
        "(tensorflow/models, research/adversarial_crypto), which trains until Bob's error is below",
        "0.02 bits and Eve's above 7.7 (at most 850,000 iterations) and then retrains Eve from scratch",
        "5 times for 250,000 steps each. No per-seed table to set beside this one is published; the",
        "success criterion above is the paper's.",
        "",
        "The budget is this CPU's: batch 4096 costs about 4x batch 512 per iteration on one core (the",
        "networks are tiny, so a step's fixed cost dominates small batches), and 2 CPU cores were shared",
        "with other jobs, so the table trades the paper's batch for more iterations; batch 4096 over the",
        "same iterations was not measured.",
        "",
        f"Wall time {wall / 60:.1f} min for {len(results)} seeds with {args.jobs} worker processes on "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores shared with other jobs "
        f"(per seed: the seconds column; {sum(r['seconds'] for r in results) / sum(r['metrics']['iter'] for r in results):.2f} s "
        "per iteration of three steps on average, the evaluations and fresh Eves included).",
    ]
    text = "\n".join(lines) + "\n"
    with open(path, "w") as f:
        f.write(text)
    return text


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=10, help="seeds 0..N-1")
    p.add_argument("--iters", type=int, default=20000, help="training iterations per seed (at most)")
    p.add_argument("--batch", type=int, default=512, help="(plaintext, key) pairs per step")
    p.add_argument("--eve-steps", type=int, default=5000, help="steps of each fresh Eve of the evaluation")
    p.add_argument("--eve-restarts", type=int, default=2, help="fresh Eves per seed (the strongest counts)")
    p.add_argument("--stop-bob", type=float, default=0.02,
                   help="stop a seed once Bob is below this many bits (the reference code: 0.02; 0 = never) ...")
    p.add_argument("--stop-eve", type=float, default=7.7, help="... and the co-trained Eve above this many")
    p.add_argument("--eval-every", type=int, default=250, help="iterations between Bob/Eve measurements")
    p.add_argument("--jobs", type=int, default=2, help="worker processes")
    p.add_argument("--set", nargs="*", default=[], help="extra key=value overrides for every run")
    p.add_argument("--out-dir", default=os.path.join(REPO, "docs"), help="where crypto.md and crypto.json go")
    p.add_argument("--work-dir", default=os.path.join(REPO, "runs", "crypto"), help="run directories")
    p.add_argument("--report-only", action="store_true",
                   help="train nothing: write the document from the seeds already finished in --work-dir")
    args = p.parse_args(argv)
    if min(args.seeds, args.iters, args.batch, args.jobs, args.eve_steps, args.eve_restarts) < 1:
        p.error("--seeds, --iters, --batch, --eve-steps, --eve-restarts and --jobs must be >= 1")
    # the command that trained the runs (--report-only only rewrites the document)
    args.command = "python benchmarks/crypto.py " + " ".join(a for a in (sys.argv[1:] if argv is None else argv)
                                                             if a != "--report-only")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    os.makedirs(args.out_dir, exist_ok=True)
    if args.report_only:
        results = [r for s in range(args.seeds) if (r := finished_seed(os.path.join(args.work_dir, f"s{s}"), s))]
        if not results:
            print(f"no finished seed in {args.work_dir}", file=sys.stderr)
            return 1
        wall = _span(args.work_dir, results)
    else:
        results, wall = train_seeds(args)
    with open(os.path.join(args.out_dir, "crypto.json"), "w") as f:
        json.dump({"command": args.command, "wall_seconds": wall, "results": results}, f, indent=1)
    print(write_markdown(results, args, os.path.join(args.out_dir, "crypto.md"), wall))
    return 0


def train_seeds(args) -> tuple[list[dict], float]:
    """Train every seed in a pool of --jobs processes; (results, wall seconds)."""
    jobs = [{"seed": s, "iters": args.iters, "batch": args.batch, "eve_steps": args.eve_steps,
             "eve_restarts": args.eve_restarts, "stop_bob": args.stop_bob, "stop_eve": args.stop_eve,
             "eval_every": args.eval_every, "extra": args.set, "work_dir": args.work_dir} for s in range(args.seeds)]
    t0 = time.perf_counter()
    results = []
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # leave through `with`: ends the workers
    with mp.get_context("spawn").Pool(args.jobs, maxtasksperchild=1) as pool:
        for r in pool.imap_unordered(run_one, jobs):
            results.append(r)
            m = r["metrics"]
            print(f"[{len(results)}/{len(jobs)}] seed {r['seed']}: Bob {m['bob_bits']:.3f} bits, "
                  f"fresh Eve {m['fresh_eve_bits']:.2f} bits, success {bool(m['success'])} ({r['seconds']:.0f} s)",
                  flush=True)
    return results, time.perf_counter() - t0


def _span(work_dir: str, results: list[dict]) -> float:
    """Seconds from the first run's start to the last run's end (from the run directories)."""
    starts = [os.path.getmtime(os.path.join(work_dir, f"s{r['seed']}", "config.yaml")) for r in results]
    ends = [os.path.getmtime(os.path.join(work_dir, f"s{r['seed']}", "final_metrics.json")) for r in results]
    return max(ends) - min(starts)


if __name__ == "__main__":
    sys.exit(main())
