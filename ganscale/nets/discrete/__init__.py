"""Generators with discrete outputs (binary pixels, tokens) and the gradient estimators that train
them through a discriminator: Gumbel-softmax (relaxed and straight-through), REINFORCE with a
moving-average baseline, and boundary-seeking GAN importance weights (estimators.py); the
Bernoulli image generator (bernoulli.py); the LSTM generator and CNN discriminator of token
sequences (sequence.py, game.name=seqgan in ganscale/games/sequence.py). The config (config.py) is torch-free: this package
imports nothing on its own, so loading a config stays torch-free. The game that uses them is
ganscale/games/discrete.py (`game.name=discrete`, docs/discrete.md)."""
