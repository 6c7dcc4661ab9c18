"""The preemption flag: a signal handler that only records that the signal came.

Installed as early as possible (`ganscale train` does it before importing the training stack) so
that a signal during start-up does not kill the process (SIGUSR1's default action terminates it);
the Preemption callback reads the flag at iteration boundaries. Only the main thread may install
handlers; DataLoader workers forked later inherit the handler and ignore the signal the same way.
"""

from __future__ import annotations

import signal
from typing import Optional

_requested = False
_signum: Optional[int] = None
_previous = None


def _handler(signum, frame) -> None:
    global _requested
    _requested = True  # nothing else: no I/O, no locks, no collectives inside a handler


def install(signum: int) -> None:
    """Route `signum` to the flag (idempotent)."""
    global _signum, _previous
    if _signum == signum:
        return
    uninstall()
    _previous = signal.signal(signum, _handler)
    _signum = signum


def uninstall() -> None:
    """Give the signal its previous handler back and clear the flag."""
    global _signum, _previous, _requested
    if _signum is not None:
        signal.signal(_signum, _previous if _previous is not None else signal.SIG_DFL)
    _signum, _previous, _requested = None, None, False


def requested() -> bool:
    return _requested


def clear() -> None:
    """Forget a signal that was acted on (the handler stays: a late signal must not kill us)."""
    global _requested
    _requested = False
