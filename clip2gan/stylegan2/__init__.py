"""StyleGAN2 in pure PyTorch, interchangeable with NVIDIA's networks (introduced in 02_stylegan2_wplus.ipynb).

CLIP2GAN maps CLIP features into the w+ space of a frozen, pretrained StyleGAN2. This module is that
StyleGAN2: the generator and discriminator of NVIDIA's `stylegan2-ada-pytorch` (`training/networks.py`),
re-implemented here with

* the same module, parameter and buffer names and shapes, so a state dict taken from an NVIDIA
  network pickle loads with `strict=True`, and the same computation, so it gives the same images
  and logits (checked against NVIDIA's own code in fp32 on CPU: max abs error 2.2e-5 at 1024 px, with
  random weights; the bar is 1e-4; `tests/test_stylegan2_golden.py` keeps checking it against
  outputs of NVIDIA's code for a 32 px conditional network). Only float summation order differs:
  demodulation is computed as a matmul, and on CPU the modulated convolutions run batched rather
  than grouped (faster there);
* no compiled extension: `bias_act` and `upfirdn2d` are written with ordinary PyTorch operations, a
  reference version that follows the definition step by step and a faster one that gives the same
  result (see `set_resample_impl`);
* loaders that never execute code from the file: `load_nvidia_pkl` for NVIDIA's pickles
  (stylegan2-ada-pytorch, stylegan3's StyleGAN2 configs, and the TensorFlow-era (G, D, Gs) tuples),
  `load_rosinality` for rosinality/stylegan2-pytorch checkpoints, and pickle-free checkpoints of our
  own (`save` / `load`: safetensors + JSON). A file they cannot read raises one `NvidiaPickleError`
  (or a `ValueError` for the other formats) that names the file and what was expected.

Modules:

* `ops`: shape and channel helpers, `skip_init`, and the ops (bias_act, upfirdn2d, conv2d_resample,
  modulated_conv2d);
* `networks`: the layers, `StyleMappingNetwork` (NVIDIA's `MappingNetwork`, renamed: in this
  project `MappingNetwork` is the CLIP2GAN mapping network M of `clip2gan.mapping`), `Generator`
  and `Discriminator`;
* `unpickle`: the restricted unpickler and the loader's errors;
* `nvidia`: `load_nvidia_pkl`, rebuilding networks from what the pickle recorded;
* `rosinality`: conversion to and from rosinality's layout, `load_rosinality`;
* `io`: `save`, `load` and `load_generator`;
* `files`: finding a file by path or artefact name.

Shapes used throughout: `z: [N, z_dim]`, `c: [N, c_dim]`, `ws: [N, num_ws, w_dim]`,
`img: [N, img_channels, img_resolution, img_resolution]` with values roughly in [-1, 1].
`num_ws` is 18 at 1024 px, 16 at 512 px, 14 at 256 px (two per resolution from 4 px, plus one for the
last toRGB layer). Channels per resolution: `min(channel_base // res, channel_max)`, with
`channel_base` 32768 (config-f) or 16384 (paper256) and `channel_max` 512.

Public API::

    G = Generator(z_dim=512, c_dim=0, w_dim=512, img_resolution=256, img_channels=3)
    ws = G.mapping(z, c, truncation_psi=0.7)          # [N, G.num_ws, 512]
    img = G.synthesis(ws, noise_mode='const')          # [N, 3, 256, 256]
    img = G(z, c)                                      # both steps
    D = Discriminator(c_dim=0, img_resolution=256, img_channels=3)
    logits = D(img, c)                                 # [N, 1]
    nets = load_nvidia_pkl('stylegan2-ffhq-1024')      # dict(G=..., D=..., G_ema=...)

Nothing happens at import time: no download, no compilation, no CUDA query.
"""

from __future__ import annotations

from clip2gan.stylegan2.io import load, load_generator, save
from clip2gan.stylegan2.networks import (
    Conv2dLayer,
    Discriminator,
    DiscriminatorBlock,
    DiscriminatorEpilogue,
    FullyConnectedLayer,
    Generator,
    MinibatchStdLayer,
    StyleMappingNetwork,
    SynthesisBlock,
    SynthesisLayer,
    SynthesisNetwork,
    ToRGBLayer,
    set_resample_impl,
)
from clip2gan.stylegan2.nvidia import load_nvidia_pkl
from clip2gan.stylegan2.ops import (
    assert_shape,
    bias_act,
    channels_dict,
    conv2d_resample,
    downsample2d,
    modulated_conv2d,
    normalize_2nd_moment,
    num_ws_for,
    setup_filter,
    skip_init,
    upfirdn2d,
    upfirdn2d_ref,
    upsample2d,
)
from clip2gan.stylegan2.rosinality import load_rosinality, nvidia_to_rosinality, rosinality_to_nvidia
from clip2gan.stylegan2.unpickle import (
    NotANetworkPickleError,
    NotAPickleError,
    NvidiaPickleError,
    UnsafePickleError,
    UnsupportedNetworkError,
)

__all__ = [
    # helpers and ops
    "assert_shape",
    "channels_dict",
    "num_ws_for",
    "bias_act",
    "setup_filter",
    "upfirdn2d",
    "upfirdn2d_ref",
    "upsample2d",
    "downsample2d",
    "conv2d_resample",
    "modulated_conv2d",
    "normalize_2nd_moment",
    "set_resample_impl",
    "skip_init",
    # networks
    "FullyConnectedLayer",
    "Conv2dLayer",
    "StyleMappingNetwork",
    "SynthesisLayer",
    "ToRGBLayer",
    "SynthesisBlock",
    "SynthesisNetwork",
    "Generator",
    "DiscriminatorBlock",
    "MinibatchStdLayer",
    "DiscriminatorEpilogue",
    "Discriminator",
    # loading and saving
    "NvidiaPickleError",
    "NotAPickleError",
    "NotANetworkPickleError",
    "UnsupportedNetworkError",
    "UnsafePickleError",
    "load_nvidia_pkl",
    "load_generator",
    "rosinality_to_nvidia",
    "nvidia_to_rosinality",
    "load_rosinality",
    "save",
    "load",
]
