"""Helpers every layer may use (they import nothing from ganscale above them).

    files.py       atomic writes: atomic_path, atomic_write_text/_bytes/_json, atomic_torch_save (durable=True: fsync)
    ranks.py       rank(trainer), world_size(trainer), launched_rank_zero(), local_rank()
    intervals.py   due(iteration, every, last): periodic actions counted in ganscale iterations
"""
