"""Captioned data: the CUB / COCO / Oxford-102 layouts, img2dataset shards, every caption in the
batch (strings, ids, lengths, counts), draw_captions, and exact resume with captions."""

import io
import json
import os
import tarfile

import numpy as np
import pytest
import torch
from PIL import Image

from shardkit import REPO, cli, datamodule, index_of, numbered_images, pack_captioned, take  # noqa: F401
from ganscale.errors import UserError

SHARED = os.environ.get("GANSCALE_SHARED_DATA") or os.path.join(REPO, "..", "shared", "data")
CUB = os.path.join(SHARED, "cub-sample")
COCO = os.path.join(SHARED, "coco-sample")


def read_tar(path):
    """{key: {ext: bytes}} of one shard."""
    out = {}
    with tarfile.open(path) as t:
        for m in t.getmembers():
            key, ext = m.name.split(".", 1)
            out.setdefault(key, {})[ext] = t.extractfile(m).read()
    return out


def all_samples(folder):
    out = {}
    for name in sorted(os.listdir(folder)):
        if name.endswith(".tar"):
            out.update(read_tar(os.path.join(folder, name)))
    return out


def cub_table(name):
    with open(os.path.join(CUB, "CUB_200_2011", name)) as f:
        return {int(p[0]): p[1:] for p in (line.split() for line in f) if p}


@pytest.mark.skipif(not os.path.isdir(CUB), reason="cub-sample not found under ../shared/data")
def test_pack_cub_train_split_with_stackgan_crop(tmp_path, cli):
    from ganscale.data.pack.captioned import stackgan_crop
    from ganscale.data.pack.sources import open_source

    out = tmp_path / "cub"
    r = cli("data", "pack", CUB, out, "--split", "train", "--crop", "bbox", "--no-shuffle")
    assert r.returncode == 0, r.stderr
    m = json.loads((out / "manifest.json").read_text())
    split, images, boxes = cub_table("train_test_split.txt"), cub_table("images.txt"), cub_table("bounding_boxes.txt")
    train_ids = [i for i in sorted(images) if split[i][0] == "1"]
    assert m["num_samples"] == len(train_ids) == 100
    assert len(m["classes"]) == 200 and m["classes"][0] == "001.Black_footed_Albatross"  # classes.txt order
    assert m["captions"] and m["max_captions"] == 10 and m["vocab"] == "vocab.json"
    assert set(m["fields"]) == {"jpg", "cls", "txt", "json"}
    samples = all_samples(out)
    for n in (0, 57, 99):
        s = samples[f"{n:06d}"]
        meta = json.loads(s["json"])
        image_id = train_ids[n]
        rel = images[image_id][0]
        assert meta["image_id"] == image_id and meta["source"] == rel
        with open(os.path.join(CUB, "text", rel[:-4] + ".txt")) as f:
            assert meta["captions"] == [line.strip() for line in f if line.strip()]  # every caption kept
        assert int(s["cls"]) == m["classes"].index(rel.split("/")[0])
        with Image.open(os.path.join(CUB, "CUB_200_2011", "images", rel)) as full:
            left, top, right, bottom = stackgan_crop(*full.size, tuple(float(v) for v in boxes[image_id]))
        assert Image.open(io.BytesIO(s["jpg"])).size == (right - left, bottom - top)
    # the test split: the other 100 images, and the vocabulary still counts the TRAIN captions
    test = open_source(CUB, "cub", "test")
    train = open_source(CUB, "cub", "train")
    assert len(test.items) == 100 and {i.meta["image_id"] for i in test.items}.isdisjoint(train_ids)
    assert test.vocab_captions == train.vocab_captions == [c for it in train.items for c in it.captions]


def test_stackgan_crop_is_the_box_enlarged_one_and_a_half_times():
    from ganscale.data.pack.captioned import stackgan_crop

    # box 100x60 at (50, 40): centre (100, 70), half side 0.75 * 100 = 75
    assert stackgan_crop(400, 300, (50.0, 40.0, 100.0, 60.0)) == (25, 0, 175, 145)
    assert stackgan_crop(120, 300, (50.0, 140.0, 100.0, 60.0)) == (25, 95, 120, 245)  # clipped at the right


@pytest.mark.skipif(not os.path.isdir(COCO), reason="coco-sample not found under ../shared/data")
def test_pack_coco_keeps_every_caption_in_annotation_order(tmp_path, cli):
    r = cli("data", "pack", COCO, tmp_path / "coco", "--split", "val", "--no-shuffle", "--max-samples", "50")
    assert r.returncode == 0, r.stderr
    with open(os.path.join(COCO, "annotations", "captions_val2017.json")) as f:
        ann = json.load(f)
    caps = {}
    for a in sorted(ann["annotations"], key=lambda a: a["id"]):
        caps.setdefault(a["image_id"], []).append(" ".join(a["caption"].split()))  # one line each
    samples = all_samples(tmp_path / "coco")
    assert len(samples) == 79
    for s in samples.values():
        meta = json.loads(s["json"])
        assert meta["captions"] == caps[meta["image_id"]]
        assert s["txt"].decode().split("\n") == meta["captions"]
    m = json.loads((tmp_path / "coco" / "manifest.json").read_text())
    assert m["classes"] == [] and m["max_captions"] == max(len(c) for c in caps.values())
    assert cli("data", "pack", COCO, tmp_path / "x", "--split", "train").returncode == 2  # no train json here


def make_flowers(root):
    """Reed's layout: jpg/image_<5 digits>.jpg, text_c10/class_<5 digits>/image_<5 digits>.txt (+ .h5), class lists."""
    rng = np.random.default_rng(0)
    (root / "jpg").mkdir(parents=True)
    for cls, imgs in ((1, (1, 2)), (3, (3,))):
        d = root / "text_c10" / f"class_{cls:05d}"
        d.mkdir(parents=True)
        for i in imgs:
            Image.fromarray(rng.integers(0, 256, (12, 10, 3), dtype=np.uint8)).save(root / "jpg" / f"image_{i:05d}.jpg")
            (d / f"image_{i:05d}.txt").write_text(f"flower {i} has pink petals\n\nthe petals of flower {i} are wide\n")
            (d / f"image_{i:05d}.h5").write_bytes(b"not a caption file")
    (root / "trainvalclasses.txt").write_text("class_00001\n")
    (root / "testclasses.txt").write_text("class_00003\n")


def test_pack_oxford_flowers_reed_layout(tmp_path, cli):
    make_flowers(tmp_path / "flowers")
    for split in ("train", "test"):
        r = cli("data", "pack", tmp_path / "flowers", tmp_path / split, "--split", split, "--no-shuffle")
        assert r.returncode == 0, r.stderr
    train, test = all_samples(tmp_path / "train"), all_samples(tmp_path / "test")
    assert sorted(json.loads(s["json"])["source"] for s in train.values()) == \
        ["class_00001/image_00001.txt", "class_00001/image_00002.txt"]
    assert [int(s["cls"]) for s in test.values()] == [2]  # class_00003 -> label 2 in every split
    assert json.loads(test["000000"]["json"])["captions"] == \
        ["flower 3 has pink petals", "the petals of flower 3 are wide"]
    # one vocabulary for both splits, from the train captions: "3" is unknown
    assert (tmp_path / "train" / "vocab.json").read_bytes() == (tmp_path / "test" / "vocab.json").read_bytes()
    from ganscale.text.vocab import Vocab

    assert Vocab.load(str(tmp_path / "test" / "vocab.json")).unknown("flower 3") == ["3"]
    (tmp_path / "flowers" / "testclasses.txt").unlink()
    r = cli("data", "pack", tmp_path / "flowers", tmp_path / "t2", "--split", "test")
    assert r.returncode == 2 and "testclasses.txt is missing" in r.stderr


# ---------------------------------------------------------------------------- img2dataset
def write_img2dataset(folder, n=6, stats=True):
    """An img2dataset-style shard: {key}.jpg, {key}.txt, {key}.json (caption), mixed sizes."""
    import webdataset as wds

    os.makedirs(folder, exist_ok=True)
    images = numbered_images(n, size=16)[..., None].repeat(3, axis=-1)
    with wds.TarWriter(os.path.join(folder, "00000.tar")) as w:
        for i in range(n):
            buf = io.BytesIO()
            img = Image.fromarray(images[i] if i % 2 else np.pad(images[i], ((2, 2), (0, 0), (0, 0))))
            img.save(buf, format="PNG")  # lossless, so the index pixels survive
            sample = {"__key__": f"{i:09d}", "png": buf.getvalue(), "txt": f"caption of image {i}".encode(),
                      "json": json.dumps({"key": f"{i:09d}", "caption": f"caption of image {i}", "status": "success",
                                          "url": f"http://example.com/{i}.png"}).encode()}
            if i == 3:
                del sample["json"]  # caption from the .txt alone
            w.write(sample)
    if stats:
        with open(os.path.join(folder, "00000_stats.json"), "w") as f:
            json.dump({"count": n, "successes": n, "failed_to_download": 0}, f)


@pytest.mark.parametrize("stats", [True, False])
def test_img2dataset_shards_stream_without_repacking(tmp_path, stats):
    write_img2dataset(tmp_path / "i2d", stats=stats)
    fmt = () if stats else ("data.shards.format=img2dataset",)  # auto-detected by the _stats.json files
    dm = datamodule(str(tmp_path / "i2d"), *fmt, "data.shards.transform.crop=center",
                    "data.shards.transform.crop_size=16", "data.shards.resampled=false", batch_size=3)
    assert dm.manifest.num_samples == 6 and dm.manifest.max_captions == 1 and dm.vocab is None
    batches = take(dm, dm.train_dataloader(), 2)
    seen = set()
    for b in batches:
        assert b["x"].shape == (3, 3, 16, 16)
        for j, caps in enumerate(b["captions"]):
            i = int(b["key"][j])
            assert caps == [f"caption of image {i}"] and b["text"][j] == caps[0]
            x = ((b["x"][j] + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()
            assert index_of(x) == i  # 20x16 images are centre-cropped back to the 16x16 original
            seen.add(i)
    assert seen == set(range(6))
    assert not (tmp_path / "i2d" / "manifest.json").exists()  # nothing written


def test_tars_without_manifest_or_img2dataset_stats_are_refused(tmp_path):
    """An interrupted `data pack` leaves tars and no manifest: still refused, not streamed."""
    write_img2dataset(tmp_path / "p", stats=False)
    with pytest.raises(UserError, match="no shard manifest"):
        datamodule(str(tmp_path / "p" / "00000.tar"))


# ---------------------------------------------------------------------------- all captions in the batch
def test_batch_carries_every_caption_as_strings_and_ids(tmp_path):
    m = pack_captioned(tmp_path / "s")
    assert m.max_captions == 3 and m.vocab == "vocab.json" and "txt" in m.fields
    dm = datamodule(str(tmp_path / "s"), "data.shards.max_words=4", batch_size=4)
    for b in take(dm, dm.train_dataloader(), 3):
        assert b["caption_ids"].shape == (4, 3, 4) and b["caption_lengths"].shape == (4, 3)
        for j, key in enumerate(b["key"]):
            i = int(key)
            want = [f"image {i} caption {k}" for k in range(1 + i % 3)]
            assert b["captions"][j] == want and b["text"][j] in want
            assert int(b["caption_counts"][j]) == len(want)
            for k in range(3):
                ids, n = b["caption_ids"][j, k], int(b["caption_lengths"][j, k])
                if k < len(want):
                    assert dm.vocab.decode(ids.tolist()) == want[k] and n == 4
                else:  # padding rows
                    assert n == 0 and not ids.any()


def test_draw_captions_picks_one_real_row_per_image_from_the_generator():
    from ganscale.data.captions import draw_captions

    counts = torch.tensor([1, 3, 2, 3])
    ids = torch.arange(4 * 3 * 2).view(4, 3, 2)
    lengths = torch.arange(12).view(4, 3) + 100
    drawn = []
    for seed in range(60):
        a, la = draw_captions(ids, lengths, counts, torch.Generator().manual_seed(seed))
        b, lb = draw_captions(ids, lengths, counts, torch.Generator().manual_seed(seed))
        assert torch.equal(a, b) and torch.equal(la, lb)  # the generator decides
        rows = (a[:, 0] // 2) % 3  # the caption row each image got
        assert (rows < counts).all() and torch.equal(la, lengths[torch.arange(4), rows])
        assert torch.equal(a, ids[torch.arange(4), rows])
        drawn.append(rows)
    drawn = torch.stack(drawn)
    assert (drawn[:, 0] == 0).all()
    for i, c in enumerate(counts.tolist()):
        assert set(drawn[:, i].tolist()) == set(range(c))  # every caption gets drawn
    with pytest.raises(ValueError, match="at least one caption"):
        draw_captions(ids, lengths, torch.tensor([1, 0, 1, 1]))


def test_resume_with_captions_is_exact(tmp_path):
    pack_captioned(tmp_path / "s", n=30)
    args = ("data.shards.shuffle_buffer=10", "data.shards.epoch_samples=16")
    dm = datamodule(str(tmp_path / "s"), *args, batch_size=4)
    it = iter(dm.train_dataloader())
    take(dm, it, 5)
    state = dm.state_dict()
    reference = take(dm, it, 4)
    dm2 = datamodule(str(tmp_path / "s"), *args, batch_size=4)
    dm2.load_state_dict(state)
    for a, b in zip(reference, take(dm2, dm2.train_dataloader(), 4)):
        assert a["key"] == b["key"] and a["text"] == b["text"] and a["captions"] == b["captions"]
        for k in ("x", "caption_ids", "caption_lengths", "caption_counts"):
            assert torch.equal(a[k], b[k]), k


def test_cub_layout_problems_are_named(tmp_path, cli):
    """A missing caption file skips (and names) that image; a missing text/ folder is one error."""
    root = tmp_path / "birds"
    cub = root / "CUB_200_2011"
    for i, cls in ((1, "001.A"), (2, "001.A"), (3, "002.B")):
        (cub / "images" / cls).mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((20, 30, 3), i * 40, np.uint8)).save(cub / "images" / cls / f"im{i}.jpg")
        (root / "text" / cls).mkdir(parents=True, exist_ok=True)
        if i != 2:
            (root / "text" / cls / f"im{i}.txt").write_text(f"bird {i} is small\nbird {i} has a beak\n")
    (cub / "images.txt").write_text("1 001.A/im1.jpg\n2 001.A/im2.jpg\n3 002.B/im3.jpg\n")
    (cub / "train_test_split.txt").write_text("1 1\n2 1\n3 1\n")
    (cub / "bounding_boxes.txt").write_text("1 0.0 0.0 10.0 10.0\n2 0.0 0.0 10.0 10.0\n")
    r = cli("data", "pack", root, tmp_path / "o", "--crop", "bbox", "--no-shuffle")
    assert r.returncode == 0, r.stderr
    m = json.loads((tmp_path / "o" / "manifest.json").read_text())
    assert m["num_samples"] == 1 and m["classes"] == ["001.A", "002.B"]  # no classes.txt: the folders
    assert any("im2.jpg: no captions" in s for s in m["skipped_examples"])
    assert any("im3.jpg: no line in bounding_boxes.txt" in s for s in m["skipped_examples"])
    import shutil

    shutil.rmtree(root / "text")
    r = cli("data", "pack", root, tmp_path / "p")
    assert r.returncode == 2 and "text is missing" in r.stderr
