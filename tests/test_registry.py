"""Registries: declared entries are listed without importing anything, looked up by importing them;
registered objects work the same; config errors list the registry's choices."""

import pytest

from ganscale.config import load_config
from ganscale.errors import ConfigError
from ganscale.registry import ARCHS, DATASETS, EXTRACTORS, GAMES, LOSSES, METRICS, Registry


def test_declared_entries_are_listed_without_import_and_imported_on_lookup():
    reg = Registry("widget", {"b": "no_such_module_anywhere:thing", "a": "collections:OrderedDict"})
    assert reg.choices() == ["a", "b"] and "b" in reg  # nothing imported yet, not even the broken one
    import collections

    assert reg["a"] is collections.OrderedDict and reg["a"] is collections.OrderedDict
    with pytest.raises(ModuleNotFoundError, match="no_such_module_anywhere"):
        reg["b"]
    with pytest.raises(KeyError, match=r"unknown widget 'c'; choose one of \['a', 'b'\]"):
        reg["c"]


def test_registering_and_declaring_share_one_namespace():
    reg = Registry("widget", {"a": "collections:OrderedDict"})

    @reg.register("made")
    class Made:
        pass

    assert reg["made"] is Made and reg.choices() == ["a", "made"]
    with pytest.raises(KeyError, match="registered twice"):
        reg.register("a")(Made)
    with pytest.raises(KeyError, match="registered twice"):
        reg.declare("made", "collections:deque")
    with pytest.raises(ValueError, match="package.module:attribute"):
        reg.declare("x", "collections.deque")
    assert reg.problem("k", "made") is None
    assert reg.problem("k", "zz") == "k='zz' is not a known widget; choose one of: a, made"
    assert "no widget is registered yet" in Registry("widget").problem("k", "zz")


def test_every_builtin_entry_resolves():
    from ganscale.losses import GANLoss

    for name in LOSSES.choices():
        assert isinstance(LOSSES[name], GANLoss) and LOSSES[name].name == name
    for reg in (ARCHS, DATASETS, EXTRACTORS, METRICS):
        for name in reg.choices():
            assert callable(reg[name]), (reg.kind, name)
    assert ARCHS.choices() == ["biggan", "dcgan", "dfgan", "mlp", "sngan", "stackgan", "stackganpp"]
    assert DATASETS.choices() == ["digits", "none", "shards", "toy"]
    assert METRICS.choices() == ["class_acc", "fid", "is", "kid", "modes", "pr"]


def test_config_choices_come_from_the_registries():
    """A component registered at run time is a valid choice at once; unknown names list it."""
    reg_name = "test-only-arch"
    ARCHS.register(reg_name)(lambda cfg, info: None)
    try:
        assert load_config([], [f"model.arch={reg_name}"]).model.arch == reg_name
        with pytest.raises(ConfigError) as e:
            load_config([], ["model.arch=nope", "eval.metrics=[fid,fidd]", "eval.extractor=vgg"])
        msg = str(e.value)
        assert f"model.arch='nope' is not a known network architecture; choose one of: biggan, dcgan, dfgan, mlp, sngan, stackgan, stackganpp, {reg_name}" in msg
        assert "['fidd'] unknown; choose from: class_acc, fid, is, kid, modes, pr" in msg
        assert "eval.extractor='vgg' is not a known feature extractor; choose one of: classifier, inception" in msg
    finally:
        ARCHS._items.pop(reg_name)


def test_games_registry_takes_a_game_defined_outside_the_package():
    class TwoCritics:  # a game of the test file's own, registered the way a user would
        pass

    assert GAMES.kind == "game" and "two_critics" not in GAMES
    GAMES.register("two_critics")(TwoCritics)
    try:
        assert GAMES["two_critics"] is TwoCritics and GAMES.problem("game.name", "two_critics") is None
        assert "two_critics" in GAMES.problem("game.name", "three_critics")
    finally:
        GAMES._items.pop("two_critics")
