#!/usr/bin/env bash
# Start a two-node Slurm cluster on this machine: munged, one slurmctld and two slurmd
# (`slurmd -N node1`, `slurmd -N node2`, ports 17001-17002), all state under STATE_DIR.
# Nothing in /etc is touched; clients find the cluster through SLURM_CONF:
#
#   bash slurm/cluster/start.sh /tmp/ganscale-slurm      # prints: export SLURM_CONF=...
#   export SLURM_CONF=/tmp/ganscale-slurm/slurm.conf
#   sinfo                                              # debug* up  2  idle node[1-2]
#   bash slurm/cluster/stop.sh /tmp/ganscale-slurm
#
# Env: GANSCALE_SLURM_CTLD_PORT (default 16817), GANSCALE_SLURM_NODE_CPUS (default 2).
# Run as root (the daemons run jobs as the submitting user). Exits non-zero with the daemon
# log tail if the nodes are not idle within 60 s.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
STATE="$(mkdir -p "${1:-/tmp/ganscale-slurm}" && cd "${1:-/tmp/ganscale-slurm}" && pwd)"
PORT="${GANSCALE_SLURM_CTLD_PORT:-16817}"
CPUS="${GANSCALE_SLURM_NODE_CPUS:-2}"

for bin in munged slurmctld slurmd sinfo; do
    command -v "$bin" >/dev/null || { echo "start.sh: $bin not found; run slurm/cluster/install.sh" >&2; exit 3; }
done
if [ -f "$STATE/run/slurmctld.pid" ] && kill -0 "$(cat "$STATE/run/slurmctld.pid")" 2>/dev/null; then
    echo "start.sh: a cluster already runs in $STATE; stop it first: bash $HERE/stop.sh $STATE" >&2
    exit 4
fi

mkdir -p "$STATE"/{munge,ctld,spool/node1,spool/node2,run,log}
chmod 700 "$STATE/munge"
if [ ! -f "$STATE/munge/munge.key" ]; then
    dd if=/dev/urandom of="$STATE/munge/munge.key" bs=1024 count=1 status=none
fi
chmod 400 "$STATE/munge/munge.key"

sed -e "s|@STATE@|$STATE|g" -e "s|@CTLD_HOST@|$(hostname -s)|g" \
    -e "s|@CTLD_PORT@|$PORT|g" -e "s|@CPUS@|$CPUS|g" "$HERE/slurm.conf.in" > "$STATE/slurm.conf"
export SLURM_CONF="$STATE/slurm.conf"

munged --force --socket="$STATE/munge/munge.socket" --key-file="$STATE/munge/munge.key" \
    --pid-file="$STATE/run/munged.pid" --log-file="$STATE/log/munged.log" \
    --seed-file="$STATE/munge/munged.seed"
slurmctld -f "$SLURM_CONF" -i
slurmd -f "$SLURM_CONF" -N node1
slurmd -f "$SLURM_CONF" -N node2

for _ in $(seq 1 60); do
    if [ "$(sinfo -h -N -t idle -o %N 2>/dev/null | sort -u | wc -l)" = 2 ]; then
        echo "slurm test cluster: 2 nodes idle (state in $STATE)"
        echo "export SLURM_CONF=$SLURM_CONF"
        exit 0
    fi
    sleep 1
done
echo "start.sh: nodes did not become idle within 60 s" >&2
sinfo -N >&2 || true
tail -n 20 "$STATE"/log/*.log >&2 || true
exit 5
