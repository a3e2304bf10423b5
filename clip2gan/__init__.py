"""clip2gan: CLIP2GAN rebuilt step by step (see notebooks/00_setup.ipynb).

    from clip2gan import CLIP2GAN
    model = CLIP2GAN.from_pretrained("toyfaces")
"""

__version__ = "0.1.0"
__all__ = ["CLIP2GAN", "__version__"]


def __getattr__(name: str):
    # Lazy: `import clip2gan` stays light (no torch model code runs until CLIP2GAN is asked for).
    if name == "CLIP2GAN":
        from clip2gan.model import CLIP2GAN

        return CLIP2GAN
    raise AttributeError(f"module 'clip2gan' has no attribute {name!r}")
