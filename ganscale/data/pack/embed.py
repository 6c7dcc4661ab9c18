"""`ganscale data embed`: precompute one text embedding per caption with a LOCAL model.

    ganscale data embed data/cub-train --model models/clip-vit-b32 --kind hf --out data/cub-train-clip
    ganscale data embed data/cc3m/ --model models/t5-base --kind hf --out data/cc3m-t5 --dtype float16
    ganscale data embed data/cub-train --model ViT-B-32:models/open_clip.bin --kind open_clip --out data/cub-oc

Reads every sample of the shards (ganscale shards, or img2dataset shards as they are) and writes
the same samples, plus `{key}.emb.npy` [captions, E], into shards of the same names in OUT, with
a manifest (text_emb_dim = E) and the vocabulary. Training then yields "caption_emb" [N, C, E]
(and "text_emb" for the caption drawn in the workers).

Nothing is downloaded: `--kind hf` loads a transformers folder (save_pretrained) with
local_files_only and HF_HUB_OFFLINE=1; `--kind open_clip` takes NAME:CHECKPOINT (an open_clip
architecture name and a local weights file) or a folder holding open_clip_config.json and the
weights. Pooling: CLIP models give their projected (or pooled) sentence embedding, every other
model the mean of its last hidden states over real tokens (T5 and other encoder-decoders: the encoder's).
"""

from __future__ import annotations

import io
import os
import shutil
from dataclasses import replace
from typing import Callable

import numpy as np
import torch

from ganscale.errors import UserError

KINDS = ("hf", "open_clip")


def _masked_mean(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1).clamp_min(1.0)


def hf_encoder(path: str, device: str) -> tuple[Callable[[list[str]], torch.Tensor], str]:
    """(captions -> [n, E] float tensor, pooling description) from a local transformers folder."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # belt and braces: local_files_only below
    try:
        import transformers
    except ImportError:
        raise UserError("--kind hf needs transformers: pip install 'ganscale[text]'") from None
    if not os.path.isdir(path):
        raise UserError(f"--model {path} is not a folder; pass a local transformers model folder "
                        "(made with save_pretrained); nothing is downloaded")
    try:
        config = transformers.AutoConfig.from_pretrained(path, local_files_only=True)
        tok = transformers.AutoTokenizer.from_pretrained(path, local_files_only=True)
        if config.model_type == "clip":
            model, pooling = transformers.CLIPTextModelWithProjection.from_pretrained(path, local_files_only=True), \
                "clip text_embeds (projected)"
        elif config.model_type == "clip_text_model":
            model, pooling = transformers.CLIPTextModel.from_pretrained(path, local_files_only=True), \
                "clip pooler_output"
        else:
            model = transformers.AutoModel.from_pretrained(path, local_files_only=True)
            if getattr(config, "is_encoder_decoder", False):
                model = model.get_encoder()
            pooling = "mean of last_hidden_state over tokens"
    except (OSError, ValueError, KeyError) as e:
        raise UserError(f"--model {path}: cannot load a transformers text model and tokenizer from this folder "
                        f"({type(e).__name__}: {str(e)[:300]})") from None
    model = model.to(device).eval()
    limit = tok.model_max_length if 0 < tok.model_max_length < 100_000 else 512

    @torch.no_grad()
    def encode(caps: list[str]) -> torch.Tensor:
        t = tok(caps, padding=True, truncation=True, max_length=limit, return_tensors="pt").to(device)
        out = model(**{k: v for k, v in t.items() if k in ("input_ids", "attention_mask", "token_type_ids")})
        if config.model_type == "clip":
            return out.text_embeds
        if config.model_type == "clip_text_model":
            return out.pooler_output
        return _masked_mean(out.last_hidden_state, t["attention_mask"])

    return encode, pooling


def open_clip_encoder(spec: str, device: str) -> tuple[Callable[[list[str]], torch.Tensor], str]:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        import open_clip
    except ImportError:
        raise UserError("--kind open_clip needs open_clip: pip install open_clip_torch") from None
    if os.path.isdir(spec):
        if not os.path.isfile(os.path.join(spec, "open_clip_config.json")):
            raise UserError(f"--model {spec}: an open_clip folder holds open_clip_config.json and the weights; "
                            "or pass NAME:CHECKPOINT, e.g. ViT-B-32:/models/open_clip_pytorch_model.bin")
        name, pretrained = "local-dir:" + os.path.abspath(spec), None
    else:
        name, sep, pretrained = spec.partition(":")
        if not sep or not os.path.isfile(pretrained):
            raise UserError(f"--model {spec}: give NAME:CHECKPOINT with a local weights file "
                            "(e.g. ViT-B-32:/models/open_clip_pytorch_model.bin) or an open_clip folder")
    try:
        model = open_clip.create_model(name, pretrained=pretrained, device=device)
        tokenizer = open_clip.get_tokenizer(name)
    except Exception as e:  # open_clip raises RuntimeError / ValueError / OSError on bad names and files
        raise UserError(f"--model {spec}: open_clip cannot load it ({type(e).__name__}: {str(e)[:300]})") from None
    model.eval()

    @torch.no_grad()
    def encode(caps: list[str]) -> torch.Tensor:
        return model.encode_text(tokenizer(caps).to(device))

    return encode, "open_clip encode_text"


def embed_shards(spec: str, out_dir: str, model: str, kind: str = "hf", batch_size: int = 64,
                 dtype: str = "float32", device: str = "cpu", overwrite: bool = False,
                 log: Callable[[str], None] = print):
    """Copy every shard of `spec` into `out_dir` with `{key}.emb.npy` added; returns the new Manifest."""
    import webdataset as wds

    from ganscale.data.pack.writer import sha256_file
    from ganscale.data.shards.decode import sample_captions
    from ganscale.data.shards.manifest import MANIFEST_NAME, VOCAB_NAME, ShardEntry, is_local, local_path, shard_name
    from ganscale.data.shards.spec import resolve_shards
    from ganscale.data.shards.stream import DataStats, read_shard

    if kind not in KINDS:
        raise UserError(f"--kind {kind!r} unknown; choose one of: {', '.join(KINDS)}")
    if dtype not in ("float16", "float32"):
        raise UserError(f"--dtype {dtype!r}: choose float16 or float32")
    if batch_size < 1:
        raise UserError("--batch-size must be >= 1")
    shards = resolve_shards(spec)
    m = shards.manifest
    if not m.captions:
        raise UserError(f"{spec}: the shards hold no captions to embed")
    os.makedirs(out_dir, exist_ok=True)
    names = [shard_name(u) or f"data-{i:06d}.tar" for i, u in enumerate(shards.urls)]
    old = [n for n in (*names, MANIFEST_NAME) if os.path.exists(os.path.join(out_dir, n))]
    if old and not overwrite:
        raise UserError(f"{out_dir} already holds {old[0]}; pick an empty folder or pass --overwrite")
    if os.path.abspath(out_dir) in {os.path.dirname(os.path.abspath(local_path(u))) for u in shards.urls
                                    if is_local(u)}:
        raise UserError("--out must differ from the shards' folder (the shards are read while writing)")
    encode, pooling = (hf_encoder if kind == "hf" else open_clip_encoder)(model, device)
    stats = DataStats(0, 0)
    entries, dim, skipped, written = [], 0, 0, 0
    for url, name in zip(shards.urls, names):
        raw = read_shard(url, stats)
        samples = [s for s in raw if sample_captions(s)]
        skipped += len(raw) - len(samples)
        caps = [sample_captions(s) for s in samples]
        flat = [c for cs in caps for c in cs]
        vecs = [encode(flat[i:i + batch_size]).float().cpu().numpy() for i in range(0, len(flat), batch_size)]
        emb = np.concatenate(vecs) if vecs else np.zeros((0, dim), np.float32)
        dim = emb.shape[1] if len(emb) else dim
        path = os.path.join(out_dir, name)
        start = 0
        with wds.TarWriter(path, mtime=0) as w:  # int mtime: reproducible bytes, no pax headers
            for s, cs in zip(samples, caps):
                buf = io.BytesIO()
                np.save(buf, emb[start:start + len(cs)].astype(dtype))
                start += len(cs)
                w.write({**{k: v for k, v in s.items() if not k.startswith("__") or k == "__key__"},
                         "emb.npy": buf.getvalue()})
        entries.append(ShardEntry(name, len(samples), os.path.getsize(path), sha256_file(path)))
        written += len(samples)
        log(f"ganscale: {name}: {len(samples)} samples, {len(flat)} captions embedded")
    new = replace(m, num_samples=written, shards=entries, text_emb_dim=int(dim),
                  fields=sorted({*m.fields, "emb.npy"}), num_skipped=m.num_skipped + skipped,
                  source={**m.source, "embedded_from": spec,
                          "embed": {"model": model, "kind": kind, "pooling": pooling, "dtype": dtype}})
    src_vocab = os.path.join(os.path.dirname(local_path(shards.manifest_url)), m.vocab) \
        if shards.manifest_url and m.vocab and is_local(shards.manifest_url) else ""
    if src_vocab and os.path.isfile(src_vocab):
        shutil.copyfile(src_vocab, os.path.join(out_dir, VOCAB_NAME))
    else:
        new.vocab = ""
    new.save(os.path.join(out_dir, MANIFEST_NAME))
    return new


