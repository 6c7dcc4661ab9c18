"""The DAMSM text encoder: matching losses, R-precision, training from shards, the safe file."""

import json
import os

import pytest
import torch

from conftest import cli
from text_data import make_captioned_shards

from ganscale.conditions import TextCondition
from ganscale.errors import UserError
from ganscale.text.damsm import (candidates_used, matching_loss, negatives_mask, r_precision, sentence_loss,
                                 word_loss, word_scores)
from ganscale.text.encoders import PrecomputedText, RNNTextEncoder


def test_sentence_loss_hand_value():
    img = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    sen = torch.tensor([[3.0, 0.0], [1.0, 1.0]])
    # cos: [[1, 1/sqrt2], [0, 1/sqrt2]] x gamma3=10; CE over captions (rows) and over images (columns)
    s = 10 * torch.tensor([[1.0, 2 ** -0.5], [0.0, 2 ** -0.5]])
    want0 = -(torch.log_softmax(s, 1)[0, 0] + torch.log_softmax(s, 1)[1, 1]) / 2
    want1 = -(torch.log_softmax(s.t(), 1)[0, 0] + torch.log_softmax(s.t(), 1)[1, 1]) / 2
    l0, l1 = sentence_loss(img, sen, gamma3=10.0)
    assert torch.allclose(l0, want0) and torch.allclose(l1, want1)
    # a same-class pair is not a mismatch: masking it leaves only the true pair in the row
    excl = negatives_mask(torch.tensor([0, 0]))
    l0, l1 = sentence_loss(img, sen, excl)
    assert float(l0) == pytest.approx(0.0, abs=1e-6) and float(l1) == pytest.approx(0.0, abs=1e-6)


def test_matching_loss_sums_both_levels_both_ways_and_same_captions_are_not_mismatches():
    g = torch.Generator().manual_seed(0)
    regions, glob = torch.randn(3, 4, 2, 2, generator=g), torch.randn(3, 4, generator=g)
    words, sen = torch.randn(3, 5, 4, generator=g), torch.randn(3, 4, generator=g)
    sen[2] = sen[0]  # rows 0 and 2 carry the same caption
    mask = torch.tensor([[True] * 5, [True] * 3 + [False] * 2, [True] * 4 + [False]])
    excl = negatives_mask(torch.arange(3), sen)  # every row its own group: only identical captions are excluded
    assert excl.tolist() == [[False, False, True], [False, False, False], [True, False, False]]
    loss, parts = matching_loss(regions, glob, words, sen, mask, excl, 4.0, 5.0, 10.0, word_weight=0.5)
    s0, s1 = sentence_loss(glob, sen, excl, 10.0)
    w0, w1 = word_loss(regions, words, mask, excl, 4.0, 5.0, 10.0)
    assert torch.allclose(loss, s0 + s1 + 0.5 * (w0 + w1))
    assert torch.allclose(parts["sentence"], s0 + s1) and torch.allclose(parts["word"], w0 + w1)


def test_word_scores_single_region_hand_value():
    # one region: every word's context is that region, so the score is log sum_w exp(g2 cos(e_w, v))
    regions = torch.tensor([[1.0, 0.0]]).view(1, 2, 1, 1)
    words = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [5.0, 5.0]]])
    mask = torch.tensor([[True, True, False]])  # the third token is padding
    s, a = word_scores(regions, words, mask, gamma1=4.0, gamma2=5.0)
    assert float(s[0, 0]) == pytest.approx(float(torch.log(torch.exp(torch.tensor(5.0)) + 1.0)), rel=1e-5)
    assert torch.allclose(a[0, 0, :2], torch.ones(2, 1))


def test_word_scores_match_attngan_formula_with_many_regions():
    """The score reads e_w . c_w off the word-region dot products; it must equal AttnGAN's
    cosine between each word and its attended region context, computed the long way."""
    g = torch.Generator().manual_seed(3)
    regions, words = torch.randn(3, 6, 2, 3, generator=g), torch.randn(4, 5, 6, generator=g)
    mask = torch.tensor([[True] * 5, [True] * 2 + [False] * 3, [True] * 4 + [False], [True] + [False] * 4])
    s, a = word_scores(regions, words, mask, gamma1=4.0, gamma2=5.0)
    v = regions.flatten(2)
    for i in range(3):
        for c in range(4):
            n = int(mask[c].sum())
            att = (words[c, :n] @ v[i]).softmax(0)  # over words
            att = (4.0 * att).softmax(1)  # over regions
            context = att @ v[i].t()  # [n, E]
            cos = torch.nn.functional.cosine_similarity(words[c, :n], context, dim=1)
            assert torch.allclose(a[i, c, :n], att, atol=1e-6)
            assert float(s[i, c]) == pytest.approx(float(torch.logsumexp(5.0 * cos, 0)), abs=1e-5)


def test_negatives_mask_identical_captions_and_groups():
    ids = torch.tensor([[4, 5, 0], [4, 5, 0], [6, 0, 0]])
    m = negatives_mask(torch.tensor([0, 1, 2]), ids)
    assert m.tolist() == [[False, True, False], [True, False, False], [False, False, False]]


def test_draw_captions_uniform_over_each_images_captions():
    from ganscale.data.captions import draw_captions

    ids = torch.tensor([[[1, 0], [2, 0], [3, 0]], [[4, 0], [9, 9], [9, 9]]])  # image 1 has one caption
    lengths = torch.tensor([[1, 1, 1], [1, 2, 2]])
    g = torch.Generator().manual_seed(0)
    seen = [set(), set()]
    for _ in range(60):
        i, n = draw_captions(ids, lengths, torch.tensor([3, 1]), g)
        seen[0].add(int(i[0, 0]))
        seen[1].add(int(i[1, 0]))
        assert n.tolist() == [1, 1]
    assert seen == [{1, 2, 3}, {4}]
    a = draw_captions(ids, lengths, torch.tensor([3, 1]), torch.Generator().manual_seed(5))[0]
    assert torch.equal(a, draw_captions(ids, lengths, torch.tensor([3, 1]), torch.Generator().manual_seed(5))[0])


def test_r_precision_perfect_and_chance():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 16, generator=g)
    assert r_precision(x, x, torch.arange(200), 100, generator=g) == 1.0
    rp = r_precision(x, torch.randn(200, 16, generator=g), torch.arange(200), 100, generator=g)
    assert rp < 0.1  # chance is 1/100
    assert candidates_used(torch.arange(200)) == 100 and candidates_used(torch.tensor([0, 0, 1, 2])) == 3


def test_rnn_and_precomputed_give_text_conditions():
    enc = RNNTextEncoder(10, word_dim=8, hidden=6, dropout=0.0)
    ids = torch.tensor([[2, 3, 4], [5, 0, 0]])
    c = enc.condition({"caption_ids": ids, "caption_lengths": torch.tensor([3, 1])})
    assert isinstance(c, TextCondition) and c.sentence.shape == (2, 6) and c.words.shape == (2, 3, 6)
    assert c.mask.tolist() == [[True, True, True], [True, False, False]]
    assert torch.all(c.words[1, 1:] == 0)  # padding positions carry no features
    # the sentence of a caption does not depend on the padding after it
    c2 = enc(torch.tensor([[5, 0, 0, 0]]), torch.tensor([1]))
    assert torch.allclose(c2.sentence, c.sentence[1:])
    p = PrecomputedText(4).condition({"caption_emb": torch.ones(3, 4)})
    assert p.sentence.shape == (3, 4) and p.words is None and p.mask is None
    with pytest.raises(UserError, match=r"caption_emb has shape \(3, 5\)"):
        PrecomputedText(4)(torch.ones(3, 5))
    with pytest.raises(UserError, match="caption_emb"):
        PrecomputedText(4).condition({"x": 1})


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    d = tmp_path_factory.mktemp("text")
    return make_captioned_shards(d / "train", num=480, seed=0), make_captioned_shards(d / "test", num=150, seed=1)


def test_text_train_cli_beats_chance_and_saves_one_safe_file(shards, tmp_path):
    """A trained encoder ranks the true caption first among 100 far above chance (0.01)."""
    train, test = shards
    out = str(tmp_path / "enc.safetensors")
    r = cli("text", "train", "configs/text/digits_damsm.yaml", f"data={train}", f"test_data={test}", f"out={out}",
            "image_size=32", "word_dim=32", "dim=64", "image_ch=16", "dropout=0", "batch_size=32", "steps=120",
            "eval_every=0", "patience=0")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert res["r_precision"] >= 0.5 and res["num_test"] == 150 and res["candidates"] == 100
    assert os.listdir(tmp_path) == ["enc.safetensors"]  # one file: config and vocabulary inside

    from ganscale.text.pair import build_text_encoder, load_encoder

    pair = load_encoder(out)
    enc = build_text_encoder(path=out)
    assert enc.dim == 64 and not enc.training and not any(p.requires_grad for p in enc.parameters())
    assert isinstance(build_text_encoder(emb_dim=8), PrecomputedText)
    with pytest.raises(UserError, match="text_emb_dim"):
        build_text_encoder()
    assert not pair.training and not any(p.requires_grad for p in pair.parameters())
    ids, lengths = pair.encode_captions(["a red square in the top left"])
    assert pair.text(ids, lengths).sentence.shape == (1, 64)
    with pytest.raises(UserError, match="purple, circle"):
        pair.encode_captions(["a purple circle", "a red circle"])
    r = cli("text", "eval", out, test)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["r_precision"] == pytest.approx(res["r_precision"])


def test_early_stop_saves_the_best_validation_pair(shards, tmp_path):
    """patience=2 with an unbeatable min_delta: the first report is the best, two more reports
    without a better one end training, and the saved pair is the one of the first report, the
    same tensors as a run that simply stops there (same split, seed and batches)."""
    from safetensors.torch import load_file

    from ganscale.text.config import TextEncoderConfig
    from ganscale.text.train import train_encoder

    train, test = shards
    base = dict(data=train, test_data=test, image_size=32, word_dim=16, dim=32, image_ch=8, dropout=0.0,
                batch_size=16, eval_every=5, min_delta=1.0, val_fraction=0.1)
    logs = []
    a = train_encoder(TextEncoderConfig(**base, steps=100, patience=2, out=str(tmp_path / "a.safetensors")),
                      log=logs.append)
    assert (a.steps, a.best_step, a.num_val, a.num_train) == (15, 5, 48, 432)
    assert [h["step"] for h in a.history] == [5, 10, 15] and all("val_r_precision" in h for h in a.history)
    assert a.val_r_precision == a.history[0]["val_r_precision"] and a.r_precision == a.history[0]["r_precision"]
    assert "early stop" in logs[-1] and "step 5" in logs[-1]
    b = train_encoder(TextEncoderConfig(**base, steps=5, patience=2, out=str(tmp_path / "b.safetensors")),
                      log=lambda _: None)
    wa, wb = load_file(str(tmp_path / "a.safetensors")), load_file(str(tmp_path / "b.safetensors"))
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    # without patience nothing is held out and the last pair is kept
    c = train_encoder(TextEncoderConfig(**base, steps=10, out=str(tmp_path / "c.safetensors")), log=lambda _: None)
    assert (c.steps, c.best_step, c.num_val, c.num_train, c.val_r_precision) == (10, 10, 0, 480, None)
    problems = TextEncoderConfig(data="x", patience=-1).check(None)
    problems += TextEncoderConfig(data="x", patience=3, eval_every=0, val_fraction=1.5).check(None)
    assert any("patience=-1" in p for p in problems) and any("eval_every" in p for p in problems)
    assert any("val_fraction=1.5" in p for p in problems)


def test_text_cli_errors(tmp_path, shards):
    bad = tmp_path / "x.safetensors"
    bad.write_bytes(b"not a safetensors file")
    r = cli("text", "eval", str(bad), shards[1])
    assert r.returncode == 2 and "not a readable safetensors file" in r.stderr and "Traceback" not in r.stderr
    from safetensors.torch import save_file

    save_file({"w": torch.ones(1)}, str(tmp_path / "other.safetensors"))
    r = cli("text", "eval", str(tmp_path / "other.safetensors"), shards[1])
    assert r.returncode == 2 and "not a ganscale text encoder" in r.stderr
    r = cli("text", "train", "configs/text/digits_damsm.yaml", "colour=red")
    assert r.returncode == 2 and "unknown key 'colour'" in r.stderr
    r = cli("text", "train", "configs/text/digits_damsm.yaml", "batch_size=1")
    assert r.returncode == 2 and "batch_size=1" in r.stderr and "data is empty" in r.stderr
    r = cli("text", "train", "configs/text/digits_damsm.yaml", f"data={tmp_path}")
    assert r.returncode == 2 and "manifest" in r.stderr
