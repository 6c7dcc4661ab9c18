"""The model card (README.md) of an exported GAN: a Hugging Face YAML header, then the run's
metrics, the sample grid and how to load it."""

from __future__ import annotations

import json
import math
import numbers


def dataset_name(cfg) -> str:
    if cfg.data.kind == "toy":
        return f"toy-{cfg.data.toy.mixture}"
    urls = cfg.data.shards.urls
    first = urls[0] if isinstance(urls, (list, tuple)) and urls else urls
    return str(first or cfg.data.shards.manifest or cfg.data.kind).rstrip("/").split("/")[-1] or cfg.data.kind


def _yaml_scalar(v) -> str:
    return json.dumps(v)  # JSON scalars are valid YAML scalars (quoted strings, numbers, true/false)


def plain_metrics(metrics: dict) -> dict:
    """The finite numeric entries of final_metrics.json (what the card can show and the Hub can index)."""
    return {k: v for k, v in metrics.items()
            if isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)}


def model_card(cfg, info, iteration: int, metrics: dict, files: dict[str, str], grid: str | None) -> str:
    """README.md text. `files` maps each weights file to what it holds; `grid` is the sample image."""
    task = "unconditional-image-generation" if info.kind == "image" else "other"
    name = cfg.config_name or cfg.run.name or "ganscale-gan"
    data = dataset_name(cfg)
    shown = plain_metrics(metrics)
    lines = ["---", "library_name: ganscale", "tags:", "- gan", f"- {cfg.model.arch}", "- ganscale",
             f"pipeline_tag: {task}"]
    if shown:
        lines += ["model-index:", f"- name: {_yaml_scalar(name)}", "  results:", "  - task:",
                  f"      type: {task}", "    dataset:", f"      name: {_yaml_scalar(data)}",
                  f"      type: {_yaml_scalar(data)}", "    metrics:"]
        for k, v in shown.items():
            if k != "iter":
                lines += [f"    - type: {_yaml_scalar(k)}", f"      value: {_yaml_scalar(v)}"]
    lines += ["---", "", f"# {name}", "",
              f"A `{cfg.model.arch}` GAN trained with ganscale on `{data}` "
              f"({info.kind} data, shape {list(info.shape)}, "
              f"{f'{info.num_classes} classes' if info.num_classes else 'unconditional'}) for {iteration} iterations.",
              ""]
    lines += ["## Files", "", "| file | holds |", "|---|---|"]
    lines += [f"| `{f}` | {what} |" for f, what in files.items()]
    lines += ["| `config.json` | the full training config, data shape, iteration |", ""]
    if shown:
        lines += ["## Metrics", "", "From the run's `final_metrics.json`.", "", "| metric | value |", "|---|---|"]
        lines += [f"| {k} | {v:.6g} |" for k, v in shown.items()]
        lines += [""]
    if grid:
        lines += ["## Samples", "", f"![samples]({grid})", "", "`ganscale sample DIR --num 64 --out grid.png --seed 0` draws them.", ""]
    lines += ["## Use", "", "```bash", "ganscale sample DIR --num 64 --out grid.png --seed 0",
              "ganscale eval DIR eval.num_samples=50000        # image metrics (needs the data for reference)",
              "```", "", "```python", "from ganscale.export import from_pretrained",
              "module = from_pretrained(\"DIR\")", "x = module.sample(64, seed=0)", "```", "",
              "Nothing in this folder is pickled: weights are safetensors, the config is JSON.", ""]
    return "\n".join(lines)
