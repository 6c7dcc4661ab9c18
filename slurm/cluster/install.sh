#!/usr/bin/env bash
# Install what the one-machine Slurm test cluster needs (Debian/Ubuntu, as root):
#   slurmctld, slurmd, slurm-client (sbatch, srun, scontrol, ...) and munge.
# Idempotent: does nothing when the daemons are already installed.
#
#   bash slurm/cluster/install.sh
set -euo pipefail

if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null \
    && command -v sbatch >/dev/null; then
    echo "slurm test cluster: packages already installed ($(slurmctld -V))"
    exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
    SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq slurmctld slurmd slurm-client munge >/dev/null
echo "slurm test cluster: installed $(slurmctld -V)"
