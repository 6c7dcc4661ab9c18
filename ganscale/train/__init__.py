"""The training loop: GANModule (the named phases), the unrolled look-ahead, callbacks and the
setup -> main -> fit run (ganscale.train.run)."""
