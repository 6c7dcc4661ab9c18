#!/usr/bin/env bash
# The toy mode-collapse benchmark (ring and grid, every remedy, 5 seeds): writes docs/toy_modes.md,
# docs/toy_modes.png and docs/toy_modes.json. CPU only; about an hour on 2 cores.
#
#   launch/toy_benchmark.sh --dry-run                               # print the command
#   launch/toy_benchmark.sh                                         # the published table
#   launch/toy_benchmark.sh --mixtures ring --methods gan,pack4 --seeds 2 --iters 500 --out-dir /tmp/toy
#
# Arguments go to benchmarks/toy_modes.py (see its --help). JOBS (2) sets its worker processes.
set -euo pipefail
source "$(dirname "$0")/_lib.sh" "$@"

if [[ $DRY_RUN == 1 ]]; then
  check_config configs/toy/ring.yaml
  check_config configs/toy/grid.yaml
fi
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
launch nice -n 10 "$PYTHON" benchmarks/toy_modes.py --jobs "${JOBS:-2}" "${ARGS[@]}"
