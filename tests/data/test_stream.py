"""The shard stream in one process: round trip, seeding, workers, bad data, equal epochs, resume, errors."""

import os
import warnings

import numpy as np
import pytest
import torch

from shardkit import add_shard, cli, datamodule, good_png, index_of, numbered_images, pack_arrays, take  # noqa: F401
from ganscale.data.shards.stream import (
    STATS_KEY,
    CorruptDataWarning,
    ShardStream,
    iter_samples,
)
from ganscale.errors import UserError


@pytest.fixture
def uneven(tmp_path):
    """37 labelled 8x8 images in shards of 5,5,...,5,2 (PNG, keys = image index)."""
    images, labels = numbered_images(37), np.arange(37) % 3
    pack_arrays(tmp_path / "s", images, labels, max_samples=5)
    return str(tmp_path / "s"), images, labels


def test_split_epoch_reads_every_sample_once_pixel_exact(uneven):
    path, images, labels = uneven
    dm = datamodule(path)
    assert dm.info.shape == (1, 8, 8) and dm.info.num_classes == 3
    seen = {}
    for rank in range(2):
        for worker in range(3):
            plan = dm.plan(rank, 2, resampled=False)
            keys = []
            for item in iter_samples(plan, dm.decoder, worker, 3):
                i = index_of(item["x"])
                assert np.array_equal(item["x"][:, :, 0], images[i]) and item["y"] == labels[i]
                keys.append(int(item["key"]))
            assert not set(keys) & set(seen), "two slots read the same sample"
            seen.update({k: (rank, worker) for k in keys})
    assert sorted(seen) == list(range(37))


def test_streams_are_seeded_per_rank_and_reproducible(uneven):
    path = uneven[0]
    dm = datamodule(path, "data.shards.shuffle_buffer=8")

    def keys(rank, n=6):
        stream = ShardStream(dm.plan(rank, 2), dm.decoder)
        return [b["key"] for b, _ in zip(stream, range(n))]

    assert keys(0) == keys(0)
    assert keys(0) != keys(1)
    other_seed = datamodule(path, "data.shards.shuffle_buffer=8", "seed=1")
    assert [b["key"] for b, _ in zip(ShardStream(other_seed.plan(0, 2), other_seed.decoder), range(6))] != keys(0)


def test_corrupt_samples_are_skipped_counted_and_warned(uneven):
    path = uneven[0]
    add_shard(path, "extra-000000.tar", [
        good_png("good1"),
        {"__key__": "badjpg", "jpg": b"\xff\xd8\xff\xe0garbage", "cls": b"1"},
        {"__key__": "nocls", "png": good_png("x")["png"]},
        {"__key__": "noimage", "cls": b"1"},
        good_png("good2"),
    ])
    dm = datamodule(path)
    with pytest.warns(CorruptDataWarning) as rec:
        items = list(iter_samples(dm.plan(0, 1, resampled=False), dm.decoder))
    assert len(items) == 37 + 2 and {"good1", "good2"} <= {i["key"] for i in items}
    text = " ".join(str(w.message) for w in rec)
    assert "'badjpg'" in text and "cannot decode .jpg" in text and "missing key cls" in text and "missing image" in text
    # through the training loader: counted in every batch, summed by log_stats
    dm = datamodule(path, "data.shards.resampled=false", "data.shards.shuffle_buffer=0", batch_size=42)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CorruptDataWarning)
        take(dm, dm.train_dataloader(), 1)
    assert dm.log_stats() == {"data/skipped_samples": 3.0, "data/skipped_shards": 0.0}


def test_unreadable_shards_are_skipped_and_hopeless_data_fails_clearly(uneven):
    path = uneven[0]
    dm = datamodule(path)  # resolved and probed while the files were fine
    with open(os.path.join(path, "data-000001.tar"), "r+b") as f:
        f.truncate(3000)  # sample 5 complete, cut before the png of sample 6
    os.remove(os.path.join(path, "data-000003.tar"))
    with pytest.warns(CorruptDataWarning) as rec:
        keys = [int(i["key"]) for i in iter_samples(dm.plan(0, 1, resampled=False), dm.decoder)]
    text = " ".join(str(w.message) for w in rec)
    assert "data-000001.tar unreadable" in text and "data-000003.tar unreadable" in text
    assert "skipped sample '000006'" in text and "missing image key" in text  # the sample cut in half
    assert len(keys) == 37 - 5 - 5 + 1 and 5 in keys and 6 not in keys  # shard 1 kept the sample read before the cut
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CorruptDataWarning)
        batches = [b for b, _ in zip(dm.train_stream(0, 1), range(20))]  # resampling hits them often
    assert batches[-1][STATS_KEY][1] > 0 and all(len(b["key"]) == 4 for b in batches)
    for name in os.listdir(path):
        if name.endswith(".tar"):
            open(os.path.join(path, name), "wb").close()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CorruptDataWarning)
        with pytest.raises(UserError, match="shards read gave no samples"):
            next(iter(dm.train_stream(0, 1)))


@pytest.mark.parametrize("resampled", [False, True])
def test_every_rank_gets_the_same_number_of_batches(tmp_path, resampled):
    pack_arrays(tmp_path, numbered_images(43), max_samples=30)  # shards of 30 and 13 samples
    dm = datamodule(str(tmp_path), f"data.shards.resampled={str(resampled).lower()}", batch_size=3)
    n = dm.epoch_batches(2)
    assert n == 43 // (2 * 3)
    for rank in range(2):
        plan = dm.plan(rank, 2, max_epochs=2)
        for workers in (0, 2):
            loader = dm.make_loader(ShardStream(plan, dm.decoder), num_workers=workers)
            epochs = [int(b["__stream_pos__"][2]) for b in loader]
            assert epochs == [0] * n + [1] * n, (rank, workers)


@pytest.mark.parametrize("workers,k", [(0, 5), (2, 7), (2, 12)])
def test_resume_continues_the_stream_exactly(uneven, workers, k):
    """Take k batches, save the state, rebuild, load: the next batches equal the uninterrupted run's.
    With 4 batches per epoch, k=7 and k=12 resume inside and at the end of an epoch."""
    path = uneven[0]
    args = ("data.shards.shuffle_buffer=12", "data.shards.epoch_samples=16", "data.shards.transform.crop=random",
            "data.shards.transform.crop_size=6", "data.shards.transform.flip=true")
    dm = datamodule(path, *args, num_workers=workers)
    loader = dm.train_dataloader()
    it = iter(loader)
    take(dm, it, k)
    state = dm.state_dict()
    assert state["batches_consumed"] == k
    reference = take(dm, it, 6)
    dm2 = datamodule(path, *args, num_workers=workers)
    dm2.load_state_dict(state)
    resumed = take(dm2, dm2.train_dataloader(), 6)
    for a, b in zip(reference, resumed):
        assert a["key"] == b["key"] and torch.equal(a["x"], b["x"]) and torch.equal(a["y"], b["y"])
    assert dm2.state_dict()["batches_consumed"] == k + 6


def test_changed_worker_count_warns_and_continues(uneven):
    dm = datamodule(uneven[0], num_workers=0)
    take(dm, dm.train_dataloader(), 3)
    dm2 = datamodule(uneven[0], num_workers=2)
    dm2.load_state_dict(dm.state_dict())
    with pytest.warns(UserWarning, match="cannot replay the old order exactly"):
        dm2.train_stream(0, 1)


def _break(tmp, case):
    path = str(tmp)
    if case == "missing_folder":
        return path + "/nope", "shard path .*/nope does not exist"
    if case == "brace_beyond_files":
        return path + "/data-{000000..000009}.tar", r"7 of 10 shard file\(s\) do not exist"
    if case == "not_in_manifest":
        open(os.path.join(path, "other-000000.tar"), "wb").close()
        return path + "/other-000000.tar", "not in the manifest"
    if case == "pipe_fails":
        return f"pipe:cat {path}/gone/data-000000.tar", "exit status 1: cat:"
    if case == "not_a_tar":
        with open(os.path.join(path, "data-000000.tar"), "wb") as f:
            f.write(b"<html>404</html>")
        return path, "is not a readable tar file"
    raise AssertionError(case)


@pytest.mark.parametrize("case", ["missing_folder", "brace_beyond_files", "not_in_manifest", "pipe_fails", "not_a_tar"])
def test_wrong_shard_spec_is_one_clear_error(tmp_path, case):
    pack_arrays(tmp_path, numbered_images(12), max_samples=5)
    urls, expect = _break(tmp_path, case)
    with pytest.raises(UserError, match=expect):
        datamodule(urls, f"data.shards.manifest={tmp_path}/manifest.json" if case == "pipe_fails" else "seed=0")


def test_pipe_brace_and_list_specs_stream(uneven):
    path = uneven[0]
    for urls in (f"'pipe:cat {path}/data-{{000000..000007}}.tar'", f"[{path}/data-000000.tar,{path}/data-000001.tar]"):
        dm = datamodule(urls)
        b = next(iter(dm.train_stream(0, 1)))
        assert b["x"].shape == (4, 1, 8, 8)
    assert datamodule(f"[{path}/data-000000.tar,{path}/data-000001.tar]").shards.num_samples == 10


def test_train_cli_bad_shard_path_exits_2(tmp_path, cli):
    r = cli("train", "data.kind=shards", f"data.shards.urls={tmp_path}/nothing-here", f"run.root={tmp_path}")
    assert r.returncode == 2 and "nothing-here does not exist" in r.stderr and "Traceback" not in r.stderr
    r = cli("train", "data.kind=shards", f"run.root={tmp_path}")
    assert r.returncode == 2 and "data.kind=shards needs data.shards.urls" in r.stderr
