"""A DCGAN as a second generator family: the supplement's Table 6, "the mapping works for another GAN"
(introduced in 11_other_generators.ipynb).

* `networks`: `DCGANGenerator` (StyleGAN2's generator interface with num_ws = 1: its "w+" is z),
  `DCGANDiscriminator`, `recalibrate_batchnorm`;
* `io`: `save` / `load`, safetensors + JSON (no pickle); `clip2gan.stylegan2.load_generator` reads
  these files too, so `--generator PATH` takes a DCGAN wherever it takes a StyleGAN2;
* `train`: the resumable trainer on the toy faces, `python -m clip2gan.dcgan.train --out runs/dcgan`
  (and its `export` and `eval` subcommands). Not imported here: it pulls in the toy world.

Nothing happens at import time.
"""

from __future__ import annotations

from clip2gan.dcgan.io import FORMAT, load, save
from clip2gan.dcgan.networks import (
    DCGANDiscriminator,
    DCGANGenerator,
    DCGANMapping,
    DCGANSynthesis,
    init_weights,
    recalibrate_batchnorm,
)

__all__ = ["FORMAT", "save", "load", "DCGANGenerator", "DCGANDiscriminator", "DCGANMapping", "DCGANSynthesis",
           "init_weights", "recalibrate_batchnorm"]
