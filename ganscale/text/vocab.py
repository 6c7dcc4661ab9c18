"""Tokenizer and word vocabulary, built once at pack time and stored beside the shard manifest.

    vocab = Vocab.build(captions, min_count=1)      # ganscale data pack does this
    vocab.save("shards/vocab.json"); vocab = Vocab.load("shards/vocab.json")
    ids, length = vocab.encode("a red 3 in the top left", max_len=18)

Tokens are AttnGAN's: lower-cased runs of word characters (`\\w+`), so "top-left," gives
["top", "left"]. Index 0 is padding, 1 stands for words outside the vocabulary; `unknown(text)`
lists those words so a caller can refuse them with a clear error (ganscale sample --text).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Iterable

from ganscale.errors import UserError

PAD, UNK = "<pad>", "<unk>"
_TOKEN = re.compile(r"\w+")
FORMAT = "ganscale-vocab-1"


def tokenize(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


class Vocab:
    def __init__(self, tokens: list[str]):
        if tokens[:2] != [PAD, UNK]:
            raise ValueError(f"a vocabulary starts with {PAD!r}, {UNK!r}")
        self.tokens = list(tokens)
        self.index = {t: i for i, t in enumerate(self.tokens)}
        if len(self.index) != len(self.tokens):
            raise ValueError("a vocabulary lists each token once")

    def __len__(self) -> int:
        return len(self.tokens)

    @classmethod
    def build(cls, captions: Iterable[str], min_count: int = 1) -> "Vocab":
        """Every token seen at least `min_count` times, most frequent first (ties alphabetical)."""
        counts = Counter(t for c in captions for t in tokenize(c))
        kept = sorted((t for t, n in counts.items() if n >= min_count), key=lambda t: (-counts[t], t))
        return cls([PAD, UNK, *kept])

    def unknown(self, text: str) -> list[str]:
        """The words of `text` that are not in the vocabulary, in order of appearance, once each."""
        return list(dict.fromkeys(t for t in tokenize(text) if t not in self.index))

    def encode(self, text: str, max_len: int) -> tuple[list[int], int]:
        """Token ids padded (or cut) to `max_len`, and the number of real tokens (at least 1)."""
        ids = [self.index.get(t, 1) for t in tokenize(text)][:max_len] or [1]
        return ids + [0] * (max_len - len(ids)), len(ids)

    def decode(self, ids: Iterable[int]) -> str:
        return " ".join(self.tokens[i] for i in ids if i != 0)

    def save(self, path: str) -> None:
        from ganscale.utils.files import atomic_write_text

        atomic_write_text(path, json.dumps({"format": FORMAT, "tokens": self.tokens}))

    @classmethod
    def load(cls, path: str) -> "Vocab":
        try:
            with open(path) as f:
                data = json.load(f)
        except FileNotFoundError:
            raise UserError(f"vocabulary {path} does not exist; pack the captions with `ganscale data pack` "
                            "(it writes vocab.json beside manifest.json)") from None
        except (OSError, ValueError) as e:
            raise UserError(f"vocabulary {path} is not readable JSON ({e}); pack the data again") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("tokens"), list):
            raise UserError(f"{path} is not a ganscale vocabulary (expected format {FORMAT!r}); pack the data again")
        try:
            return cls([str(t) for t in data["tokens"]])
        except ValueError as e:
            raise UserError(f"{path}: {e}; pack the data again") from None
