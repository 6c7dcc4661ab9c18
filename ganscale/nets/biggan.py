"""BigGAN family (Brock et al. 2019, "Large Scale GAN Training for High Fidelity Natural Image
Synthesis"), from one definition for 32/64/128/256 px (channel tables in nets/resnet.py):

- G: a shared class embedding; z split into chunks, the first feeds the input linear layer, each
  G block's conditional BatchNorm gets [shared_embedding(y), its z chunk] (hierarchical latent);
  self-attention at `attn_res`; orthogonal initialisation; orthogonal regularization
  beta * sum_W ||W W^T * (1 - I)||_F^2 exposed as `G.regularization()` (the module adds it to G's
  loss in the G step); optional cross-replica (synchronised) BatchNorm.
- D: ResNet blocks, self-attention at `attn_res`, projection head with a class embedding.
- Spectral norm (torch.nn.utils.parametrizations.spectral_norm) on every conv/linear of G and D
  and on D's class embedding; G's shared embedding stays unnormalised as in the paper.
- Hinge loss, G_ema and n_disc=2 come from the run config (configs/imagenet/biggan*.yaml);
  truncation at sampling: `G.sample_z(n, truncation=t)` or `ganscale sample --truncation t`.

    ganscale train configs/imagenet/biggan128.yaml
"""

from __future__ import annotations

from typing import Optional

from torch import Tensor, nn

from ganscale.nets.base import Discriminator, Generator
from ganscale.nets.layers import class_count, init_weights, orthogonal_penalty, raw_weight
from ganscale.nets.resnet import ResNetDiscriminator, ResNetGenerator, resnet_layout
from ganscale.regularizers import apply_spectral_norm


class BigGANGenerator(ResNetGenerator):
    def __init__(self, *args, ortho_weight: float = 0.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.ortho_weight = ortho_weight

    def ortho_weights(self) -> list[Tensor]:
        """Weights under orthogonal regularization: every conv/linear (the raw, un-normalised
        parameter under spectral norm); not the shared embedding, biases or BatchNorm."""
        return [raw_weight(m) for m in self.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]

    def regularization(self) -> Optional[Tensor]:
        """beta * orthogonal penalty, added to G's loss in the G step; None when beta = 0."""
        if self.ortho_weight == 0:
            return None
        return self.ortho_weight * orthogonal_penalty(self.ortho_weights())


def build_biggan(cfg, info) -> tuple[Generator, Discriminator]:
    c = cfg.biggan
    layout = resnet_layout("biggan", c, info.shape)
    num_classes = class_count(cfg, info)
    G = BigGANGenerator(cfg.z_dim, info.shape, num_classes, layout, c.attn_res, shared_dim=c.shared_dim,
                        hierarchical_z=c.hierarchical_z, eps=c.bn_eps, ortho_weight=c.ortho_weight)
    D = ResNetDiscriminator(info.shape, num_classes, layout, c.attn_res, cfg.remedies)
    init_weights(G, "ortho")
    init_weights(D, "ortho")
    if c.spectral_norm:  # after init: the parametrization keeps the initialised weight as `original`
        apply_spectral_norm(G, eps=c.sn_eps, exclude=(G.shared,) if G.shared is not None else ())
        apply_spectral_norm(D, eps=c.sn_eps)
    if c.cross_replica_bn:
        G = nn.SyncBatchNorm.convert_sync_batchnorm(G)
    return G, D
