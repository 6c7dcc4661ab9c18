"""Alice, Bob and Eve of adversarial neural cryptography (Abadi & Andersen 2016, Sec. 2.5): the
"mix & transform" architecture, used by the `crypto` game (ganscale.games.crypto).

    FC (in -> 2N), sigmoid            mixes every input bit into every unit
    [Eve only: FC (2N -> 2N), sigmoid] the paper gives Eve a larger network than Alice and Bob
    conv1d window 4, depth 1 -> 2, stride 1, sigmoid
    conv1d window 2, depth 2 -> 4, stride 2, sigmoid   (2N positions -> N)
    conv1d window 1, depth 4 -> 4, stride 1, sigmoid
    conv1d window 1, depth 4 -> 1, stride 1, tanh      N values in (-1, 1)

Alice reads (plaintext, key) and writes the ciphertext, Bob reads (ciphertext, key) and Eve the
ciphertext alone; plaintexts and keys are N bits written as -1/+1. The convolutions pad as
TensorFlow's "SAME" (window 4, stride 1: one position before, two after), so the lengths are those
of the paper. Weights start as the authors' reference code's (TensorFlow's defaults: Glorot-uniform
weights, zero biases); PyTorch's smaller default initialisation leaves the five stacked sigmoids
nearly constant, and Bob then stays at chance for thousands of steps (docs/crypto.md).
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# (window, input depth, output depth, stride) of the four convolutions, as in the paper
CONV_LAYERS = ((4, 1, 2, 1), (2, 2, 4, 2), (1, 4, 4, 1), (1, 4, 1, 1))


class MixTransform(nn.Module):
    """in_bits -> FC layers of width 2N -> four 1-D convolutions -> N values in (-1, 1)."""

    def __init__(self, in_bits: int, bits: int, fc_layers: int = 1):
        super().__init__()
        self.bits = bits
        widths = [in_bits] + [2 * bits] * fc_layers
        self.fc = nn.ModuleList(nn.Linear(i, o) for i, o in zip(widths[:-1], widths[1:]))
        self.convs = nn.ModuleList(nn.Conv1d(cin, cout, window, stride=stride)
                                   for window, cin, cout, stride in CONV_LAYERS)
        for layer in [*self.fc, *self.convs]:  # as the reference code (TensorFlow's defaults)
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, x: Tensor, key: Optional[Tensor] = None) -> Tensor:
        h = x if key is None else torch.cat([x, key], dim=1)
        for fc in self.fc:
            h = torch.sigmoid(fc(h))
        h = h.unsqueeze(1)  # [B, depth 1, 2N positions]
        for i, conv in enumerate(self.convs):
            window, stride = conv.kernel_size[0], conv.stride[0]
            h = conv(F.pad(h, same_padding(h.shape[-1], window, stride)))
            h = torch.tanh(h) if i == len(self.convs) - 1 else torch.sigmoid(h)
        return h.squeeze(1)


def same_padding(length: int, window: int, stride: int) -> tuple[int, int]:
    """(before, after) padding of TensorFlow's "SAME": ceil(length / stride) outputs, the odd
    position after."""
    out = -(-length // stride)
    total = max((out - 1) * stride + window - length, 0)
    return total // 2, total - total // 2


def build_crypto_nets(bits: int, eve_fc_layers: int = 2) -> dict[str, nn.Module]:
    """{"alice": (plaintext, key) -> ciphertext, "bob": (ciphertext, key) -> plaintext,
    "eve": ciphertext -> plaintext}, each N = `bits` wide."""
    return {"alice": MixTransform(2 * bits, bits), "bob": MixTransform(2 * bits, bits),
            "eve": MixTransform(bits, bits, fc_layers=eve_fc_layers)}
