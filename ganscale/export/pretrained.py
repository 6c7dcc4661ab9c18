"""The shareable form of a trained GAN, in the Hugging Face layout, and its loader.

    DIR/model.safetensors          the generator people sample from (G_ema, or G without EMA)
    DIR/generator.safetensors      G, the raw generator         (`ganscale export --with-g`)
    DIR/discriminator.safetensors  D                             (`ganscale export --with-d`)
    DIR/config.json                the run's config, data info, iteration and which file is which
    DIR/README.md                  model card (YAML header, metrics, sample grid)

Reading it never unpickles: JSON and safetensors only.

    from ganscale.export import from_pretrained
    module = from_pretrained("exported/ring")      # a GANModule in eval mode
    x = module.sample(1000, seed=0)                 # same samples as `ganscale sample exported/ring --seed 0`
    G = module.sampler                              # the generator itself, G(z, y)

A folder from the Hub works once downloaded (`huggingface-cli download USER/REPO --local-dir DIR`).
"""

from __future__ import annotations

import json
import os

from ganscale.errors import UserError

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
G_FILE = "generator.safetensors"
D_FILE = "discriminator.safetensors"
FORMAT = "ganscale-export/1"


def save_weights(model, path: str) -> None:
    """`model`'s parameters and buffers as safetensors (shared tensors stored once)."""
    from safetensors.torch import save_model

    from ganscale.utils.files import atomic_path

    with atomic_path(path) as tmp:
        save_model(model, tmp, metadata={"format": "pt"})


def load_weights(model, path: str) -> None:
    """Load safetensors `path` into `model`, every key matching; errors name the file."""
    from safetensors import SafetensorError
    from safetensors.torch import load_model

    try:
        missing, unexpected = load_model(model, path, strict=False)
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise UserError(f"cannot read {path}: {str(e).strip().splitlines()[0][:300]}; "
                        "export the run again (`ganscale export RUN --out DIR`)") from None
    if missing or unexpected:
        raise UserError(f"{path} does not match the generator its config.json describes (missing "
                        f"{sorted(missing)[:4]}, unexpected {sorted(unexpected)[:4]}); export the run again")


def read_config(folder: str) -> dict:
    path = os.path.join(folder, CONFIG_FILE)
    try:
        with open(path) as f:
            data = json.load(f)
    except FileNotFoundError:
        raise UserError(f"{folder} has no {CONFIG_FILE}; pass a folder written by `ganscale export`") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{path} is not valid JSON ({e}); export the run again") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("ganscale"), dict):
        raise UserError(f"{path} was not written by `ganscale export` (expected \"format\": \"{FORMAT}\")")
    return data


def from_pretrained(folder: str):
    """The GANModule stored in an exported folder, weights loaded, in eval mode.

    model.safetensors goes into the generator the module samples from (G_ema when the run had
    one); generator/discriminator.safetensors into G and D when they were exported."""
    from ganscale.train.restore import module_from_meta

    folder = os.fspath(folder)
    data = read_config(folder)
    module = module_from_meta(data["ganscale"], os.path.join(folder, CONFIG_FILE))
    load_weights(module.sampler, os.path.join(folder, WEIGHTS_FILE))
    if module.G_ema is not None:
        module.G_ema.n_averaged.fill_(1)  # a loaded average, not a fresh copy of G
    for name, net in ((G_FILE, module.G), (D_FILE, module.D)):
        if os.path.isfile(os.path.join(folder, name)):
            load_weights(net, os.path.join(folder, name))
    return module.eval()
