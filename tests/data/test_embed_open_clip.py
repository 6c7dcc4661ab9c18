"""`ganscale data embed --kind open_clip`: a local open_clip model (a folder with open_clip_config.json
and weights, or NAME:CHECKPOINT), nothing downloaded.

The first test builds a tiny open_clip CLIP and saves it as a local folder; it runs where open_clip
is installed (`pip install open_clip_torch`; it needs a torchvision that loads with the installed
torch). The second runs everywhere: a stand-in `open_clip` module records what ganscale asks of the
library (which model, which weights, tokenizer then encode_text) and checks both spec forms and
the errors."""

import io
import json
import sys
import tarfile
import types

import numpy as np
import pytest
import torch

from shardkit import cli, pack_captioned  # noqa: F401 (fixture)


def read_embeddings(folder, shard: str, key: str):
    with tarfile.open(folder / shard) as t:
        caps = t.extractfile(f"{key}.txt").read().decode().split("\n")
        emb = np.load(io.BytesIO(t.extractfile(f"{key}.emb.npy").read()))
    return caps, emb


def test_embed_with_a_tiny_local_open_clip_model(tmp_path, cli):
    open_clip = pytest.importorskip("open_clip", reason="open_clip is not installed (pip install open_clip_torch)")
    model_cfg = {"embed_dim": 8,
                 "vision_cfg": {"image_size": 16, "layers": 1, "width": 16, "head_width": 8, "patch_size": 8},
                 "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 16, "heads": 2, "layers": 1}}
    torch.manual_seed(0)
    model = open_clip.CLIP(**model_cfg).eval()
    folder = tmp_path / "tiny-clip"
    folder.mkdir()
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": model_cfg}))
    torch.save(model.state_dict(), folder / "open_clip_pytorch_model.bin")
    pack_captioned(tmp_path / "s", n=6, max_samples=5)
    r = cli("data", "embed", tmp_path / "s", "--model", folder, "--kind", "open_clip", "--out", tmp_path / "e")
    assert r.returncode == 0, r.stderr
    m = json.loads((tmp_path / "e" / "manifest.json").read_text())
    assert m["text_emb_dim"] == 8 and m["source"]["embed"]["kind"] == "open_clip"
    caps, emb = read_embeddings(tmp_path / "e", "data-000001.tar", "000005")
    tok = open_clip.get_tokenizer("local-dir:" + str(folder))
    with torch.no_grad():
        want = model.encode_text(tok(caps))
    np.testing.assert_allclose(emb, want.numpy(), rtol=1e-4, atol=1e-5)


class StandIn:
    """What ganscale uses of open_clip: create_model(name, pretrained=, device=) -> a model with
    encode_text(tokens), and get_tokenizer(name) -> captions -> token tensor."""

    def __init__(self):
        self.calls = []

    def module(self) -> types.ModuleType:
        mod = types.ModuleType("open_clip")
        mod.create_model = self.create_model
        mod.get_tokenizer = self.get_tokenizer
        return mod

    def create_model(self, name, pretrained=None, device="cpu"):
        self.calls.append(("create_model", name, pretrained, device))
        if "broken" in name:
            raise RuntimeError(f"Model config for {name} not found")
        model = torch.nn.Module()
        model.encode_text = lambda tokens: torch.stack([tokens.float().sum(1), tokens.float().max(1).values], 1)
        return model

    def get_tokenizer(self, name):
        self.calls.append(("get_tokenizer", name))
        return lambda caps: torch.tensor([[len(c), sum(map(ord, c)) % 97] for c in caps])


def test_open_clip_path_asks_the_library_for_the_local_model_only(tmp_path, cli, monkeypatch):
    lib = StandIn()
    monkeypatch.setitem(sys.modules, "open_clip", lib.module())
    pack_captioned(tmp_path / "s", n=6, max_samples=5)
    weights = tmp_path / "w.bin"
    weights.write_bytes(b"weights")
    r = cli("data", "embed", tmp_path / "s", "--model", f"ViT-B-32:{weights}", "--kind", "open_clip",
            "--out", tmp_path / "e")
    assert r.returncode == 0, r.stderr
    assert lib.calls == [("create_model", "ViT-B-32", str(weights), "cpu"), ("get_tokenizer", "ViT-B-32")]
    caps, emb = read_embeddings(tmp_path / "e", "data-000001.tar", "000005")
    assert caps == ["image 5 caption 0", "image 5 caption 1", "image 5 caption 2"]
    want = [[len(c) + sum(map(ord, c)) % 97, max(len(c), sum(map(ord, c)) % 97)] for c in caps]
    np.testing.assert_allclose(emb, np.array(want, np.float32))  # encode_text(tokenizer(captions)), per caption
    m = json.loads((tmp_path / "e" / "manifest.json").read_text())
    assert m["text_emb_dim"] == 2 and m["source"]["embed"]["pooling"] == "open_clip encode_text"
    # the text evaluation of a run on precomputed embeddings reads each drawn caption's own row
    from ganscale.metrics.text_eval import load_captions

    ev = load_captions(str(tmp_path / "e"), 6, seed=0)
    want = [[len(c) + sum(map(ord, c)) % 97, max(len(c), sum(map(ord, c)) % 97)] for c in ev.texts]
    assert len(ev.texts) == 6 and torch.equal(ev.emb, torch.tensor(want, dtype=torch.float32))

    folder = tmp_path / "clip"  # the folder form: open_clip_config.json beside the weights
    folder.mkdir()
    r = cli("data", "embed", tmp_path / "s", "--model", folder, "--kind", "open_clip", "--out", tmp_path / "f")
    assert r.returncode == 2 and "open_clip_config.json" in r.stderr
    (folder / "open_clip_config.json").write_text("{}")
    lib.calls.clear()
    r = cli("data", "embed", tmp_path / "s", "--model", folder, "--kind", "open_clip", "--out", tmp_path / "f")
    assert r.returncode == 0, r.stderr
    assert lib.calls[0] == ("create_model", f"local-dir:{folder}", None, "cpu")  # pretrained: from the folder
    # errors: no weights file, a name open_clip does not know, open_clip missing
    r = cli("data", "embed", tmp_path / "s", "--model", "ViT-B-32:/nowhere/w.bin", "--kind", "open_clip",
            "--out", tmp_path / "g")
    assert r.returncode == 2 and "NAME:CHECKPOINT" in r.stderr and "Traceback" not in r.stderr
    r = cli("data", "embed", tmp_path / "s", "--model", f"broken:{weights}", "--kind", "open_clip",
            "--out", tmp_path / "g")
    assert r.returncode == 2 and "open_clip cannot load it" in r.stderr and "not found" in r.stderr
    monkeypatch.setitem(sys.modules, "open_clip", None)  # `import open_clip` raises ImportError
    r = cli("data", "embed", tmp_path / "s", "--model", f"ViT-B-32:{weights}", "--kind", "open_clip",
            "--out", tmp_path / "g")
    assert r.returncode == 2 and "pip install open_clip_torch" in r.stderr
