import pytest
import torch

from ganscale.conditions import TextCondition, cond_cat, cond_index, cond_len, cond_to
from ganscale.errors import UserError
from ganscale.text.vocab import Vocab, tokenize


def test_tokenize_and_vocab_roundtrip(tmp_path):
    assert tokenize("Top-left: a RED 3.") == ["top", "left", "a", "red", "3"]
    v = Vocab.build(["a red 3 in the top left", "a blue 7"], min_count=1)
    assert v.tokens[:3] == ["<pad>", "<unk>", "a"]  # most frequent first
    ids, n = v.encode("a red 9", max_len=5)
    assert n == 3 and ids[2] == 1 and ids[3:] == [0, 0]  # 9 is unknown, then padding
    assert v.unknown("a red 9 zebra red") == ["9", "zebra"]
    v.save(str(tmp_path / "vocab.json"))
    assert Vocab.load(str(tmp_path / "vocab.json")).tokens == v.tokens


def test_vocab_load_errors(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        Vocab.load(str(tmp_path / "missing.json"))
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(UserError, match="not readable JSON"):
        Vocab.load(str(tmp_path / "bad.json"))
    (tmp_path / "foreign.json").write_text('{"tokens": ["a"]}')
    with pytest.raises(UserError, match="not a ganscale vocabulary"):
        Vocab.load(str(tmp_path / "foreign.json"))


def test_condition_row_ops():
    c = TextCondition(torch.arange(8.).view(4, 2), torch.zeros(4, 3, 5), torch.ones(4, 3, dtype=torch.bool))
    part = cond_index(c, torch.tensor([3, 0]))
    assert torch.equal(part.sentence, torch.tensor([[6., 7.], [0., 1.]])) and part.words.shape == (2, 3, 5)
    assert cond_len(cond_cat([c, part])) == 6 and cond_to(c, "cpu").mask.dtype == torch.bool
    y = torch.tensor([1, 2, 3])
    assert torch.equal(cond_index(y, slice(1, 3)), torch.tensor([2, 3])) and cond_index(None, slice(0, 1)) is None
    with pytest.raises(ValueError, match="rows"):
        TextCondition(torch.zeros(2, 3), torch.zeros(3, 1, 1))
