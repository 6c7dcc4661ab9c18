#!/usr/bin/env bash
# The GPU suite: one script, one GPU, at most 8 minutes (a global deadline skips what no longer fits),
# writes docs/gpu.md.
#
#   bash benchmarks/gpu_suite.sh                       # on a CUDA machine (an H200 was the target)
#   bash benchmarks/gpu_suite.sh --cpu-smoke --out /tmp/gpu.md   # CI: every step on CPU at tiny size
#
# Steps (each a fresh process: benchmarks/gpu_bench.py run ...; a failure is recorded, not fatal):
#   1. BigGAN-128 (configs/imagenet/biggan128.yaml) at full width (G_ch = D_ch = 96), per-GPU batch 32,
#      n_disc 2: images/s and peak memory for fp32 (TF32 on), bf16-mixed and 16-mixed (per-player loss
#      scaling), compile off;
#   2. the DDP path (PlayerDDPStrategy, NCCL) on one GPU, bf16-mixed;
#   3. a 200-iteration fp32 run that must stay finite (no skipped step, finite losses);
#   4. DF-GAN on CUB (configs/text2img/cub_dfgan.yaml: 256 px, nf 32, batch 32), fp32, on captioned
#      in-memory batches through a text encoder file of CUB's size (random weights);
#   5. compile on, for each precision, with whatever time is left (compilation of BigGAN takes minutes).
# --cpu-smoke runs the same steps on CPU with BigGAN at width 4 and DF-GAN at nf 4, 32 px, batch 2, 2 timed iterations
# (16-mixed is GPU-only and compile is slow on CPU: both are skipped and listed as skipped), gloo for DDP.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(dirname "$HERE")"
OUT="$REPO/docs/gpu.md"
SMOKE=0
BUDGET_S=""    # default 470 s on a GPU: 8 minutes minus the report and the process start-up
while [[ $# -gt 0 ]]; do
  case "$1" in
    --cpu-smoke) SMOKE=1; shift ;;
    --out) OUT="$2"; shift 2 ;;
    --budget) BUDGET_S="$2"; shift 2 ;;
    *) echo "gpu_suite.sh: unknown argument $1 (use --cpu-smoke, --out FILE, --budget SECONDS)" >&2; exit 2 ;;
  esac
done

[[ -z "$BUDGET_S" ]] && { [[ $SMOKE == 1 ]] && BUDGET_S=1800 || BUDGET_S=470; }  # a shared CI CPU is slow
PY="${PYTHON:-python}"
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
export WANDB_MODE=disabled
RESULTS="$(mktemp -d)"
trap 'rm -rf "$RESULTS"' EXIT
START=$(date +%s)
SKIPPED=()

if [[ $SMOKE == 1 ]]; then
  DEVICE=(--device cpu --resolution 32 --num-classes 10)
  # cross-replica BatchNorm (SyncBatchNorm) runs on GPUs only: plain BatchNorm for the CPU DDP step
  SIZE=(model.biggan.G_ch=4 model.biggan.D_ch=4 model.biggan.attn_res=16 model.biggan.shared_dim=8 data.batch_size=2
        model.biggan.cross_replica_bn=false)
  ITERS=(--iters 2 --warmup 1)
  LONG=(--iters 2 --warmup 0)
  PRECISIONS=(32 bf16-mixed)
  DFGAN_SIZE=(--resolution 32 model.dfgan.nf=4 data.batch_size=2)
  BACKEND=gloo
  HEADER="CPU smoke run of the suite (tiny widths): proves the script, not the speed"
else
  DEVICE=(--device cuda)
  SIZE=(model.biggan.G_ch=96 model.biggan.D_ch=96 data.batch_size=32)
  ITERS=(--iters 20 --warmup 5)
  LONG=(--iters 200 --warmup 0)
  PRECISIONS=(32 bf16-mixed 16-mixed)
  DFGAN_SIZE=(--resolution 256)
  BACKEND=nccl
  HEADER="$("$PY" -c 'import torch; print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}, CUDA {torch.version.cuda}")' 2>/dev/null || echo "no CUDA device found")"
fi

left() { echo $(( BUDGET_S - ($(date +%s) - START) )); }

# step NAME NEED_S -- ARGS...: run one setting if NEED_S seconds are left, bounded by what is left
step() {
  local name="$1" need="$2"; shift 3
  local remaining; remaining=$(left)
  if (( remaining < need )); then
    SKIPPED+=("$name: skipped, ${remaining}s left of the ${BUDGET_S}s budget")
    return 0
  fi
  echo "== $name (${remaining}s left)" >&2
  timeout --signal=INT --kill-after=15 "$remaining" \
    "$PY" "$HERE/gpu_bench.py" run --name "$name" --json "$RESULTS/$(printf '%02d' $((${#STEPS[@]})))-$name.json" "$@" \
    || echo "gpu_suite.sh: $name failed or ran out of time (recorded)" >&2
  STEPS+=("$name")
}
STEPS=()

for p in "${PRECISIONS[@]}"; do
  step "biggan128-$p" 30 -- "${DEVICE[@]}" "${ITERS[@]}" "${SIZE[@]}" trainer.precision="$p" trainer.compile=false
done
[[ $SMOKE == 1 ]] && SKIPPED+=("biggan128-16-mixed: skipped on CPU (float16 autocast with loss scaling needs a GPU)")

step "biggan128-ddp-$BACKEND" 40 -- "${DEVICE[@]}" "${ITERS[@]}" "${SIZE[@]}" trainer.precision=bf16-mixed \
  strategy.name=ddp strategy.process_group_backend="$BACKEND"

step "biggan128-200it-finite" 60 -- "${DEVICE[@]}" "${LONG[@]}" "${SIZE[@]}" trainer.precision=32

# DF-GAN (configs/text2img/cub_dfgan.yaml, 256 px, batch 32) trains on captions through a frozen
# text encoder (game.condition=text): --captions gives the in-memory batches 10 captions per image
# (random token ids) and writes an encoder file of CUB's size with random weights
step "dfgan-cub-32" 40 -- "${DEVICE[@]}" "${ITERS[@]}" "${DFGAN_SIZE[@]}" --config "$REPO/configs/text2img/cub_dfgan.yaml" \
  --captions trainer.precision=32

if [[ $SMOKE == 1 ]]; then
  SKIPPED+=("compile on: skipped on CPU (tests/test_accel.py checks compile against eager)")
else
  for p in "${PRECISIONS[@]}"; do
    step "biggan128-$p-compile" 90 -- "${DEVICE[@]}" "${ITERS[@]}" "${SIZE[@]}" trainer.precision="$p" trainer.compile=true
  done
fi

SKIP_ARGS=()
for s in "${SKIPPED[@]}"; do SKIP_ARGS+=(--skipped "$s"); done
shopt -s nullglob
JSONS=("$RESULTS"/*.json)
if [[ ${#JSONS[@]} == 0 ]]; then
  echo "gpu_suite.sh: no step produced a result" >&2
  exit 1
fi
"$PY" "$HERE/gpu_bench.py" report "${JSONS[@]}" --out "$OUT" "${SKIP_ARGS[@]}" \
  --title "# GPU suite (benchmarks/gpu_suite.sh)" \
  --header "$HEADER. Ran $(date -u '+%Y-%m-%d %H:%M UTC') in $(( $(date +%s) - START )) s (budget ${BUDGET_S} s). images/s: real images consumed (per-GPU batch x n_disc per iteration), timed after the warm-up iterations; peak memory: torch.cuda.max_memory_allocated. fp32 runs with TF32 matmuls (trainer.tf32=true, the default)."
echo "gpu_suite.sh: wrote $OUT" >&2
