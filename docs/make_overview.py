"""Make docs/overview.png (the README figure) from the shipped toy world: renders, reconstructions,
and images generated from each render's caption. Run: .venv/bin/python docs/make_overview.py"""

import torch

from clip2gan import CLIP2GAN
from clip2gan.toy.faces import EVAL_SEED, ToyFaces
from clip2gan.viz import save_grid

model = CLIP2GAN.from_pretrained("toyfaces")
faces = ToyFaces(8, seed=EVAL_SEED)
items = [faces[i] for i in range(8)]
x = torch.stack([it["image"] for it in items])
rec = model.reconstruct(x)
gen = model.generate([it["caption"] for it in items], n_per_prompt=1, seed=0)
save_grid(torch.cat([x, rec, gen]), "docs/overview.png", nrow=8, upscale=3)
