"""Text-to-image families, one file each: StackGAN (stackgan.py), StackGAN++ (stackganpp.py),
DF-GAN (dfgan.py); the shared interface and blocks are in common.py, the configs in config.py
(torch-free: this package imports nothing on its own, so loading a config stays torch-free).
Each `build_<family>` is named in ganscale/registry.py (ARCHS)."""
