#!/usr/bin/env bash
# Stop the test cluster started by start.sh STATE_DIR (daemons only; the state stays for reading
# logs: STATE_DIR/log). Pass --clean to also delete STATE_DIR.
#
#   bash slurm/cluster/stop.sh /tmp/ganscale-slurm [--clean]
set -uo pipefail

STATE="${1:-/tmp/ganscale-slurm}"
stop_pid() {  # stop_pid PIDFILE: TERM, wait up to 10 s, then KILL
    local f="$1" pid
    [ -f "$f" ] || return 0
    pid="$(cat "$f")"
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$f"
}
stop_pid "$STATE/run/slurmd.node1.pid"
stop_pid "$STATE/run/slurmd.node2.pid"
stop_pid "$STATE/run/slurmctld.pid"
stop_pid "$STATE/run/munged.pid"
if [ "${2:-}" = "--clean" ]; then
    rm -rf "$STATE"
fi
echo "slurm test cluster: stopped ($STATE)"
