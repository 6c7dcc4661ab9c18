"""Text-to-image families, one file each: StackGAN (stackgan.py), StackGAN++ (stackganpp.py),
DF-GAN (dfgan.py); the shared interface and blocks are in common.py, the configs in config.py."""

from ganscale.nets.text2img.dfgan import build_dfgan
from ganscale.nets.text2img.stackgan import build_stackgan
from ganscale.nets.text2img.stackganpp import build_stackganpp

__all__ = ["build_dfgan", "build_stackgan", "build_stackganpp"]
