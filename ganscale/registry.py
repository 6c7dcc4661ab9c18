"""Name -> component registries. Configs refer to components by name; config errors list the choices.

Every registry works the same way. An entry is either *declared* as a ``"module:attribute"``
string, imported on first lookup, or *registered* as an object. Built-in components are declared
below, so listing the choices (what a config check does) imports nothing: loading a config never
imports torch. Looking a name up imports its module.

Add a component: write its file, then add one line here (or in your own code, before the config
is loaded):

    LOSSES.declare("relativistic", "ganscale.losses:RELATIVISTIC")      # lazy: imported on lookup
    ARCHS.declare("stylegan2", "my_package.stylegan2:build_stylegan2")  # any importable module
    GAMES.register("two_critics")(TwoCritics)                           # eager, e.g. in a test file

A registration lives in the process that made it: for runs that start other processes (torchrun,
spawned ranks or DataLoader workers), declare an importable "module:attribute" instead, or
register in a module every process imports.

What each registry holds (and where the config names it):

    LOSSES       GANLoss (d_real, d_fake, g)                        loss.name
    ARCHS        build(model_cfg, info) -> (G, D)                    model.arch
    DATASETS     data module class, called with the RunConfig        data.kind
    EXTRACTORS   build(eval_cfg) -> FeatureExtractor                 eval.extractor
    METRICS      metric(ref, fake, eval_cfg) -> {key: value}         eval.metrics
    GAMES        Game class (networks, players, phases; docs/games.md)  game.name
    CONDITIONS   ConditionKind class (real rows' and fakes' conditions) game.condition
"""

from __future__ import annotations

import importlib
from typing import Any, Callable, Generic, Mapping, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """name -> T, filled by `declare` (lazy import path) or `register` (object)."""

    def __init__(self, kind: str, declared: Mapping[str, str] | None = None):
        self.kind = kind
        """What the entries are, in words (goes into error messages)."""
        self._targets: dict[str, str] = {}
        self._items: dict[str, T] = {}
        for name, target in (declared or {}).items():
            self.declare(name, target)

    def _claim(self, name: str) -> None:
        if name in self._targets or name in self._items:
            raise KeyError(f"{self.kind} {name!r} registered twice")

    def declare(self, name: str, target: str) -> None:
        """Register `name` as "package.module:attribute", imported the first time it is looked up."""
        module, sep, attr = target.partition(":")
        if not (sep and module and attr):
            raise ValueError(f"{self.kind} {name!r}: target {target!r} is not of the form 'package.module:attribute'")
        self._claim(name)
        self._targets[name] = target

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: register the object under `name` now."""

        def deco(obj: T) -> T:
            self._claim(name)
            self._items[name] = obj
            return obj

        return deco

    def __contains__(self, name: object) -> bool:
        return name in self._items or name in self._targets

    def __getitem__(self, name: str) -> T:
        if name in self._items:
            return self._items[name]
        if name not in self._targets:
            raise KeyError(f"unknown {self.kind} {name!r}; choose one of {self.choices()}")
        module, _, attr = self._targets[name].partition(":")
        obj: Any = importlib.import_module(module)
        for part in attr.split("."):
            obj = getattr(obj, part)
        self._items[name] = obj  # later lookups skip the import
        self._targets.pop(name, None)  # another thread may have imported it too
        return obj

    def choices(self) -> list[str]:
        """Every name, sorted; imports nothing."""
        return sorted([*self._items, *self._targets])

    def problem(self, key: str, name: str) -> str | None:
        """A config problem line if `name` is not registered, else None."""
        if name in self:
            return None
        choices = self.choices()
        if not choices:
            return f"{key}={name!r}: no {self.kind} is registered yet (see ganscale/registry.py)"
        return f"{key}={name!r} is not a known {self.kind}; choose one of: {', '.join(choices)}"


LOSSES: Registry = Registry("GAN loss", {
    "minimax": "ganscale.losses:MINIMAX",
    "nonsaturating": "ganscale.losses:NONSATURATING",
    "hinge": "ganscale.losses:HINGE",
    "wasserstein": "ganscale.losses:WASSERSTEIN",
    "least_squares": "ganscale.losses:LEAST_SQUARES",
})
ARCHS: Registry = Registry("network architecture", {
    "mlp": "ganscale.nets.mlp:build_mlp",
    "dcgan": "ganscale.nets.dcgan:build_dcgan",
    "sngan": "ganscale.nets.sngan:build_sngan",
    "biggan": "ganscale.nets.biggan:build_biggan",
    "stackgan": "ganscale.nets.text2img.stackgan:build_stackgan",
    "stackganpp": "ganscale.nets.text2img.stackganpp:build_stackganpp",
    "dfgan": "ganscale.nets.text2img.dfgan:build_dfgan",
})
DATASETS: Registry = Registry("data kind", {
    "toy": "ganscale.data.toy:ToyDataModule",
    "shards": "ganscale.data.shards.datamodule:ShardsDataModule",
    "digits": "ganscale.data.digits:DigitsDataModule",
    "none": "ganscale.data.none:NoDataModule",
})
EXTRACTORS: Registry = Registry("feature extractor", {
    "inception": "ganscale.metrics.extractors:build_inception",
    "classifier": "ganscale.metrics.extractors:build_classifier",
})
METRICS: Registry = Registry("image metric", {
    "fid": "ganscale.metrics.image_metrics:fid",
    "kid": "ganscale.metrics.image_metrics:kid",
    "is": "ganscale.metrics.image_metrics:inception_score",
    "pr": "ganscale.metrics.image_metrics:precision_recall",
    "class_acc": "ganscale.metrics.image_metrics:class_accuracy",
    "modes": "ganscale.metrics.image_metrics:mode_coverage",
})
GAMES: Registry = Registry("game", {
    "gan": "ganscale.games.gan:GANGame",
    "discrete": "ganscale.games.discrete:DiscreteGame",
    "seqgan": "ganscale.games.sequence:SeqGANGame",
    "dfgan": "ganscale.games.dfgan:DFGANGame",
    "stackgan": "ganscale.games.stackgan:StackGANGame",
    "stackganpp": "ganscale.games.stackganpp:StackGANppGame",
    "bigan": "ganscale.games.bigan:BiGANGame",
    "ssl_gan": "ganscale.games.ssl_gan:SSLGANGame",
    "infogan": "ganscale.games.infogan:InfoGANGame",
    "crypto": "ganscale.games.crypto:CryptoGame",
})
CONDITIONS: Registry = Registry("condition kind", {
    "none": "ganscale.conditions.kinds:NoCondition",
    "class": "ganscale.conditions.kinds:ClassCondition",
    "text": "ganscale.conditions.text_kind:TextKind",
})

__all__ = ["ARCHS", "CONDITIONS", "DATASETS", "EXTRACTORS", "GAMES", "LOSSES", "METRICS", "Registry"]
