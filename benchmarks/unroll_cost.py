"""Cost of unrolling: time and memory per iteration for unroll.steps k = 0, 1, 5, 10.

    nice -n 10 python benchmarks/unroll_cost.py                     # writes docs/unroll_cost.md
    python benchmarks/unroll_cost.py --steps 0,1 --iters 5 --out /tmp/cost.md   # a quick look

Each (k, order) runs in a fresh process (so peak-memory readings do not leak between settings) on
the shipped ring config (configs/toy/ring.yaml, any --set overrides on top), driving GANModule's
training_step directly (no Trainer: no logging or checkpoint overhead). Per iteration it reports
the median wall time of a whole iteration (D phase + G phase), and three memory figures:

- graph: bytes of the distinct tensors autograd saves for backward during one G phase (what the
  k look-ahead steps keep alive; deterministic),
- peak: on CUDA, torch.cuda.max_memory_allocated over the iterations; on CPU, the peak resident set
  of the whole process (imports included), and its excess over the k=0 process.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def child(k: int, second_order: bool, iters: int, overrides: list[str], device: str) -> dict:
    import lightning as L
    import torch

    torch.set_num_threads(1)
    sys.path.insert(0, REPO)
    from ganscale.config import load_config
    from ganscale.data import build_datamodule
    from ganscale.train.module import GANModule

    cfg = load_config([os.path.join(REPO, "configs", "toy", "ring.yaml")],
                      [*overrides, f"unroll.steps={k}", f"unroll.second_order={second_order}"])
    L.seed_everything(cfg.seed, verbose=False)
    dm = build_datamodule(cfg)
    m = GANModule(cfg, dm.info)
    fabric = L.Fabric(accelerator="cuda" if device == "cuda" else "cpu", devices=1)
    fabric.setup(m, *m.configure_optimizers())
    stream = dm.stream()
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    def batch(i):
        return {k_: v.to(m.device) for k_, v in stream.batch_at(i).items()}

    for i in range(3):  # warm-up: optimizer state, allocator, lazy init
        m.training_step(batch(i), i)
    # graph memory of one G phase: distinct storages autograd saves for backward
    saved: dict[int, int] = {}

    def pack(t):
        try:
            st = t.untyped_storage()
            saved[st.data_ptr()] = st.nbytes()
        except Exception:  # noqa: BLE001 - e.g. sparse or wrapper tensors
            pass
        return t

    m.reals = [(x, None) for x in batch(3)["x"].split(cfg.data.batch_size)]
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        m.run_phase(m.phase_by_name("G_main"))
    graph_bytes = sum(saved.values())

    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    times = []
    for i in range(4, 4 + iters):
        b = batch(i)
        sync()
        t0 = time.perf_counter()
        m.training_step(b, i)
        sync()
        times.append(time.perf_counter() - t0)
    if device == "cuda":
        peak = torch.cuda.max_memory_allocated() - base
    else:
        peak = _peak_rss_bytes()
    return {"k": k, "second_order": second_order, "ms": 1000 * statistics.median(times),
            "ms_min": 1000 * min(times), "graph_mib": graph_bytes / 2**20, "peak_mib": peak / 2**20,
            "iters": iters, "batch": cfg.data.batch_size, "n_disc": cfg.gan.n_disc, "device": device}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", default="0,1,5,10", help="comma list of k")
    p.add_argument("--first-order", default="5,10", help="k values also measured with second_order=false")
    p.add_argument("--iters", type=int, default=30, help="timed iterations per setting")
    p.add_argument("--set", nargs="*", default=[], help="extra key=value overrides")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--out", default=os.path.join(REPO, "docs", "unroll_cost.md"))
    p.add_argument("--child", nargs=2, metavar=("K", "SECOND_ORDER"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(child(int(args.child[0]), args.child[1] == "1", args.iters, args.set, args.device)))
        return 0
    settings = [(int(k), True) for k in args.steps.split(",") if k] + \
               [(int(k), False) for k in args.first_order.split(",") if k and int(k) > 0]
    env = {**os.environ, "PYTHONPATH": REPO + os.pathsep + os.environ.get("PYTHONPATH", ""), "OMP_NUM_THREADS": "1"}
    rows = []
    for k, so in settings:
        cmd = [sys.executable, os.path.abspath(__file__), "--child", str(k), str(int(so)), "--iters", str(args.iters),
               "--device", args.device, "--set", *args.set]
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        if out.returncode != 0:
            sys.stderr.write(out.stderr)
            return out.returncode
        row = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(f"k={k:2d} {'second' if so else 'first '} order: {row['ms']:.1f} ms/iter, graph "
              f"{row['graph_mib']:.2f} MiB, peak {row['peak_mib']:.1f} MiB", flush=True)
    text = render(rows, args, argv)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        f.write(text)
    print(text)
    return 0


def render(rows: list[dict], args, argv=None) -> str:
    """The markdown table of `rows` (dicts from `child`)."""
    import torch

    base = next((r for r in rows if r["k"] == 0), rows[0])
    peak_name = "peak allocated" if args.device == "cuda" else "peak RSS"
    lines = [
        "# Cost of unrolled D steps",
        "",
        f"Generated by `python benchmarks/unroll_cost.py{' ' + ' '.join(argv or sys.argv[1:]) if (argv or sys.argv[1:]) else ''}` "
        f"on {time.strftime('%Y-%m-%d', time.gmtime())} ({args.device}, torch {torch.__version__}, one thread; "
        f"a shared 2-core machine, so expect timing noise). Config: configs/toy/ring.yaml "
        f"(per-rank batch {base['batch']}, n_disc {base['n_disc']}){', overrides ' + ' '.join(args.set) if args.set else ''}.",
        "One iteration = the D phase(s) + the G phase with a k-step look-ahead; median over "
        f"{args.iters} iterations after 3 warm-up ones.",
        "",
        f"| k | order | ms / iteration | x k=0 | G-phase autograd graph (MiB) | {peak_name} (MiB) | peak - k=0 (MiB) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(f"| {r['k']} | {'second' if r['second_order'] else 'first'} | {r['ms']:.1f} | "
                     f"{r['ms'] / base['ms']:.1f} | {r['graph_mib']:.2f} | {r['peak_mib']:.1f} | "
                     f"{r['peak_mib'] - base['peak_mib']:+.1f} |")
    lines += ["", "Graph: bytes of the distinct tensors autograd saves for backward in one G phase (the "
              "memory the look-ahead keeps alive until G's backward). Peak: "
              + ("torch.cuda.max_memory_allocated above the allocation before the timed iterations."
                 if args.device == "cuda" else
                 "the peak resident set of the row's own process (imports, torch and allocator caching "
                 "included, so differences of a few MiB are noise)."), ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
