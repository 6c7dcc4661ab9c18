#!/usr/bin/env bash
# BigGAN at 128x128 on ImageNet through Slurm: 8 nodes x 8 GPUs, 32 images per GPU = global batch
# 2048, the paper's setting (after BigGAN-PyTorch's scripts/launch_BigGAN_bs256x8.sh).
#
#   launch/biggan128_slurm.sh --dry-run                       # print the sbatch script; submit nothing
#   PARTITION=gpu ACCOUNT=myproj launch/biggan128_slurm.sh data.shards.urls=/data/in128 \
#       eval.inception_path=/models/weights-inception-2015-12-05-6726825d.pth
#
# Environment: NODES (8), GPUS_PER_NODE (8), TIME (3-00:00:00; the job requeues itself at the
# limit and resumes), PARTITION (gpu), ACCOUNT (none), CPUS_PER_TASK (10), MEM (0 = whole node).
# Arguments: key=value overrides for configs/imagenet/biggan128.yaml. Data first:
#   ganscale data pack /data/imagenet/train /data/in128 --resize 128 --square --workers 32
set -euo pipefail
source "$(dirname "$0")/_lib.sh" "$@"

cmd=("$PYTHON" -m ganscale launch slurm configs/imagenet/biggan128.yaml "${ARGS[@]}"
     --nodes "${NODES:-8}" --gpus-per-node "${GPUS_PER_NODE:-8}" --time "${TIME:-3-00:00:00}"
     --partition "${PARTITION:-gpu}" --cpus-per-task "${CPUS_PER_TASK:-10}" --mem "${MEM:-0}")
[[ -n ${ACCOUNT:-} ]] && cmd+=(--account "$ACCOUNT")
if [[ $DRY_RUN == 1 ]]; then
  cd "$REPO" && exec "${cmd[@]}" --dry-run   # ganscale renders the sbatch script and prints it
fi
launch "${cmd[@]}"
