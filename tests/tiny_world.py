"""A tiny, random, offline CLIP2GAN world for tests: toy-CLIP architecture and StyleGAN2, both shrunk.

Sizes are chosen for speed, not quality: 16 px images (the smallest StyleGAN2 with two synthesis
blocks, so num_ws > 2), 32-d CLIP embeddings, 1-layer transformers. Weights are random but seeded.
"""

from __future__ import annotations

from pathlib import Path

import torch

from clip2gan.clip_encoder import ClipEncoder
from clip2gan.stylegan2 import Generator
from clip2gan.toy import clip as toyclip

RES = 16


def tiny_clip_config() -> dict:
    return toyclip.model_config(
        embed_dim=32,
        vision_cfg={"image_size": RES, "patch_size": 4, "width": 32, "head_width": 16, "layers": 1},
        text_cfg={"context_length": 24, "width": 32, "heads": 2, "layers": 1},
    )


def tiny_clip(seed: int = 0) -> ClipEncoder:
    torch.manual_seed(seed)
    config = tiny_clip_config()
    return ClipEncoder(toyclip.create_model(config), toyclip.get_tokenizer(config), name="tiny-clip")


def tiny_generator(seed: int = 0, c_dim: int = 0) -> Generator:
    torch.manual_seed(seed)
    G = Generator(z_dim=16, c_dim=c_dim, w_dim=16, img_resolution=RES, img_channels=3,
                  mapping_kwargs={"num_layers": 2}, channel_base=256, channel_max=16)
    return G.eval().requires_grad_(False)


def tiny_training_world(seed: int = 0) -> dict:
    """A `clip2gan.train.build_world`-style dict on the tiny CLIP and a conditional tiny G (labels as the toy G's):
    what the comparison and quality runs train and score in, in seconds."""
    from clip2gan.losses import LPIPSLoss
    from clip2gan.toy.faces import C_DIM
    from clip2gan.train import discriminator_like

    clip, G = tiny_clip(seed), tiny_generator(seed, c_dim=C_DIM)
    return {"clip": clip, "G": G, "D": discriminator_like(G), "identity": None,
            "lpips": LPIPSLoss("clip", clip_encoder=clip), "world": {"profile": "toyfaces", "clip": "tiny"}}


def write_tiny_world(folder: Path, seed: int = 0) -> dict[str, Path]:
    """Save the tiny CLIP and G as files, as the training CLI would find shipped weights."""
    from clip2gan import stylegan2

    folder.mkdir(parents=True, exist_ok=True)
    clip = tiny_clip(seed)
    clip_path = toyclip.save(clip.model, folder / "tiny-clip.safetensors", tiny_clip_config(), half=False)
    g_path = stylegan2.save(tiny_generator(seed), folder / "tiny-g.safetensors")
    return {"clip": Path(clip_path), "generator": Path(g_path)}
