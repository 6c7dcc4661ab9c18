"""The captioned-digits judge: a small CNN that reads each 32x32 quadrant of a 64x64 canvas as
empty or one of 10 digits x 6 colours, trained on the real synthetic images (apart from the GAN
and its text encoder) from the structured truth in each sample's json ("objects").

    judge, acc = train_judge("data/digits-train", "data/digits-test", steps=600)
    save_judge(judge, "judge.safetensors", real_exact=acc); judge = load_judge("judge.safetensors")
    exact = caption_match(judge, images, parse_caption(captions))   # per image: all 4 quadrants right

    ganscale text judge data/digits-train data/digits-test --out judge.safetensors   # the same from the CLI

Exact caption match: every mentioned digit, colour and position right and the other quadrants
empty. The text evaluation (metrics/text_eval.py, `eval.text.judge`) and
`benchmarks/text2img_digits.py` score generated images with it. The judge file is safetensors
(weights, and the format tag, width and real-image score as metadata): loading executes nothing.
"""

from __future__ import annotations

import io
import json
import os
import re
import time
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganscale.data.synth.captioned_digits import COLOURS, POSITIONS
from ganscale.errors import UserError

COLOUR_NAMES = list(COLOURS)
NUM_CLASSES = 1 + 10 * len(COLOUR_NAMES)
"""Per quadrant: 0 = empty, 1 + digit * 6 + colour."""
FORMAT = "ganscale-digits-judge-1"
_PHRASE = re.compile(r"a (\w+) (\d) in the (top left|top right|bottom left|bottom right)")


def cell(digit: int, colour: str) -> int:
    return 1 + digit * len(COLOUR_NAMES) + COLOUR_NAMES.index(colour)


def decode_cell(c: int) -> tuple[int, str]:
    """(digit, colour) of a non-empty quadrant class: the inverse of `cell`."""
    digit, colour = divmod(c - 1, len(COLOUR_NAMES))
    return digit, COLOUR_NAMES[colour]


def canonical_of(items) -> str:
    """The canonical caption of (quadrant index, colour, digit) items, quadrants in reading order."""
    return " and ".join(f"a {c} {d} in the {POSITIONS[q]}" for q, c, d in sorted(items))


def held_out_captions(pairs: list[tuple[str, int]], n: int, seed: int) -> list[str]:
    """n canonical captions of 1-2 digits, each holding one of the held-out (colour, digit) pairs."""
    import random

    rng = random.Random(seed)
    out = []
    for _ in range(n):
        quads = rng.sample(range(4), rng.randint(1, 2))
        colour, digit = rng.choice(pairs)
        items = [(quads[0], colour, digit)] + [(q, rng.choice(COLOUR_NAMES), rng.randrange(10)) for q in quads[1:]]
        out.append(canonical_of(items))
    return out


def targets_of(objects: list[dict]) -> list[int]:
    """The four quadrant classes of a sample's json truth."""
    out = [0, 0, 0, 0]
    for o in objects:
        out[POSITIONS.index(o["quadrant"])] = cell(int(o["digit"]), o["colour"])
    return out


def parse_caption(caption: str) -> list[int]:
    """The quadrant classes a canonical caption ("a red 3 in the top left and ...") asks for."""
    out = [0, 0, 0, 0]
    found = _PHRASE.findall(caption)
    if not found or " and ".join(f"a {c} {d} in the {p}" for c, d, p in found) != caption.strip():
        raise ValueError(f"not a canonical captioned-digits caption: {caption!r}")
    for colour, digit, pos in found:
        out[POSITIONS.index(pos)] = cell(int(digit), colour)
    return out


def held_out_pairs(folder: str) -> list[str]:
    """The (colour, digit) pairs a captioned-digits folder's images lack ("red 7"), from its manifest;
    [] when none."""
    from ganscale.data.shards.manifest import MANIFEST_NAME, Manifest
    from ganscale.data.synth.captioned_digits import recorded_holdout

    return recorded_holdout(Manifest.load(os.path.join(folder, MANIFEST_NAME)), removed=True)


def load_truth(folder: str) -> tuple[Tensor, Tensor, list[str]]:
    """uint8 images [N, 3, 64, 64], quadrant targets [N, 4] and canonical captions of a packed
    captioned-digits folder."""
    from PIL import Image

    from ganscale.data.shards.manifest import MANIFEST_NAME, Manifest
    from ganscale.data.shards.stream import DataStats, read_shard

    manifest = Manifest.load(os.path.join(folder, MANIFEST_NAME))
    images, targets, caps = [], [], []
    for entry in manifest.shards:
        for s in read_shard(os.path.join(folder, entry.name), DataStats(0, 0)):
            meta = json.loads(s["json"]) if "json" in s else {}
            if "objects" not in meta or "png" not in s:
                raise UserError(f"{folder}: sample {s.get('__key__')} has no png or no json objects; the judge "
                                "trains on `ganscale data synth captioned-digits` shards")
            images.append(np.asarray(Image.open(io.BytesIO(s["png"])).convert("RGB")).transpose(2, 0, 1))
            targets.append(targets_of(meta["objects"]))
            caps.append(meta["captions"][0] if meta.get("captions") else "")
    return torch.from_numpy(np.stack(images)), torch.tensor(targets), caps


class DigitJudge(nn.Module):
    """One CNN shared by the four quadrants: [N, 3, 64, 64] in [-1, 1] -> logits [N, 4, 61]."""

    def __init__(self, ch: int = 32):
        super().__init__()
        self.ch = ch

        def block(a, b):
            return nn.Sequential(nn.Conv2d(a, b, 3, 1, 1), nn.BatchNorm2d(b), nn.ReLU(True), nn.MaxPool2d(2))

        self.net = nn.Sequential(block(3, ch), block(ch, 2 * ch), block(2 * ch, 4 * ch), nn.Flatten(),
                                 nn.Linear(4 * ch * 16, 128), nn.ReLU(True), nn.Linear(128, NUM_CLASSES))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(quadrants(x).flatten(0, 1)).view(x.shape[0], 4, NUM_CLASSES)


def quadrants(x: Tensor) -> Tensor:
    """[N, C, 64, 64] -> [N, 4, C, 32, 32] in POSITIONS order (top left, top right, bottom left, bottom right)."""
    n, c = x.shape[:2]
    q = x.unfold(2, 32, 32).unfold(3, 32, 32)  # [N, C, 2, 2, 32, 32]: row halves, then column halves
    return q.permute(0, 2, 3, 1, 4, 5).reshape(n, 4, c, 32, 32)


def to_float(images: Tensor) -> Tensor:
    return images.float().div(127.5).sub(1.0)


@torch.no_grad()
def predict(judge: DigitJudge, images: Tensor, batch: int = 500) -> Tensor:
    """Quadrant classes [N, 4] of images (uint8 [N, 3, 64, 64] or float in [-1, 1])."""
    judge.eval()
    x = to_float(images) if images.dtype == torch.uint8 else images
    return torch.cat([judge(x[s:s + batch]).argmax(-1) for s in range(0, len(x), batch)])


def save_judge(judge: DigitJudge, path: str, real_exact: float = float("nan"), steps: int = 0) -> None:
    """One safetensors file: the weights, and the width and real-image exact match as metadata."""
    from safetensors.torch import save_file

    from ganscale.utils.files import atomic_path

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    meta = {"format": FORMAT, "ch": str(judge.ch), "real_exact": repr(float(real_exact)), "steps": str(steps)}
    with atomic_path(path) as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in judge.state_dict().items()}, tmp, metadata=meta)


def load_judge(path: str, device="cpu") -> DigitJudge:
    """The judge of `save_judge` in eval mode; a UserError naming the fix for anything else."""
    from ganscale.utils.safe_load import load_tagged_safetensors

    tensors, meta = load_tagged_safetensors(path, FORMAT, "captioned-digits judge",
                                            f"ganscale text judge TRAIN TEST --out {path}", device)
    try:
        judge = DigitJudge(ch=int(meta["ch"]))
        judge.load_state_dict(tensors)
    except (KeyError, ValueError, RuntimeError) as e:
        raise UserError(f"{path}: width and weights do not fit together ({str(e)[:300]}); train the judge again") \
            from None
    return judge.to(device).eval().requires_grad_(False)


def caption_match(judge: DigitJudge, images: Tensor, targets: Tensor) -> Tensor:
    """bool [N]: the judge reads exactly what the caption says in all four quadrants."""
    return (predict(judge, images) == targets).all(1)


def train_judge(train: str, test: str, steps: int = 600, batch: int = 64, lr: float = 2e-3, seed: int = 0,
                log: Callable[[str], None] = print) -> tuple[DigitJudge, float]:
    """The judge trained on the `train` folder's real images; its exact-match rate on `test`'s.

    `train` must hold every (colour, digit) pair: a class the judge never saw is one it never
    predicts, so a judge trained on a set with held-out pairs would score every held-out caption 0."""
    held = held_out_pairs(train)
    if held:
        raise UserError(f"{train} was synthesized with --holdout {','.join(held)}: a judge trained on it never sees "
                        "those pairs and could never read them (every held-out caption would score 0); train the "
                        "judge on shards synthesized without --holdout, e.g. `ganscale data synth captioned-digits "
                        "data/judge-train --split train`")
    torch.manual_seed(seed)
    x, y, _ = load_truth(train)
    judge = DigitJudge()
    opt = torch.optim.Adam(judge.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed)
    start = time.time()
    for step in range(1, steps + 1):
        judge.train()
        idx = torch.randint(len(x), (batch,), generator=g)
        xb = to_float(x[idx])
        # the GAN's digits are not pixel-exact: jitter by up to 2 px so the judge reads shifted digits too
        dy, dx = (int(v) for v in torch.randint(-2, 3, (2,), generator=g))
        xb = torch.roll(xb, (dy, dx), dims=(2, 3))
        loss = F.cross_entropy(judge(xb).flatten(0, 1), y[idx].flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % 200 == 0 or step == steps:
            log(f"judge: step {step}/{steps} loss {float(loss.detach()):.3f} ({time.time() - start:.0f} s)")
    xt, yt, _ = load_truth(test)
    acc = float(caption_match(judge, xt, yt).float().mean())
    log(f"judge: exact match on real test images {acc:.3f}")
    return judge, acc
