"""`ganscale data embed` with a tiny local transformers model the test builds (nothing downloaded)."""

import io
import json
import tarfile

import numpy as np
import pytest
import torch

from shardkit import cli, datamodule, pack_captioned, take  # noqa: F401 (fixtures)

transformers = pytest.importorskip("transformers",
                                   reason="transformers is not installed (pip install 'ganscale[text]')")


@pytest.fixture
def tiny_bert(tmp_path):
    """A 1-layer, 16-wide BERT with a word-level tokenizer over the test captions, saved locally."""
    words = ["image", "caption"] + [str(i) for i in range(30)]
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]) + "\n")
    tok = transformers.BertTokenizer(str(vocab))
    torch.manual_seed(0)
    cfg = transformers.BertConfig(vocab_size=len(tok), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                  intermediate_size=32, max_position_embeddings=32)
    model = transformers.BertModel(cfg).eval()
    path = tmp_path / "bert"
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return str(path), model, tok


def test_embed_writes_one_vector_per_caption_and_streams_them(tmp_path, tiny_bert, cli):
    path, model, tok = tiny_bert
    pack_captioned(tmp_path / "s", n=12, max_samples=5)
    r = cli("data", "embed", tmp_path / "s", "--model", path, "--kind", "hf", "--out", tmp_path / "e",
            "--batch-size", "7")
    assert r.returncode == 0, r.stderr
    m = json.loads((tmp_path / "e" / "manifest.json").read_text())
    assert m["text_emb_dim"] == 16 and m["num_samples"] == 12 and "emb.npy" in m["fields"]
    assert m["source"]["embed"]["pooling"].startswith("mean") and (tmp_path / "e" / "vocab.json").is_file()
    assert [s["name"] for s in m["shards"]] == ["data-000000.tar", "data-000001.tar", "data-000002.tar"]
    with tarfile.open(tmp_path / "e" / "data-000001.tar") as t:
        caps = t.extractfile("000007.txt").read().decode().split("\n")
        emb = np.load(io.BytesIO(t.extractfile("000007.emb.npy").read()))
    assert caps == ["image 7 caption 0", "image 7 caption 1"] and emb.shape == (2, 16)
    with torch.no_grad():  # the same model by hand: masked mean of the last hidden states
        enc = tok(caps, padding=True, return_tensors="pt")
        h = model(**enc).last_hidden_state
        want = (h * enc["attention_mask"][..., None]).sum(1) / enc["attention_mask"].sum(1, keepdim=True)
    np.testing.assert_allclose(emb, want.numpy(), rtol=1e-4, atol=1e-5)
    dm = datamodule(str(tmp_path / "e"), batch_size=4)
    b = take(dm, dm.train_dataloader(), 1)[0]
    assert b["caption_emb"].shape == (4, 3, 16) and b["text_emb"].shape == (4, 16)
    for j in range(4):
        n = int(b["caption_counts"][j])
        assert not b["caption_emb"][j, n:].any()  # padding rows
        assert any(torch.allclose(b["text_emb"][j], row) for row in b["caption_emb"][j, :n])
    # errors: a model path that is not a folder, an occupied output folder
    r = cli("data", "embed", tmp_path / "s", "--model", tmp_path / "nope", "--out", tmp_path / "f")
    assert r.returncode == 2 and "not a folder" in r.stderr
    r = cli("data", "embed", tmp_path / "s", "--model", path, "--out", tmp_path / "e")
    assert r.returncode == 2 and "--overwrite" in r.stderr
