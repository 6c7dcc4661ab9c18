"""When a periodic action (log, evaluate, plot, checkpoint) is due, counted in ganscale iterations."""

from __future__ import annotations


def due(iteration: int, every: int, last: int) -> bool:
    """Every `every` iterations (0 = never) and always at the last one."""
    return iteration == last or (every > 0 and iteration % every == 0)
