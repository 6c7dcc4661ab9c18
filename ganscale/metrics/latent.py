"""How useful an encoder's latent space is (BiGAN / ALI, ganscale.games.bigan), measured the way
the BiGAN authors' code does (jeffdonahue/bigan train_gan.py, `NNC_e` and `EGr`/`EGr_b`):

- 1-NN accuracy: each test image's E features (E's output before a uniform prior's squash, the
  authors' `l2distable`; the mean for ALI) take the label of the nearest train image's, by
  *euclidean* distance (the authors' `metric='euclidean'`);
- linear probe: multinomial logistic regression on those features (standardised), fitted on
  train, scored on test (the authors' `CLS_e-`, a linear classifier on E's output);
- reconstruction ratio: mean ||x - G(E(x))|| over mean ||x' - G(E(x))|| with x' the next image
  of the batch (a random pair), on the test images; 1 means G(E(x)) is no closer to x than to
  any other digit. Scale-free, so [-1, 1] pixels give the ratio of the authors' [0, 1].

    ganscale train configs/mnist/bigan.yaml        # LatentEvaluation writes <run>/latent_metrics.jsonl
    ganscale eval runs/<run>                       # the same figures for a checkpoint
    python benchmarks/bigan.py                     # the curve over checkpoints, docs/bigan.md
"""

from __future__ import annotations

import json
import os
from typing import Optional

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_only
from torch import Tensor, nn


def to_unit_range(images: Tensor) -> Tensor:
    """uint8 [0, 255] -> float [-1, 1], the range the shards data module gives the networks."""
    return images.float() / 127.5 - 1.0


@torch.no_grad()
def encode(E: nn.Module, images: Tensor, batch: int = 2000, features: bool = False) -> Tensor:
    """E(x) (the mean for a Gaussian encoder), or with `features` E.features(x) (before the
    squash), of uint8 images [N, C, H, W], float32 [N, z_dim], with E in eval mode (BatchNorm's
    running statistics)."""
    was_training = E.training
    E.eval()
    device = next(E.parameters()).device
    fn = E.features if features else E
    out = [fn(to_unit_range(images[i:i + batch]).to(device)).float().cpu() for i in range(0, len(images), batch)]
    E.train(was_training)
    return torch.cat(out)


@torch.no_grad()
def nearest_neighbor_accuracy(train_z: Tensor, train_y: Tensor, test_z: Tensor, test_y: Tensor,
                              chunk: int = 1000) -> float:
    """Fraction of test codes whose euclidean nearest train code has their label."""
    correct = 0
    for i in range(0, len(test_z), chunk):
        nearest = torch.cdist(test_z[i:i + chunk].double(), train_z.double()).argmin(dim=1)
        correct += int((train_y[nearest] == test_y[i:i + chunk]).sum())
    return correct / len(test_z)


def linear_probe_accuracy(train_z: Tensor, train_y: Tensor, test_z: Tensor, test_y: Tensor,
                          l2: float = 1e-4, steps: int = 200) -> float:
    """Test accuracy of a multinomial logistic regression fitted by L-BFGS on the standardised
    train codes (deterministic: full batch, zero initialisation)."""
    mean, std = train_z.mean(0), train_z.std(0).clamp_min(1e-6)
    xtr, xte = ((train_z - mean) / std).double(), ((test_z - mean) / std).double()
    k = int(max(train_y.max(), test_y.max())) + 1
    W = torch.zeros(xtr.shape[1], k, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(k, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([W, b], max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = nn.functional.cross_entropy(xtr @ W + b, train_y) + l2 * W.square().sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    with torch.no_grad():
        return float(((xte @ W + b).argmax(1) == test_y).double().mean())


def reconstruction_ratio(x: Tensor, recon: Tensor) -> dict[str, float]:
    """{"recon_err": mean ||x - recon||, "recon_err_random": mean ||x' - recon|| with x' the next
    row (cyclically), "recon_ratio": their ratio}, per row over all pixels."""
    x, recon = x.reshape(len(x), -1).double(), recon.reshape(len(recon), -1).double()
    err = (x - recon).norm(dim=1).mean()
    base = (x.roll(-1, dims=0) - recon).norm(dim=1).mean()
    return {"recon_err": float(err), "recon_err_random": float(base), "recon_ratio": float(err / base)}


@torch.no_grad()
def reconstruct(G: nn.Module, E: nn.Module, images: Tensor, batch: int = 2000) -> Tensor:
    """G(E(x)) in [-1, 1] for uint8 images, both nets in eval mode."""
    was_training = G.training
    G.eval()
    device = next(G.parameters()).device
    z = encode(E, images, batch)
    out = torch.cat([G(z[i:i + batch].to(device)).float().cpu() for i in range(0, len(z), batch)])
    G.train(was_training)
    return out


def evaluate_encoder(G: nn.Module, E: nn.Module, data_dir: str, num_train: int = 60000,
                     num_test: int = 10000) -> dict[str, float]:
    """The three figures for E (and G) on the MNIST-style IDX files in `data_dir`."""
    from ganscale.data.idx import load_digits

    xtr, ytr = (t[:num_train] for t in load_digits(data_dir, "train"))
    xte, yte = (t[:num_test] for t in load_digits(data_dir, "test"))
    ztr, zte = encode(E, xtr, features=True), encode(E, xte, features=True)
    out = {"nn1_acc": nearest_neighbor_accuracy(ztr, ytr, zte, yte),
           "probe_acc": linear_probe_accuracy(ztr, ytr, zte, yte)}
    out.update(reconstruction_ratio(to_unit_range(xte), reconstruct(G, E, xte)))
    return out


class LatentEvaluation(L.Callback):
    """The game's evaluation (BiGAN: evaluate_encoder) at trainer.eval_every and at the end (rank 0); appends
    {"iter", nn1_acc, probe_acc, recon_ratio, ...} to <run>/latent_metrics.jsonl and logs them."""

    def __init__(self, cfg, run_dir: str):
        self.cfg, self.run_dir = cfg, run_dir
        self.latest: Optional[dict] = None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        it, last, every = pl_module.iteration, self.cfg.trainer.max_iters, self.cfg.trainer.eval_every
        if it == last or (every > 0 and it % every == 0):
            self._evaluate(trainer, pl_module, it)

    @rank_zero_only
    def _evaluate(self, trainer, pl_module, it: int) -> None:
        metrics = pl_module.game.evaluate(pl_module, self.cfg)  # BiGANGame.evaluate: evaluate_encoder
        self.latest = {"iter": it, **metrics}
        for logger in trainer.loggers:
            logger.log_metrics({f"latent/{k}": v for k, v in metrics.items()}, step=it)
        with open(os.path.join(self.run_dir, "latent_metrics.jsonl"), "a") as f:
            f.write(json.dumps(self.latest) + "\n")
