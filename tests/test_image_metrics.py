"""Image metrics: the InceptionV3 port (resize, golden features), FID/KID/IS/precision-recall
against hand computations, class accuracy, and the errors for missing weight files."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from scipy import linalg

from ganscale.errors import UserError
from ganscale.metrics import fidelity
from ganscale.metrics.inception import WEIGHTS_NAME, FIDInceptionV3, load_inception, resize_bilinear_tf1


def test_tf1_bilinear_resize_by_hand():
    x = torch.tensor([[[[0.0, 10.0], [20.0, 30.0]]]])
    # out pixel i samples input position i * 2/3: 0, 0.667, 1.333 (the last clamps to pixel 1)
    out = resize_bilinear_tf1(x, 3)[0, 0]
    expected = torch.tensor([[0.0, 20 / 3, 10.0], [40 / 3, 20.0, 70 / 3], [20.0, 80 / 3, 30.0]])
    assert torch.allclose(out, expected, atol=1e-5)


def _seeded_state(seed: int = 0) -> dict:
    """Random weights in a fixed order: the golden values below were computed from exactly these
    weights with torch-fidelity 0.4.0's FeatureExtractorInceptionV3 (the network torchmetrics uses)."""
    sd = FIDInceptionV3().state_dict()
    g = torch.Generator().manual_seed(seed)
    out = {}
    for k in sorted(sd):
        v = sd[k]
        if k.endswith("running_var"):
            out[k] = torch.rand(v.shape, generator=g) + 0.5
        elif k.endswith("running_mean"):
            out[k] = torch.randn(v.shape, generator=g) * 0.1
        elif k.endswith("num_batches_tracked"):
            out[k] = v
        else:
            out[k] = torch.randn(v.shape, generator=g) / max(1, v[0].numel()) ** 0.5
    return out


def _images(n: int, seed: int, size: int = 32) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, size, size), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)


@pytest.fixture(scope="module")
def calibrated_weights(tmp_path_factory) -> str:
    """A weight file: the seeded weights with the BatchNorm statistics of tests/golden/
    inception_bn_stats.npz (float16), measured once with torch-fidelity 0.4.0's network in train
    mode on `_images(4, seed=2)`. With _seeded_state's own statistics every image maps to nearly
    the same features (they differ by 1e-5 of their size), so a bug in the input path would
    hardly show; with these they differ by ~15%. The statistics are fixed, not measured by the
    port itself, so they cannot absorb an error in its input scaling."""
    state = _seeded_state()
    with np.load(os.path.join(os.path.dirname(__file__), "golden", "inception_bn_stats.npz")) as stats:
        for name in stats.files:
            mean, var = torch.from_numpy(stats[name].astype(np.float32))
            state[f"{name}.running_mean"], state[f"{name}.running_var"] = mean.clone(), var.clone()
    path = str(tmp_path_factory.mktemp("inception") / WEIGHTS_NAME)
    torch.save(state, path)
    return path


def test_inception_port_matches_torch_fidelity_golden_features(calibrated_weights):
    net = load_inception(calibrated_weights)  # the weight file's parameter names load as they are
    out = net(_images(3, seed=1))
    f, logits = out["features"], out["logits"]
    assert f.shape == (3, 2048) and logits.shape == (3, 1008)
    assert float(f.std(0).mean()) > 0.04  # the features depend on the image (0.076)
    # computed from the same weights with torch-fidelity 0.4.0's FeatureExtractorInceptionV3 (the
    # network torchmetrics uses); the tolerance covers float rounding across machines and thread
    # counts (~1e-5); scaling the input by 127.5 instead of 128 moves these values by ~0.05
    golden_f0 = [0.8250207304954529, 0.3009480834007263, 0.0037106822710484266, 0.0, 0.6831004619598389]
    golden_l1 = [-1.3193533420562744, 0.6900306344032288, 1.0880126953125]
    assert torch.allclose(f[0, :5], torch.tensor(golden_f0), atol=1e-3)
    assert torch.allclose(logits[1, :3], torch.tensor(golden_l1), atol=1e-3)


def test_inception_port_equals_torch_fidelity_live(calibrated_weights):
    """Where torch-fidelity works (it needs torchvision: a CUDA machine), both networks on the same
    weights and images. On a CPU-only torch it cannot be installed: PyPI's torchvision for it is a
    CUDA build that fails to import, and torchmetrics imports torch-fidelity whenever it is present."""
    fidelity_inception = pytest.importorskip("torch_fidelity.feature_extractor_inceptionv3")
    theirs = fidelity_inception.FeatureExtractorInceptionV3(
        "inception-v3-compat", ["2048", "logits_unbiased"], feature_extractor_weights_path=calibrated_weights)
    ours = load_inception(calibrated_weights)
    for size in (32, 299):  # upsampled and already at 299 px
        x = _images(2, seed=size, size=size)
        f, logits = theirs(x)
        out = ours(x)
        assert torch.allclose(out["features"], f, atol=1e-5, rtol=1e-5)
        assert torch.allclose(out["logits"], logits, atol=1e-5, rtol=1e-5)


def test_missing_inception_weights_say_which_file_and_how_to_get_it(tmp_path):
    for path in ("", str(tmp_path / "nope.pth")):
        with pytest.raises(UserError) as e:
            load_inception(path)
        msg = str(e.value)
        assert WEIGHTS_NAME in msg and "https://" in msg and "eval.inception_path" in msg
        assert "copy it to the cluster" in msg
    bad = tmp_path / "bad.pth"
    torch.save({"fc.weight": torch.zeros(3)}, bad)
    with pytest.raises(UserError, match="is not the InceptionV3 FID weight file"):
        load_inception(str(bad))


def test_fid_matches_the_closed_form():
    g = torch.Generator().manual_seed(0)
    real = torch.randn(400, 8, generator=g)
    fake = torch.randn(300, 8, generator=g) * 1.5 + 0.3
    mu1, mu2 = real.double().mean(0).numpy(), fake.double().mean(0).numpy()
    s1, s2 = np.cov(real.double().numpy(), rowvar=False), np.cov(fake.double().numpy(), rowvar=False)
    covmean = linalg.sqrtm(s1 @ s2).real
    expected = float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))
    assert fidelity.fid(fidelity.feature_moments(real), fake) == pytest.approx(expected, rel=1e-6)
    assert fidelity.fid(fidelity.feature_moments(real), real) == pytest.approx(0.0, abs=1e-6)


def test_kid_is_near_zero_for_one_distribution_and_positive_for_two():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(600, 16, generator=g), torch.randn(600, 16, generator=g)
    same, _ = fidelity.kid(a, b, subsets=20, subset_size=200)
    shifted, _ = fidelity.kid(a, b + 1.0, subsets=20, subset_size=200)
    assert abs(same) < 0.01 and shifted > 0.1
    assert fidelity.kid(a, b, 20, 200, seed=3) == fidelity.kid(a, b, 20, 200, seed=3)  # seeded subsets


def test_inception_score_bounds():
    k = 10
    confident = torch.full((1000, k), -20.0)
    confident[torch.arange(1000), torch.arange(1000) % k] = 20.0  # sure and spread over all classes
    # splits of a random permutation hold the classes only about evenly: IS slightly below k
    assert fidelity.inception_score(confident, splits=5)[0] == pytest.approx(k, rel=0.03)
    assert fidelity.inception_score(torch.zeros(1000, k), splits=5)[0] == pytest.approx(1.0, abs=1e-6)


def test_precision_recall_by_hand():
    real = torch.tensor([[0.0], [1.0], [2.0], [3.0]])
    # k=1: each real point's radius is 1, so the real manifold is [-1, 4]
    fake = torch.tensor([[0.5], [2.5], [10.0], [11.0]])
    p, r = fidelity.precision_recall(real, fake, k=1)
    assert p == pytest.approx(0.5)  # 0.5 and 2.5 inside, 10 and 11 outside
    # fake radii (k=1): 0.5->2, 2.5->2, 10->1, 11->1: reals 0..3 are within 2 of 0.5 or 2.5
    assert r == pytest.approx(1.0)
    p, r = fidelity.precision_recall(real, real + 100, k=1)
    assert p == 0 and r == 0


def test_class_accuracy_averages_over_classes():
    logits = torch.eye(3)[[0, 0, 1, 2, 2, 2]] * 5
    labels = torch.tensor([0, 1, 1, 2, 2, 0])
    mean, per_class = fidelity.class_accuracy(logits, labels)
    assert per_class == [0.5, 0.5, 1.0] and mean == pytest.approx(2 / 3)


def test_stacked_mnist_modes_and_kl():
    def logits_for(triples):
        out = torch.full((len(triples), 3, 10), -9.0)
        for i, t in enumerate(triples):
            for c, d in enumerate(t):
                out[i, c, d] = 9.0
        return out

    modes, kl, num = fidelity.mode_coverage(logits_for([(1, 2, 3), (1, 2, 3), (4, 5, 6), (0, 0, 0)]))
    assert (modes, num) == (3, 1000)
    p = np.array([0.5, 0.25, 0.25])
    assert kl == pytest.approx(float((p * np.log(p * 1000)).sum()))
    every = [(a, b, c) for a in range(10) for b in range(10) for c in range(10)]
    assert fidelity.mode_coverage(logits_for(every))[:2] == (1000, pytest.approx(0.0, abs=1e-12))


def test_stacked_mnist_source_stacks_three_digits(tmp_path):
    import gzip
    import os
    import struct

    from ganscale.data.pack.stacked_mnist import stacked_mnist_source

    # a tiny IDX "MNIST" whose digit d is the constant image d * 20
    n = 30
    images = np.repeat((np.arange(n) % 10 * 20).astype(np.uint8)[:, None, None], 28, 1).repeat(28, 2)
    labels = (np.arange(n) % 10).astype(np.uint8)
    with gzip.open(os.path.join(tmp_path, "train-images-idx3-ubyte.gz"), "wb") as f:
        f.write(struct.pack(">IIII", 0x803, n, 28, 28) + images.tobytes())
    with gzip.open(os.path.join(tmp_path, "train-labels-idx1-ubyte.gz"), "wb") as f:
        f.write(struct.pack(">II", 0x801, n) + labels.tobytes())
    src = stacked_mnist_source(str(tmp_path), 50, seed=0)
    assert len(src.items) == 50 and len(src.classes) == 1000
    for item in src.items:
        px = item.pixels
        assert px.shape == (28, 28, 3)
        digits = (px[0, 0] // 20).astype(int)
        assert item.label == 100 * digits[0] + 10 * digits[1] + digits[2]
    assert len({it.label for it in src.items}) > 30  # the triples vary


def test_stacked_mnist_report_puts_precision_recall_beside_the_mode_count(tmp_path):
    """One row per run (DCGAN and BigGAN-32), read from docs/mnist/stacked-mnist-*_results.json."""
    import json
    import os
    import sys

    from tests.conftest import REPO

    sys.path.insert(0, os.path.join(REPO, "benchmarks"))
    import stacked_mnist

    os.makedirs(tmp_path / "mnist")
    for name, config, modes in (("stacked-mnist-dcgan", "configs/mnist/stacked_dcgan.yaml", 123),
                                ("stacked-mnist-biggan32", "configs/mnist/stacked_biggan32.yaml", 456)):
        results = {"config": config, "overrides": ["trainer.max_iters=2"], "cpu": "2 CPU cores",
                   "classifier": {"test_accuracy": 0.99},
                   "train": {"iterations": 2, "seconds": 60.0, "cpu_seconds": 90.0},
                   "gan": {"modes": modes, "kl": 2.5, "num_samples": 1000},
                   "real": {"modes": 990, "kl": 0.03},
                   "history": [{"iter": 2, "modes": modes, "modes_kl": 2.5, "fid": 250.0, "precision": 0.25,
                                "recall": 0.001}]}
        json.dump(results, open(tmp_path / "mnist" / f"{name}_results.json", "w"))
    stacked_mnist.write_doc(str(tmp_path / "stacked.md"))
    text = (tmp_path / "stacked.md").read_text()
    assert "python benchmarks/stacked_mnist.py -- trainer.max_iters=2" in text
    assert ("python benchmarks/stacked_mnist.py --config configs/mnist/stacked_biggan32.yaml "
            "--name stacked-mnist-biggan32 -- trainer.max_iters=2") in text
    assert "| ganscale DCGAN, 2 iterations (`stacked-mnist-dcgan`) | 123 | 2.50 | measured here |" in text
    assert "| ganscale BigGAN-32, 2 iterations (`stacked-mnist-biggan32`) | 456 | 2.50 | measured here |" in text
    assert "| `stacked-mnist-dcgan` | 2 | 123 | 2.50 | 250.0 | 0.250 | 0.0010 |" in text
    assert "| PacDCGAN | 1000 | 0.06 |" in text


def test_stacked_biggan_config_builds_at_its_data_size():
    from ganscale.config import load_config
    from ganscale.data.base import DataInfo
    from ganscale.nets import build_nets
    from tests.conftest import REPO

    cfg = load_config([f"{REPO}/configs/mnist/stacked_biggan32.yaml"])
    assert cfg.data.shards.transform.resize == 32 and not cfg.model.conditional
    G, D = build_nets(cfg.model, DataInfo("image", (3, 32, 32), 0))
    x = G(G.sample_z(2), None)
    assert x.shape == (2, 3, 32, 32) and D(x, None).shape == (2,)


def test_benchmark_results_name_no_machine_paths():
    import os
    import sys

    from tests.conftest import REPO

    sys.path.insert(0, os.path.join(REPO, "benchmarks"))
    from _mnist_common import portable

    got = portable({"run_dir": os.path.join(REPO, "runs", "x"), "overrides": [f"data.shards.urls={REPO}/data/s"],
                    "n": 3, "other": "/elsewhere/y"})
    assert got == {"run_dir": os.path.join("runs", "x"), "overrides": ["data.shards.urls=data/s"], "n": 3,
                   "other": "/elsewhere/y"}
