"""The trained encoder pair as one safe file.

    pair = load_encoder("text_encoder.safetensors")      # frozen, eval mode
    cond = pair.text.condition(batch)                    # TextCondition for G and D
    enc = build_text_encoder(path="enc.safetensors")     # the frozen text half, for a GAN
    enc = build_text_encoder(emb_dim=512)                # precomputed caption_emb (CLIP, T5)
    ids, lengths = pair.encode_captions(["a red 3 in the top left"])

The file is safetensors: the weights of both encoders as tensors (`text.*`, `image.*`), and in
its string metadata the format tag, the TextEncoderConfig as JSON and the vocabulary tokens as
JSON. Loading reads tensors and JSON only; nothing is unpickled.
"""

from __future__ import annotations

import dataclasses
import json
import os

import torch
from torch import Tensor, nn

from ganscale.errors import UserError
from ganscale.text.config import TextEncoderConfig
from ganscale.text.encoders import CNNImageEncoder, RNNTextEncoder
from ganscale.text.vocab import Vocab

FORMAT = "ganscale-damsm-1"


class EncoderPair(nn.Module):
    def __init__(self, cfg: TextEncoderConfig, vocab: Vocab):
        super().__init__()
        self.cfg, self.vocab = cfg, vocab
        self.text = RNNTextEncoder(len(vocab), cfg.word_dim, cfg.dim, cfg.dropout)
        self.image = CNNImageEncoder(cfg.dim, cfg.image_ch, cfg.image_size)

    @property
    def dim(self) -> int:
        return self.cfg.dim

    def encode_captions(self, captions: list[str]) -> tuple[Tensor, Tensor]:
        """Token ids [N, max_len] and lengths [N]; UserError naming words outside the vocabulary."""
        unknown = list(dict.fromkeys(w for c in captions for w in self.vocab.unknown(c)))
        if unknown:
            raise UserError(f"words not in the text encoder's vocabulary: {', '.join(unknown)}; "
                            "use words of the training captions")
        enc = [self.vocab.encode(c, self.cfg.max_len) for c in captions]
        return torch.tensor([e[0] for e in enc]), torch.tensor([e[1] for e in enc])


def save_encoder(pair: EncoderPair, path: str) -> None:
    from safetensors.torch import save_file

    from ganscale.utils.files import atomic_path

    tensors = {f"{k}": v.detach().cpu().contiguous() for k, v in pair.state_dict().items()}
    meta = {"format": FORMAT, "config": json.dumps(dataclasses.asdict(pair.cfg)),
            "vocab": json.dumps(pair.vocab.tokens)}
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with atomic_path(path) as tmp:
        save_file(tensors, tmp, metadata=meta)


def load_encoder(path: str, device="cpu", frozen: bool = True) -> EncoderPair:
    """The pair saved by `ganscale text train`; frozen (eval mode, no gradients) unless asked."""
    from ganscale.utils.safe_load import load_tagged_safetensors

    tensors, meta = load_tagged_safetensors(path, FORMAT, "ganscale text encoder", "ganscale text train CONFIG",
                                            device)
    try:
        fields = {f.name for f in dataclasses.fields(TextEncoderConfig)}
        cfg = TextEncoderConfig(**{k: v for k, v in json.loads(meta["config"]).items() if k in fields})
        vocab = Vocab([str(t) for t in json.loads(meta["vocab"])])
        pair = EncoderPair(cfg, vocab)
        pair.load_state_dict(tensors)
    except (KeyError, ValueError, TypeError, RuntimeError) as e:
        raise UserError(f"{path}: config, vocabulary or weights do not fit together ({str(e)[:300]}); "
                        "train the encoder again") from None
    pair.to(device)
    if frozen:
        pair.eval().requires_grad_(False)
    return pair


def build_text_encoder(path: str = "", emb_dim: int = 0, device="cpu") -> nn.Module:
    """What a text-to-image GAN conditions on: the frozen text encoder saved at `path`
    (`condition(batch)` reads caption_ids / caption_lengths), or, without a path, PrecomputedText
    of width `emb_dim` (reads caption_emb). Both have `dim` and `condition(batch) -> TextCondition`."""
    from ganscale.text.encoders import PrecomputedText

    if path:
        return load_encoder(path, device=device).text
    if emb_dim < 1:
        raise UserError("give the text encoder file (trained by `ganscale text train`) or, for embeddings "
                        "stored in the shards, their width (the manifest's text_emb_dim)")
    return PrecomputedText(emb_dim)
