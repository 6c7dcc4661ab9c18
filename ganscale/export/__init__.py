"""Shareable generators: `ganscale export` writes safetensors + config.json + a model card in the
Hugging Face layout (write.py); `from_pretrained(DIR)` reads one back without unpickling (pretrained.py)."""

from ganscale.export.pretrained import from_pretrained

__all__ = ["from_pretrained"]
