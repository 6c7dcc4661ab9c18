"""Load a RunConfig: dataclass defaults <- YAML files (in order) <- `key=value` overrides.

Every problem is collected before anything is raised, so a user fixes a config in one pass:
unknown keys (with the closest valid names), wrong types, invalid choices (with the valid ones)
and impossible combinations (each component's ``check``) come back as one ``ConfigError``. A
value that could not be merged (unknown key, wrong type) leaves its field at the value it had,
so the checks still run over everything else.

The defaults are the components' own (neutral) ones; `ganscale train` without a config file
adds the default job's YAML (ganscale.config.default_job). Nothing here imports torch.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from typing import Any, Iterable

import yaml
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ganscale.config.schema import RunConfig
from ganscale.errors import ConfigError
from ganscale.utils.files import atomic_write_text


def _leaves(node: Any, prefix: str = "") -> Iterable[tuple[str, Any]]:
    """Flatten nested dicts into (dotted key, value); lists and scalars are leaves."""
    if isinstance(node, dict) and node:
        for key, value in node.items():
            yield from _leaves(value, f"{prefix}.{key}" if prefix else str(key))
    else:
        yield prefix, node


def _nest(dotted: str, value: Any) -> dict:
    out: dict = {}
    cur = out
    parts = dotted.split(".")
    for p in parts[:-1]:
        cur = cur.setdefault(p, {})
    cur[parts[-1]] = value
    return out


def _unknown_key_problem(schema: DictConfig, dotted: str, source: str) -> str | None:
    """None if `dotted` names a field of the schema, else a message with close matches."""
    node: Any = schema
    walked = []
    for part in dotted.split("."):
        if isinstance(node, DictConfig) and part in node:
            node = node._get_node(part)
            walked.append(part)
            continue
        if isinstance(node, DictConfig):
            choices = [str(k) for k in node.keys()]
            where = ".".join(walked) or "the top level"
            close = difflib.get_close_matches(part, choices, n=3)
            hint = f"did you mean {', '.join(repr('.'.join(walked + [c])) for c in close)}? " if close else ""
            return (
                f"{source}: unknown key {dotted!r} ({part!r} is not a field of {where}); "
                f"{hint}valid keys there: {', '.join(choices)}"
            )
        return f"{source}: unknown key {dotted!r} ({'.'.join(walked)} is a value, not a section)"
    return None


def _merge_leaves(cfg: DictConfig, data: dict, source: str, problems: list[str]) -> DictConfig:
    for dotted, value in _leaves(data):
        if not dotted:
            continue
        unknown = _unknown_key_problem(cfg, dotted, source)
        if unknown:
            problems.append(unknown)
            continue
        try:
            cfg = OmegaConf.merge(cfg, OmegaConf.create(_nest(dotted, value)))
        except OmegaConfBaseException as e:
            msg = str(e).splitlines()[0]
            problems.append(f"{source}: {dotted}={value!r}: {msg}")
    return cfg


def _read_yaml(path: str, problems: list[str]) -> dict:
    if not os.path.isfile(path):
        problems.append(f"config file {path!r} does not exist; pass a path to a YAML file (see configs/)")
        return {}
    try:
        with open(path) as f:
            data = yaml.safe_load(f) or {}
    except yaml.YAMLError as e:
        problems.append(f"{path}: not valid YAML ({str(e).splitlines()[0]}); fix the syntax")
        return {}
    if not isinstance(data, dict):
        problems.append(f"{path}: the top level must be a mapping of keys, got {type(data).__name__}")
        return {}
    return data


def _parse_override(item: str, problems: list[str]) -> dict:
    if "=" not in item or item.startswith("="):
        problems.append(f"override {item!r} is not of the form key=value (e.g. trainer.max_iters=2000)")
        return {}
    key, raw = item.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw != "" else ""
    except yaml.YAMLError:
        value = raw
    return _nest(key.strip(), value)


def _check_tree(obj: Any, root: RunConfig, path: str, problems: list[str]) -> None:
    if not dataclasses.is_dataclass(obj):
        return
    check = getattr(obj, "check", None)
    if callable(check):
        for p in check(root):
            problems.append(f"{path + '.' if path else ''}{p}")
    for f in dataclasses.fields(obj):
        _check_tree(getattr(obj, f.name), root, f"{path}.{f.name}" if path else f.name, problems)


def _validated(cfg: DictConfig, problems: list[str]) -> RunConfig:
    """Dataclasses of the merged config, after every component's check; raises one ConfigError
    with the merge problems found so far and the checks' problems."""
    try:
        obj: RunConfig = OmegaConf.to_object(cfg)  # type: ignore[assignment]
    except OmegaConfBaseException as e:  # e.g. a required (???) value left unset
        raise ConfigError([*problems, str(e).splitlines()[0]]) from None
    _check_tree(obj, obj, "", problems)
    if problems:
        raise ConfigError(problems)
    return obj


def load_config(paths: Iterable[str] = (), overrides: Iterable[str] = (), schema: type = RunConfig) -> Any:
    """Compose the dataclass defaults, the YAML files and the dotlist; validate; return dataclasses.
    `schema` is the root dataclass (RunConfig; a tool with its own config passes its own)."""
    problems: list[str] = []
    cfg = OmegaConf.structured(schema)
    for path in paths:
        cfg = _merge_leaves(cfg, _read_yaml(path, problems), path, problems)
    for item in overrides:
        cfg = _merge_leaves(cfg, _parse_override(item, problems), "override", problems)
    return _validated(cfg, problems)


def to_yaml(cfg: RunConfig) -> str:
    return OmegaConf.to_yaml(OmegaConf.structured(cfg))


def to_dict(cfg: RunConfig) -> dict:
    return OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True)  # type: ignore[return-value]


def save_config(cfg: RunConfig, path: str) -> None:
    atomic_write_text(path, to_yaml(cfg))


__all__ = ["load_config", "save_config", "to_yaml", "to_dict", "ListConfig"]


def config_from_dict(data: dict) -> RunConfig:
    """A RunConfig from a plain dict (as stored in checkpoints and run directories), validated like
    a YAML file.

    A stored config is complete when it is saved, so the defaults it is merged onto only fill
    fields added to the schema since: the components' neutral defaults, which are the behaviour
    that existed before such a field (e.g. optim.*.schedule=constant)."""
    problems: list[str] = []
    cfg = _merge_leaves(OmegaConf.structured(RunConfig), data, "stored config", problems)
    return _validated(cfg, problems)
