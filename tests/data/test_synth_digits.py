"""`ganscale data synth captioned-digits`: geometry, colours, captions, holdout, determinism, streaming."""

import hashlib
import io
import json
import os
import tarfile

import numpy as np
import pytest
from PIL import Image

from shardkit import cli, datamodule, mnist_dir, take  # noqa: F401 (fixtures)
from ganscale.data.synth import captioned_digits as cd
from ganscale.errors import UserError
from ganscale.text.vocab import tokenize


@pytest.fixture(scope="module")
def test_split():
    """200 images from the t10k digits, with the MNIST pixels to check them against."""
    from shardkit import shared_data_dir

    d = shared_data_dir()
    if d is None:
        pytest.skip("MNIST IDX files not found under ../shared/data")
    from ganscale.data.pack.sources import read_idx

    mnist = os.path.join(d, "mnist")
    src = cd.synth_source(mnist, "test", 200, 3, 2, "red 7")
    return src, read_idx(os.path.join(mnist, "t10k-images-idx3-ubyte.gz")), \
        read_idx(os.path.join(mnist, "t10k-labels-idx1-ubyte.gz"))


def test_geometry_colours_and_truth(test_split):
    src, images, labels = test_split
    counts = set()
    for item in src.items:
        x, objs = item.pixels(), item.meta["objects"]
        assert x.shape == (64, 64, 3) and x.dtype == np.uint8
        counts.add(len(objs))
        inside = np.zeros((64, 64), bool)
        quads = set()
        for o in objs:
            q = cd.POSITIONS.index(o["quadrant"])
            quads.add(q)
            top, left, h, w = o["box"]
            qy, qx = 32 * (q // 2), 32 * (q % 2)
            assert (h, w) == (28, 28) and qy <= top <= qy + 4 and qx <= left <= qx + 4  # offset 2 + {-2..2}
            assert top + 28 <= qy + 32 and left + 28 <= qx + 32  # stays inside its quadrant
            assert labels[o["mnist_index"]] == o["digit"]
            digit = images[o["mnist_index"]]
            expected = (digit[:, :, None].astype(np.uint16) * np.array(cd.COLOURS[o["colour"]]) // 255)
            assert np.array_equal(x[top:top + 28, left:left + 28], expected)
            inside[top:top + 28, left:left + 28] = True
        assert len(quads) == len(objs)  # different quadrants
        assert not x[~inside].any()  # black everywhere else
    assert counts == {1, 2}


def test_captions_canonical_first_and_varied(test_split):
    src, _, _ = test_split
    for item in src.items:
        objs = sorted(item.meta["objects"], key=lambda o: cd.POSITIONS.index(o["quadrant"]))
        canonical = " and ".join(f"a {o['colour']} {o['digit']} in the {o['quadrant']}" for o in objs)
        assert item.captions[0] == canonical
        assert len(set(item.captions)) == len(item.captions) >= 5
        for c in item.captions:  # every caption names every digit's colour and position
            for o in objs:
                assert o["colour"] in c and o["quadrant"] in c
                assert str(o["digit"]) in tokenize(c) or cd.WORDS[o["digit"]] in tokenize(c)
    # the vocabulary source covers every word a caption can use
    from ganscale.text.vocab import Vocab

    vocab = Vocab.build(cd.vocabulary_captions())
    assert all(not vocab.unknown(c) for item in src.items for c in item.captions)


def test_holdout_applies_to_train_and_is_kept_in_test(test_split, mnist_dir):
    src, _, _ = test_split
    pairs = {(o["colour"], o["digit"]) for it in src.items for o in it.meta["objects"]}
    assert ("red", 7) in pairs  # the test split keeps held-out pairs (seeded: they do occur)
    assert not src.description["holdout_applied"] and src.description["holdout"] == ["red 7"]
    train = cd.synth_source(mnist_dir, "train", 300, 0, 2, "red 7, blue 2")
    assert len(train.items) == 300
    seen = {(o["colour"], o["digit"]) for it in train.items for o in it.meta["objects"]}
    assert ("red", 7) not in seen and ("blue", 2) not in seen
    assert ("red", 3) in seen and ("green", 7) in seen  # only the pairs are removed
    assert train.description["holdout"] == ["red 7", "blue 2"] and train.description["holdout_applied"]
    with pytest.raises(UserError, match="purple 7"):
        cd.parse_holdout("purple 7")


def test_cli_is_deterministic_and_streams_with_captions(tmp_path, mnist_dir, cli):
    def run(out, seed):
        r = cli("data", "synth", "captioned-digits", out, "--split", "test", "--num", "40", "--seed", seed,
                "--mnist", mnist_dir, "--max-samples", "16")
        assert r.returncode == 0, r.stderr
        m = json.loads((out / "manifest.json").read_text())
        return m, [s["sha256"] for s in m["shards"]]

    m, a = run(tmp_path / "a", 5)
    _, b = run(tmp_path / "b", 5)
    _, c = run(tmp_path / "c", 6)
    assert a == b and a != c  # same seed, same bytes
    assert m["num_samples"] == 40 and (m["width"], m["height"], m["mode"]) == (64, 64, "RGB")
    assert m["max_captions"] == len(cd.TEMPLATES) and m["vocab"] == "vocab.json"
    with tarfile.open(tmp_path / "a" / "data-000000.tar") as t:
        png = t.extractfile("000000.png").read()
        meta = json.loads(t.extractfile("000000.json").read())
    x = np.asarray(Image.open(io.BytesIO(png)))
    assert x.shape == (64, 64, 3) and meta["objects"] and len(meta["captions"]) == 6
    dm = datamodule(str(tmp_path / "a"), batch_size=8)
    batch = take(dm, dm.train_dataloader(), 1)[0]
    assert batch["x"].shape == (8, 3, 64, 64) and batch["caption_ids"].shape[:2] == (8, 6)
    assert (batch["caption_counts"] == 6).all()
    assert dm.vocab.decode(batch["caption_ids"][0, 0].tolist()) == batch["captions"][0][0]
    assert hashlib.sha256((tmp_path / "a" / "vocab.json").read_bytes()).hexdigest() == \
        hashlib.sha256((tmp_path / "c" / "vocab.json").read_bytes()).hexdigest()
    r = cli("data", "synth", "captioned-digits", tmp_path / "d", "--max-digits", "5", "--mnist", mnist_dir)
    assert r.returncode == 2 and "--max-digits 5" in r.stderr
