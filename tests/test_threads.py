"""trainer.num_threads: toy runs go single-threaded (and give the thread count back afterwards)."""

import os

import torch

from ganscale.config import load_config
from ganscale.train import run as run_mod

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_auto_threads_is_one_for_toy_data_and_torch_default_for_images():
    assert run_mod.cpu_threads(load_config([], [])) == 1
    assert run_mod.cpu_threads(load_config([], ["trainer.num_threads=3"])) == 3
    images = load_config([os.path.join(REPO, "configs", "mnist", "dcgan.yaml")], [])
    assert run_mod.cpu_threads(images) == torch.get_num_threads()


def test_main_runs_with_the_threads_it_asked_for_and_restores_them(monkeypatch):
    seen = []
    monkeypatch.setattr(run_mod, "_main", lambda cfg: seen.append(torch.get_num_threads()))
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        run_mod.main(load_config([], []))
        run_mod.main(load_config([], ["trainer.num_threads=3"]))
        assert seen == [1, 3]
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_negative_threads_is_a_config_error():
    import pytest

    from ganscale.errors import ConfigError

    with pytest.raises(ConfigError, match="num_threads=-1"):
        load_config([], ["trainer.num_threads=-1"])
