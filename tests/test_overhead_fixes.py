"""What benchmarks/overhead.py found and ganscale changed: the progress bar redraws on a clock (and
at most every 10 iterations), not every 10 iterations (a redraw costs milliseconds, a fast GPU
iteration a few)."""

from ganscale.train import callbacks
from ganscale.train.callbacks import IterationProgressBar


def test_progress_bar_redraws_at_most_every_refresh_s_and_at_the_end(monkeypatch):
    now = [100.0]
    monkeypatch.setattr(callbacks.time, "monotonic", lambda: now[0])
    bar = IterationProgressBar(refresh_s=0.5)
    drawn = []
    for it in range(1, 101):  # 100 iterations at 10 ms each: one second
        now[0] += 0.01
        if bar._should_update(it, 100):
            drawn.append(it)
    assert drawn[0] == 1 and drawn[-1] == 100  # the first iteration and the last always show
    assert len(drawn) <= 4  # twice a second, not 10 times (every 10 iterations)
    slow, drawn = IterationProgressBar(refresh_s=0.5), []
    for it in range(1, 31):  # a slow loop, 1 s per iteration: every 10 iterations, as before
        now[0] += 1.0
        if slow._should_update(it, 100):
            drawn.append(it)
    assert drawn == [1, 11, 21]
    bar.disable()
    assert not bar._should_update(100, 100)
