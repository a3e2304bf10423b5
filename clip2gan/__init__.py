"""clip2gan: CLIP2GAN rebuilt step by step (see notebooks/00_setup.ipynb)."""

__version__ = "0.1.0"
