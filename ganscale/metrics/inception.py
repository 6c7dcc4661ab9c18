"""InceptionV3 as used for FID/KID/IS: the TensorFlow graph of 2015-12-05 (`pool_3`, 2048
features; `logits`, 1008 classes) ported to PyTorch, reading the weight file that torch-fidelity
and torchmetrics use (`weights-inception-2015-12-05-6726825d.pth`).

The port differs from torchvision's InceptionV3 where TensorFlow did: inputs are resized to
299 x 299 with TF 1.x bilinear sampling (no half-pixel offset), scaled as (x - 128) / 128, the
average pools of the A, C and first E blocks ignore padding, and the last E block max-pools.
The parameter names follow the weight file, so `load_state_dict` reads it as is.

With the same weights it computes torch-fidelity's `FeatureExtractorInceptionV3` bit for bit
(tests/test_image_metrics.py pins its values). It is kept instead of that package because
torch-fidelity needs torchvision, which has no PyPI build that loads beside a CPU-only torch, and
torchmetrics imports torch-fidelity whenever it is installed (docs/evaluation.md).
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganscale.errors import UserError

WEIGHTS_NAME = "weights-inception-2015-12-05-6726825d.pth"
WEIGHTS_URL = f"https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/{WEIGHTS_NAME}"
INPUT_SIZE = 299


def resize_bilinear_tf1(x: Tensor, size: int) -> Tensor:
    """Bilinear resize as TensorFlow 1.x `resize_bilinear(align_corners=False)`: output pixel i
    samples input position i * (in / out) (no half-pixel centre), interpolating between floor and
    the next pixel (clamped at the border). FID's reference statistics were computed this way."""

    def axis(n_in: int):
        # float32 arithmetic, as in TensorFlow's kernel, so the sample positions match bit for bit
        pos = torch.arange(size, dtype=torch.float32, device=x.device) * torch.tensor(n_in / size, dtype=torch.float32)
        lo = pos.long().clamp_max(n_in - 1)
        hi = (lo + 1).clamp_max(n_in - 1)
        return lo, hi, (pos - lo.float()).to(x.dtype)

    ylo, yhi, dy = axis(x.shape[2])
    xlo, xhi, dx = axis(x.shape[3])
    dx = dx.view(1, 1, 1, -1)
    top, bottom = x.index_select(2, ylo), x.index_select(2, yhi)
    top = top.index_select(3, xlo) + (top.index_select(3, xhi) - top.index_select(3, xlo)) * dx
    bottom = bottom.index_select(3, xlo) + (bottom.index_select(3, xhi) - bottom.index_select(3, xlo)) * dx
    return top + (bottom - top) * dy.view(1, 1, -1, 1)


class BasicConv2d(nn.Module):
    """conv (no bias) -> BatchNorm(eps=1e-3) -> ReLU."""

    def __init__(self, cin: int, cout: int, kernel_size, stride=1, padding=0):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel_size, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=1e-3)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.bn(self.conv(x)))


def _avg3(x: Tensor) -> Tensor:
    # TensorFlow's 3x3 average pool divides by the number of real (unpadded) pixels
    return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


class InceptionA(nn.Module):
    def __init__(self, cin: int, pool_features: int):
        super().__init__()
        self.branch1x1 = BasicConv2d(cin, 64, 1)
        self.branch5x5_1 = BasicConv2d(cin, 48, 1)
        self.branch5x5_2 = BasicConv2d(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, padding=1)
        self.branch_pool = BasicConv2d(cin, pool_features, 1)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([
            self.branch1x1(x),
            self.branch5x5_2(self.branch5x5_1(x)),
            self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
            self.branch_pool(_avg3(x)),
        ], 1)


class InceptionB(nn.Module):
    def __init__(self, cin: int):
        super().__init__()
        self.branch3x3 = BasicConv2d(cin, 384, 3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([
            self.branch3x3(x),
            self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
            F.max_pool2d(x, 3, stride=2),
        ], 1)


class InceptionC(nn.Module):
    def __init__(self, cin: int, c7: int):
        super().__init__()
        row, col = dict(kernel_size=(1, 7), padding=(0, 3)), dict(kernel_size=(7, 1), padding=(3, 0))
        self.branch1x1 = BasicConv2d(cin, 192, 1)
        self.branch7x7_1 = BasicConv2d(cin, c7, 1)
        self.branch7x7_2 = BasicConv2d(c7, c7, **row)
        self.branch7x7_3 = BasicConv2d(c7, 192, **col)
        self.branch7x7dbl_1 = BasicConv2d(cin, c7, 1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, **col)
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, **row)
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, **col)
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, **row)
        self.branch_pool = BasicConv2d(cin, 192, 1)

    def forward(self, x: Tensor) -> Tensor:
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        d = x
        for layer in (self.branch7x7dbl_1, self.branch7x7dbl_2, self.branch7x7dbl_3,
                      self.branch7x7dbl_4, self.branch7x7dbl_5):
            d = layer(d)
        return torch.cat([self.branch1x1(x), b7, d, self.branch_pool(_avg3(x))], 1)


class InceptionD(nn.Module):
    def __init__(self, cin: int):
        super().__init__()
        self.branch3x3_1 = BasicConv2d(cin, 192, 1)
        self.branch3x3_2 = BasicConv2d(192, 320, 3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(cin, 192, 1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        b7 = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        return torch.cat([self.branch3x3_2(self.branch3x3_1(x)), b7, F.max_pool2d(x, 3, stride=2)], 1)


class InceptionE(nn.Module):
    """`max_pool`: TensorFlow's last block (Mixed_7c) max-pools its pool branch; Mixed_7b averages."""

    def __init__(self, cin: int, max_pool: bool):
        super().__init__()
        self.max_pool = max_pool
        self.branch1x1 = BasicConv2d(cin, 320, 1)
        self.branch3x3_1 = BasicConv2d(cin, 384, 1)
        self.branch3x3_2a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(cin, 448, 1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(cin, 192, 1)

    def forward(self, x: Tensor) -> Tensor:
        a = self.branch3x3_1(x)
        d = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        pooled = F.max_pool2d(x, 3, stride=1, padding=1) if self.max_pool else _avg3(x)
        return torch.cat([
            self.branch1x1(x),
            self.branch3x3_2a(a), self.branch3x3_2b(a),
            self.branch3x3dbl_3a(d), self.branch3x3dbl_3b(d),
            self.branch_pool(pooled),
        ], 1)


class FIDInceptionV3(nn.Module):
    """uint8 images [N, 3, H, W] -> {"features": pool_3 [N, 2048], "logits": [N, 1008]}.
    `logits` are the unbiased ones (pool_3 @ W^T, no bias) that the Inception Score uses."""

    num_features = 2048
    num_logits = 1008

    def __init__(self):
        super().__init__()
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, 3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, 1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, 3)
        self.Mixed_5b = InceptionA(192, 32)
        self.Mixed_5c = InceptionA(256, 64)
        self.Mixed_5d = InceptionA(288, 64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, 128)
        self.Mixed_6c = InceptionC(768, 160)
        self.Mixed_6d = InceptionC(768, 160)
        self.Mixed_6e = InceptionC(768, 192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE(1280, max_pool=False)
        self.Mixed_7c = InceptionE(2048, max_pool=True)
        self.fc = nn.Linear(2048, 1008)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        if x.dtype != torch.uint8 or x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"expected uint8 images [N, 3, H, W], got {x.dtype} {tuple(x.shape)}")
        h = resize_bilinear_tf1(x.float(), INPUT_SIZE)
        h = (h - 128) / 128
        h = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(h)))
        h = F.max_pool2d(h, 3, stride=2)
        h = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(h))
        h = F.max_pool2d(h, 3, stride=2)
        for name in ("Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d",
                     "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c"):
            h = getattr(self, name)(h)
        feats = h.mean(dim=(2, 3))
        return {"features": feats, "logits": feats @ self.fc.weight.t()}


def missing_weights_message(path: str) -> str:
    where = f"eval.inception_path={path!r} does not exist" if path else "eval.inception_path is not set"
    return (
        f"{where}: FID/KID/IS need the InceptionV3 weights file {WEIGHTS_NAME} (about 91 MB, the "
        f"TF-ported network of torch-fidelity/torchmetrics). ganscale never downloads at run time. On a "
        f"machine with internet: `curl -L -o {WEIGHTS_NAME} {WEIGHTS_URL}`; copy it to the cluster "
        f"(e.g. `scp {WEIGHTS_NAME} login-node:/shared/models/`) and pass "
        f"eval.inception_path=/shared/models/{WEIGHTS_NAME}. For small datasets such as MNIST use "
        f"eval.extractor=classifier with a classifier from `ganscale classifier train`."
    )


def load_inception(path: str) -> FIDInceptionV3:
    if not path or not os.path.isfile(path):
        raise UserError(missing_weights_message(path))
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise UserError(f"eval.inception_path={path!r} could not be read ({e}); download {WEIGHTS_NAME} again "
                        f"from {WEIGHTS_URL}") from None
    net = FIDInceptionV3()
    try:
        net.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as e:
        first = str(e).splitlines()[0]
        raise UserError(f"eval.inception_path={path!r} is not the InceptionV3 FID weight file ({first}); "
                        f"use {WEIGHTS_NAME} from {WEIGHTS_URL}") from None
    return net.eval().requires_grad_(False)
