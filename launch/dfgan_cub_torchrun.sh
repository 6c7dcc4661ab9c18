#!/usr/bin/env bash
# DF-GAN on CUB-200 birds (text to image, 256x256) on one node with 8 GPUs through torchrun
# (DDP, one process per GPU).
#
#   launch/dfgan_cub_torchrun.sh --dry-run                          # print the torchrun command
#   launch/dfgan_cub_torchrun.sh configs/text2img/cub_dfgan.yaml data.shards.urls=/data/cub256
#
# The first argument, when it ends in .yaml, is the config (default configs/text2img/cub_dfgan.yaml);
# the rest are key=value overrides. GPUS (8) sets the processes per node.
set -euo pipefail
source "$(dirname "$0")/_lib.sh" "$@"

config=configs/text2img/cub_dfgan.yaml
if [[ ${#ARGS[@]} -gt 0 && ${ARGS[0]} == *.yaml ]]; then config=${ARGS[0]}; ARGS=("${ARGS[@]:1}"); fi
if [[ ! -f $REPO/$config && ! -f $config ]]; then
  echo "launch: config $config not found; pass the DF-GAN config as the first argument" >&2
  exit 2
fi
gpus=${GPUS:-8}
overrides=(strategy.name=ddp trainer.accelerator=gpu trainer.num_nodes=1 "trainer.devices=$gpus" "${ARGS[@]}")
[[ $DRY_RUN == 1 ]] && check_config "$config" "${overrides[@]}"
launch "$PYTHON" -m torch.distributed.run --standalone --nnodes=1 "--nproc_per_node=$gpus" \
  -m ganscale train "$config" "${overrides[@]}"
