"""The tiny CLIP2GAN shared by the generation, editing, widget and metric tests (tiny_world's CLIP and G)."""

from __future__ import annotations

import torch
from tiny_world import tiny_clip, tiny_generator

from clip2gan.mapping import MappingNetwork
from clip2gan.model import CLIP2GAN


def tiny_model(w_avg_seed: int | None = None) -> CLIP2GAN:
    """16 px, 6 w+ rows, 32-d CLIP. M has 2 layers × 32 (M is not under test) and last_init_scale=1,
    so an untrained M still maps different features to visibly different images; `w_avg_seed` gives
    M a random non-zero w_avg (the tiny G's is zero), so that truncation is visible."""
    G = tiny_generator()
    M = MappingNetwork.for_generator(G, in_dim=32, n_layers=2, hidden_dim=32, last_init_scale=1.0)
    if w_avg_seed is not None:
        M.set_w_avg(torch.randn(G.w_dim, generator=torch.Generator().manual_seed(w_avg_seed)))
    return CLIP2GAN(tiny_clip(), M, G).eval()
