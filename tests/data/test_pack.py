"""`ganscale data pack` / `verify`: MNIST IDX, image folders, caption JSONL, shard limits, bad input."""

import io
import json
import os
import tarfile

import numpy as np
import pytest
from PIL import Image

from shardkit import cli, mnist_dir, pack_arrays, run_cli  # noqa: F401 (fixtures)


def read_tar(path):
    """{key: {ext: bytes}} of one shard."""
    out = {}
    with tarfile.open(path) as t:
        for m in t.getmembers():
            key, ext = m.name.split(".", 1)
            out.setdefault(key, {})[ext] = t.extractfile(m).read()
    return out


def test_pack_mnist_cli_pixel_exact(mnist_dir, tmp_path, cli):
    # a real process: the console entry point end to end
    from ganscale.data.pack.sources import read_idx

    out = tmp_path / "mnist"
    r = run_cli("data", "pack", mnist_dir, str(out), "--limit", "1200", "--max-samples", "500", "--no-shuffle")
    assert r.returncode == 0, r.stderr
    assert "packed 1200 samples (28x28, L, png, 10 classes) into 3 shards" in r.stdout
    m = json.loads((out / "manifest.json").read_text())
    assert m["num_samples"] == 1200 and m["classes"] == [str(i) for i in range(10)]
    assert [s["num_samples"] for s in m["shards"]] == [500, 500, 200]
    images = read_idx(os.path.join(mnist_dir, "train-images-idx3-ubyte.gz"))
    labels = read_idx(os.path.join(mnist_dir, "train-labels-idx1-ubyte.gz"))
    samples = {**read_tar(out / "data-000000.tar"), **read_tar(out / "data-000002.tar")}
    for key in ("000000", "000499", "001000", "001199"):
        i = int(key)
        img = np.asarray(Image.open(io.BytesIO(samples[key]["png"])))
        assert np.array_equal(img, images[i]), key
        assert int(samples[key]["cls"]) == labels[i]
    assert cli("data", "verify", out).returncode == 0


def test_pack_is_reproducible_and_shuffles_classes(tmp_path):
    imgs = np.zeros((40, 4, 4), dtype=np.uint8)
    labels = np.repeat(np.arange(4), 10)  # class-sorted input
    m1 = pack_arrays(tmp_path / "a", imgs, labels, max_samples=10, shuffle=True)
    m2 = pack_arrays(tmp_path / "b", imgs, labels, max_samples=10, shuffle=True)
    assert [s.sha256 for s in m1.shards] == [s.sha256 for s in m2.shards]  # same input, same bytes
    first = read_tar(tmp_path / "a" / "data-000000.tar")
    assert len({int(v["cls"]) for v in first.values()}) > 1  # shards mix classes


def make_folder(root):
    """ImageNet layout: 2 classes, JPEG + PNG, one corrupt file, one non-image, one empty class."""
    rng = np.random.default_rng(0)
    for cls, n in (("cat", 3), ("dog", 2)):
        os.makedirs(root / cls)
        for i in range(n):
            arr = rng.integers(0, 256, (12 + i, 16, 3), dtype=np.uint8)  # mixed sizes
            Image.fromarray(arr).save(root / cls / f"{cls}{i}.{'jpg' if i % 2 else 'png'}")
    (root / "dog" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (root / "dog" / "notes.txt").write_text("ignored")
    os.makedirs(root / "zebra")


def test_pack_folder_skips_unreadable_and_reports(tmp_path, cli):
    src = tmp_path / "imgs"
    make_folder(src)
    r = cli("data", "pack", str(src), str(tmp_path / "out"), "--max-samples", "2")
    assert r.returncode == 0, r.stderr
    assert "skipped: dog/broken.jpg: unreadable image" in r.stderr
    assert "zebra: class folder holds no images" in r.stderr
    assert "mixed sizes" in r.stderr and "ignored 1 files" in r.stderr
    m = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert m["num_samples"] == 5 and m["num_skipped"] == 1 and "broken.jpg" in m["skipped_examples"][0]
    assert m["classes"] == ["cat", "dog", "zebra"] and m["width"] == 0 and m["image_format"] == "mixed"
    assert len(m["shards"]) == 3
    samples = {}
    for s in m["shards"]:
        samples.update(read_tar(tmp_path / "out" / s["name"]))
    by_source = {json.loads(v["json"])["source"]: v for v in samples.values()}
    raw = (src / "cat" / "cat1.jpg").read_bytes()
    assert by_source[os.path.join("cat", "cat1.jpg")]["jpg"] == raw  # original bytes kept, no recompression
    assert int(by_source[os.path.join("dog", "dog0.png")]["cls"]) == 1


def test_pack_resize_square_formats_and_byte_limit(tmp_path, cli):
    src = tmp_path / "imgs"
    make_folder(src)
    r = cli("data", "pack", str(src), str(tmp_path / "out"), "--resize", "8", "--square",
                "--image-format", "webp", "--max-bytes", "1")
    assert r.returncode == 0, r.stderr
    m = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert (m["width"], m["height"], m["image_format"]) == (8, 8, "webp")
    assert [s["num_samples"] for s in m["shards"]] == [1] * 5  # a 1-byte limit: one sample per shard
    one = next(iter(read_tar(tmp_path / "out" / m["shards"][0]["name"]).values()))
    assert Image.open(io.BytesIO(one["webp"])).size == (8, 8)


def make_caption_jsonl(tmp_path, n=4):
    """n images with two captions each, string labels, embeddings (row j of image i = 10 i + j),
    plus three bad lines (malformed JSON, missing image, no captions)."""
    os.makedirs(tmp_path / "img")
    lines = []
    for i in range(n):
        Image.fromarray(np.full((6, 6, 3), i * 20, np.uint8)).save(tmp_path / "img" / f"{i}.png")
        np.save(tmp_path / f"e{i}.npy", 10 * i + np.arange(2, dtype=np.float32)[:, None].repeat(5, 1))
        lines.append(json.dumps({"image": f"img/{i}.png", "captions": [f"a {i}", f"b {i}"],
                                 "label": "odd" if i % 2 else "even", "text_emb": f"e{i}.npy"}))
    lines += ["{not json", json.dumps({"image": "img/missing.png", "captions": ["x"], "label": "odd"}),
              json.dumps({"image": "img/0.png", "captions": []})]
    (tmp_path / "caps.jsonl").write_text("\n".join(lines) + "\n")
    return tmp_path / "caps.jsonl"


def test_pack_jsonl_captions(tmp_path, cli):
    make_caption_jsonl(tmp_path)
    r = cli("data", "pack", str(tmp_path / "caps.jsonl"), str(tmp_path / "out"))
    assert r.returncode == 0, r.stderr
    assert "caps.jsonl:5: not valid JSON" in r.stderr and "missing file" in r.stderr and "caps.jsonl:7" in r.stderr
    m = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert m["num_samples"] == 4 and m["num_skipped"] == 3 and m["captions"] and m["text_emb_dim"] == 5
    assert m["classes"] == ["even", "odd"]
    s = next(v for v in read_tar(tmp_path / "out" / "data-000000.tar").values()
             if json.loads(v["json"])["source"].endswith("(img/3.png)"))
    assert json.loads(s["json"])["captions"] == ["a 3", "b 3"] and s["txt"] == b"a 3\nb 3"
    assert int(s["cls"]) == 1 and np.load(io.BytesIO(s["emb.npy"])).shape == (2, 5)


def test_stream_captions_labels_and_embeddings(tmp_path, cli):
    from shardkit import datamodule

    make_caption_jsonl(tmp_path, n=12)
    assert cli("data", "pack", tmp_path / "caps.jsonl", tmp_path / "out", "--max-samples", "5").returncode == 0
    dm = datamodule(str(tmp_path / "out"), batch_size=6)
    assert dm.info.shape == (3, 6, 6) and dm.info.num_classes == 2
    b = next(iter(dm.train_stream(0, 1)))
    for text, emb, y, x in zip(b["text"], b["text_emb"], b["y"], b["x"]):
        which, i = text.split()
        assert emb.tolist() == [10.0 * int(i) + (which == "b")] * 5  # the embedding of the caption yielded
        assert int(y) == int(i) % 2 and int(x[0, 0, 0]) == 20 * int(i)
    texts = [t for b, _ in zip(dm.train_stream(0, 1), range(6)) for t in b["text"]]
    assert {t.split()[0] for t in texts} == {"a", "b"}  # several captions kept, one drawn per visit
    first = datamodule(str(tmp_path / "out"), "data.shards.caption=first", "data.shards.labels=false", batch_size=6)
    b = next(iter(first.train_stream(0, 1)))
    assert all(t.startswith("a ") for t in b["text"]) and "y" not in b and first.info.num_classes == 0


def test_pack_workers_give_the_same_shards_and_unlabeled_folder(tmp_path, cli):
    os.makedirs(tmp_path / "flat")
    for i in range(12):
        Image.fromarray(np.full((5, 7, 3), i * 20, np.uint8)).save(tmp_path / "flat" / f"{i}.jpg", quality=80)
    for w in (1, 2):
        r = cli("data", "pack", tmp_path / "flat", tmp_path / f"w{w}", "--workers", w, "--max-samples", "5",
                "--resize", "4", "--square")
        assert r.returncode == 0, r.stderr
    m1, m2 = (json.loads((tmp_path / f"w{w}" / "manifest.json").read_text()) for w in (1, 2))
    assert [s["sha256"] for s in m1["shards"]] == [s["sha256"] for s in m2["shards"]]
    assert m1["classes"] == [] and (m1["width"], m1["height"], m1["image_format"]) == (4, 4, "jpg")
    assert "cls" not in next(iter(read_tar(tmp_path / "w1" / "data-000000.tar").values()))


@pytest.mark.parametrize("case", ["empty", "missing", "refuse_overwrite", "bad_idx"])
def test_pack_bad_input_one_clear_error(tmp_path, case, cli):
    out = tmp_path / "out"
    if case == "empty":
        os.makedirs(tmp_path / "empty")
        args, expect = [str(tmp_path / "empty")], "no images found"
    elif case == "missing":
        args, expect = [str(tmp_path / "nope")], "does not exist"
    elif case == "refuse_overwrite":
        pack_arrays(out, np.zeros((2, 4, 4), np.uint8))
        os.makedirs(tmp_path / "i" / "c")
        Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "i" / "c" / "a.png")
        args, expect = [str(tmp_path / "i")], "already holds shards"
    else:
        os.makedirs(tmp_path / "idx")
        (tmp_path / "idx" / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03" + b"\x00" * 20)
        (tmp_path / "idx" / "train-labels-idx1-ubyte").write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x01\x05")
        args, expect = [str(tmp_path / "idx")], "train-images-idx3-ubyte: truncated"
    r = cli("data", "pack", *args, str(out))
    assert r.returncode == 2, r.stderr
    assert expect in r.stderr and "Traceback" not in r.stderr


def test_verify_detects_corruption(tmp_path, cli):
    pack_arrays(tmp_path, np.zeros((6, 4, 4), np.uint8), max_samples=3)
    p = tmp_path / "data-000001.tar"
    data = bytearray(p.read_bytes())
    data[600] ^= 0xFF
    p.write_bytes(bytes(data))
    r = cli("data", "verify", str(tmp_path))
    assert r.returncode == 2 and "data-000001.tar: sha256 differs" in r.stderr and "Traceback" not in r.stderr
