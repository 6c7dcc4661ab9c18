# Sourced by every launch/*.sh:  source "$(dirname "$0")/_lib.sh" "$@"
# Sets REPO (the repository root) and ARGS (the script's arguments without --dry-run), and
# defines `launch CMD ...`: runs CMD from REPO, or with --dry-run (or DRY_RUN=1) prints it, quoted
# so that it can be pasted into a shell, and runs nothing.
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PYTHON=${PYTHON:-python}
DRY_RUN=${DRY_RUN:-0}
ARGS=()
for a in "$@"; do
  if [[ $a == --dry-run ]]; then DRY_RUN=1; else ARGS+=("$a"); fi
done

launch() {
  if [[ $DRY_RUN == 1 ]]; then
    echo "# dry run: would run from $REPO"
    printf '%q ' "$@" | sed 's/ $//'
    echo
  else
    cd "$REPO" && exec "$@"
  fi
}

# Load and validate the config a command would train (same code as `ganscale train`), so a dry
# run also catches a wrong key or a missing file in the config itself.
check_config() {
  (cd "$REPO" && "$PYTHON" -c 'import sys
from ganscale.cli.train import load_from_args
from ganscale.errors import UserError
try:
    cfg = load_from_args(sys.argv[1:])
except UserError as e:
    sys.exit(f"launch: {e}")
print(f"# config ok: {cfg.config_name} (model {cfg.model.arch}, data {cfg.data.kind}, {cfg.trainer.max_iters} iterations)")' "$@")
}
