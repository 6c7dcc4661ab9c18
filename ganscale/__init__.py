"""ganscale: distributed GAN training (Lightning, DDP, DeepSpeed, WebDataset, Slurm, W&B).

Launch commands (see README.md for the full tour)::

    ganscale train                                   # default toy run on CPU, a few minutes
    ganscale train configs/toy/grid.yaml optim.D.lr=1e-4 trainer.max_iters=2000
    ganscale sample runs/<run> --num 2500 --out samples.npy --seed 0
    python -m ganscale train ...                     # same CLI
"""

__version__ = "0.1.0"
