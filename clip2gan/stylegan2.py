"""StyleGAN2 in pure PyTorch, interchangeable with NVIDIA's networks (introduced in 02_stylegan2_wplus.ipynb).

CLIP2GAN maps CLIP features into the w+ space of a frozen, pretrained StyleGAN2. This module is that
StyleGAN2: the generator and discriminator of NVIDIA's `stylegan2-ada-pytorch` (`training/networks.py`),
re-implemented here with

* the same module, parameter and buffer names and shapes, so a state dict taken from an NVIDIA
  network pickle loads with `strict=True`, and the same computation, so it gives the same images
  and logits (checked against NVIDIA's own code in fp32 on CPU: max abs error 2.2e-5 at 1024 px, with
  random weights; the bar is 1e-4). Only float summation order differs: demodulation is computed as
  a matmul, and on CPU the modulated convolutions run batched rather than grouped (faster there);
* no compiled extension: `bias_act` and `upfirdn2d` are written with ordinary PyTorch operations, a
  reference version that follows the definition step by step and a faster one that gives the same
  result (see `set_resample_impl`);
* loaders that never execute code from the file: `load_nvidia_pkl` for NVIDIA's pickles
  (stylegan2-ada-pytorch, stylegan3's StyleGAN2 configs, and the TensorFlow-era (G, D, Gs) tuples),
  `load_rosinality` for rosinality/stylegan2-pytorch checkpoints, and pickle-free checkpoints of our
  own (`save` / `load`: safetensors + JSON).

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

import argparse
import contextlib
import contextvars
import copy
import functools
import inspect
import io
import math
import os
import pickle
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Iterator, NamedTuple, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F

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
    "MappingNetwork",
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
    "UnsafePickleError",
    "load_nvidia_pkl",
    "load_generator",
    "rosinality_to_nvidia",
    "nvidia_to_rosinality",
    "load_rosinality",
    "save",
    "load",
]

PathLike = Union[str, "os.PathLike[str]"]

# =================================================================================================
# Small helpers
# =================================================================================================


def assert_shape(tensor: torch.Tensor, ref_shape: Sequence[Optional[int]], name: str = "tensor") -> None:
    """Check `tensor.shape` against `ref_shape`, where `None` matches any size (02_stylegan2_wplus.ipynb).

    Raises ValueError with both shapes, e.g. "ws: expected [N, 14, 512], got [2, 18, 512]".
    """
    want = ", ".join("N" if i == 0 and r is None else ("*" if r is None else str(r)) for i, r in enumerate(ref_shape))
    if not isinstance(tensor, torch.Tensor):
        raise ValueError(f"{name}: expected a tensor of shape [{want}], got {type(tensor).__name__}")
    shape = list(tensor.shape)
    ok = len(shape) == len(ref_shape) and all(r is None or int(s) == int(r) for s, r in zip(shape, ref_shape))
    if not ok:
        raise ValueError(f"{name}: expected shape [{want}], got {shape}")


def channels_dict(img_resolution: int, channel_base: int = 32768, channel_max: int = 512) -> dict[int, int]:
    """Channels per resolution, `{4: ..., 8: ..., ..., img_resolution: ...}` (02_stylegan2_wplus.ipynb).

    `min(channel_base // res, channel_max)`: 512 everywhere up to 64 px and then halving with config-f
    (channel_base 32768) at 1024 px; paper256 uses channel_base 16384.
    """
    _check_resolution(img_resolution)
    log2 = int(math.log2(img_resolution))
    return {2**i: min(channel_base // 2**i, channel_max) for i in range(2, log2 + 1)}


def num_ws_for(img_resolution: int) -> int:
    """Number of w vectors the synthesis network consumes: `2 * log2(res) - 2` (18 at 1024 px, 14 at 256 px).

    One per convolution layer (1 at 4 px, 2 at every higher resolution) plus one for the final toRGB.
    Introduced in 02_stylegan2_wplus.ipynb.
    """
    _check_resolution(img_resolution)
    return 2 * int(math.log2(img_resolution)) - 2


def _check_resolution(img_resolution: int) -> None:
    if not (img_resolution >= 4 and img_resolution & (img_resolution - 1) == 0):
        raise ValueError(f"img_resolution must be a power of two >= 4, got {img_resolution}")


def _records_init(init: Callable) -> Callable:
    """Remember the constructor arguments (as NVIDIA's persistence does) so a network can be rebuilt
    from a JSON config: `_init_args` / `_init_kwargs` exactly as given."""

    @functools.wraps(init)
    def wrapper(self, *args, **kwargs):
        init(self, *args, **kwargs)
        self._init_args = copy.deepcopy(args)
        self._init_kwargs = copy.deepcopy(kwargs)

    return wrapper


_SKIP_INIT = contextvars.ContextVar("clip2gan_stylegan2_skip_init", default=False)


@contextlib.contextmanager
def skip_init() -> Iterator[None]:
    """Build networks without random initialisation (uninitialised memory, global RNG untouched),
    for when every tensor is about to be loaded from a checkpoint. Introduced in 02_stylegan2_wplus.ipynb.

        with skip_init():
            G = Generator(**kwargs)
        G.load_state_dict(state, strict=True)
    """
    token = _SKIP_INIT.set(True)
    try:
        yield
    finally:
        _SKIP_INIT.reset(token)


def _randn(shape: Sequence[int]) -> torch.Tensor:
    """N(0, 1) initial values, or uninitialised memory inside `skip_init()`."""
    return torch.empty(shape) if _SKIP_INIT.get() else torch.randn(shape)


def _full_init_kwargs(module: torch.nn.Module) -> dict[str, Any]:
    """The constructor arguments of `module` as one keyword dict (positional ones named)."""
    sig = inspect.signature(type(module).__init__)
    bound = sig.bind(module, *module._init_args, **module._init_kwargs)
    kwargs = dict(bound.arguments)
    kwargs.pop("self")
    for name, param in sig.parameters.items():
        if param.kind is inspect.Parameter.VAR_KEYWORD and name in kwargs:
            kwargs.update(kwargs.pop(name))
    return kwargs


# =================================================================================================
# Ops: bias + activation, FIR resampling (upfirdn2d), convolution with resampling, modulated conv.
# Pure PyTorch equivalents of NVIDIA's custom CUDA ops; same arguments, same results.
# =================================================================================================


class _Activation(NamedTuple):
    func: Callable[[torch.Tensor, float], torch.Tensor]
    def_alpha: float
    def_gain: float


ACTIVATIONS: dict[str, _Activation] = {
    "linear": _Activation(lambda x, alpha: x, 0.0, 1.0),
    "relu": _Activation(lambda x, alpha: F.relu(x), 0.0, math.sqrt(2)),
    "lrelu": _Activation(lambda x, alpha: F.leaky_relu(x, alpha), 0.2, math.sqrt(2)),
    "tanh": _Activation(lambda x, alpha: torch.tanh(x), 0.0, 1.0),
    "sigmoid": _Activation(lambda x, alpha: torch.sigmoid(x), 0.0, 1.0),
    "elu": _Activation(lambda x, alpha: F.elu(x), 0.0, 1.0),
    "selu": _Activation(lambda x, alpha: F.selu(x), 0.0, 1.0),
    "softplus": _Activation(lambda x, alpha: F.softplus(x), 0.0, 1.0),
    "swish": _Activation(lambda x, alpha: torch.sigmoid(x) * x, 0.0, math.sqrt(2)),
}


def bias_act(
    x: torch.Tensor,
    b: Optional[torch.Tensor] = None,
    dim: int = 1,
    act: str = "linear",
    alpha: Optional[float] = None,
    gain: Optional[float] = None,
    clamp: Optional[float] = None,
) -> torch.Tensor:
    """Add bias `b` along `dim`, apply activation `act`, multiply by `gain`, clamp to [-clamp, clamp].

    Equivalent of NVIDIA's fused `bias_act` op; `gain=None` uses the activation's default gain
    (sqrt(2) for relu/lrelu, which keeps the signal's second moment). Introduced in 02_stylegan2_wplus.ipynb.
    """
    spec = ACTIVATIONS[act]
    alpha = float(alpha if alpha is not None else spec.def_alpha)
    gain = float(gain if gain is not None else spec.def_gain)
    if b is not None:
        if b.ndim != 1 or b.shape[0] != x.shape[dim]:
            raise ValueError(f"bias_act: bias of shape {list(b.shape)} does not fit dim {dim} of {list(x.shape)}")
        x = x + b.reshape([-1 if i == dim else 1 for i in range(x.ndim)])
    x = spec.func(x, alpha)
    if gain != 1:
        x = x * gain
    if clamp is not None and clamp >= 0:
        x = x.clamp(-clamp, clamp)
    return x


def normalize_2nd_moment(x: torch.Tensor, dim: int = 1, eps: float = 1e-8) -> torch.Tensor:
    """Scale `x` to unit mean square along `dim` (StyleGAN's 'pixel norm' of z; 02_stylegan2_wplus.ipynb)."""
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


def setup_filter(
    f: Any = None,
    device: Union[str, torch.device, None] = None,
    normalize: bool = True,
    flip_filter: bool = False,
    gain: float = 1,
    separable: Optional[bool] = None,
) -> torch.Tensor:
    """A float32 FIR filter for `upfirdn2d`: a list of taps becomes their outer product (2-D, `[fh, fw]`),
    normalised to unit DC gain; 1-D filters with 8 or more taps stay separable (`[taps]`).

    `[1, 3, 3, 1]` (StyleGAN2's blur) becomes a 4x4 binomial filter summing to 1.
    Introduced in 02_stylegan2_wplus.ipynb.
    """
    if f is None:
        f = 1
    f = torch.as_tensor(f, dtype=torch.float32)
    if f.ndim == 0:
        f = f[None]
    if f.ndim not in (1, 2) or f.numel() == 0:
        raise ValueError("setup_filter: expected a non-empty 1-D or 2-D filter")
    if separable is None:
        separable = f.ndim == 1 and f.numel() >= 8
    if f.ndim == 1 and not separable:
        f = f[:, None] * f[None, :]  # outer product
    if normalize:
        f = f / f.sum()
    if flip_filter:
        f = f.flip(list(range(f.ndim)))
    f = f * (gain ** (f.ndim / 2))
    if device is not None:
        f = f.to(device=device)
    return f


def _pair(v: Union[int, Sequence[int]]) -> tuple[int, int]:
    if isinstance(v, int):
        return v, v
    a, b = v
    return int(a), int(b)


def _parse_padding(padding: Union[int, Sequence[int]]) -> tuple[int, int, int, int]:
    """`p`, `[px, py]` or `[px0, px1, py0, py1]` -> (px0, px1, py0, py1)."""
    if isinstance(padding, int):
        return padding, padding, padding, padding
    padding = [int(p) for p in padding]
    if len(padding) == 2:
        return padding[0], padding[0], padding[1], padding[1]
    px0, px1, py0, py1 = padding
    return px0, px1, py0, py1


def _filter_size(f: Optional[torch.Tensor]) -> tuple[int, int]:
    """(fw, fh) of a filter; (1, 1) for None."""
    if f is None:
        return 1, 1
    return int(f.shape[-1]), int(f.shape[0])


def upfirdn2d_ref(
    x: torch.Tensor,
    f: Optional[torch.Tensor],
    up: Union[int, Sequence[int]] = 1,
    down: Union[int, Sequence[int]] = 1,
    padding: Union[int, Sequence[int]] = 0,
    flip_filter: bool = False,
    gain: float = 1,
) -> torch.Tensor:
    """Reference FIR resampling, step by step as defined (02_stylegan2_wplus.ipynb):

    1. upsample by inserting `up - 1` zeros after every pixel;
    2. pad with zeros (`padding`, with respect to the upsampled image; negative values crop);
    3. convolve every channel with the 2-D filter `f` (a true convolution unless `flip_filter`),
       keeping only outputs whose footprint lies inside the padded image;
    4. keep every `down`-th pixel.

    x: [N, C, H, W] -> [N, C, (H*up + px0 + px1 - fh + 1) / down, ...] (rounded up).
    """
    assert_shape(x, [None, None, None, None], "x")
    if f is None:
        f = torch.ones([1, 1], dtype=torch.float32, device=x.device)
    batch, channels, in_h, in_w = x.shape
    upx, upy = _pair(up)
    downx, downy = _pair(down)
    px0, px1, py0, py1 = _parse_padding(padding)

    # 1. Zero insertion: [N, C, H, 1, W, 1] -> pad the unit axes -> [N, C, H*upy, W*upx].
    x = x.reshape([batch, channels, in_h, 1, in_w, 1])
    x = F.pad(x, [0, upx - 1, 0, 0, 0, upy - 1])
    x = x.reshape([batch, channels, in_h * upy, in_w * upx])
    # 2. Pad (positive part), then crop (negative part).
    x = F.pad(x, [max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)])
    x = x[:, :, max(-py0, 0) : x.shape[2] - max(-py1, 0), max(-px0, 0) : x.shape[3] - max(-px1, 0)]
    # 3. Depthwise convolution; conv2d correlates, so flip the filter to convolve.
    f = f * (gain ** (f.ndim / 2))
    f = f.to(x.dtype)
    if not flip_filter:
        f = f.flip(list(range(f.ndim)))
    f = f[None, None].repeat([channels, 1] + [1] * f.ndim)
    if f.ndim == 4:
        x = F.conv2d(x, f, groups=channels)
    else:  # separable: along W then along H
        x = F.conv2d(x, f.unsqueeze(2), groups=channels)
        x = F.conv2d(x, f.unsqueeze(3), groups=channels)
    # 4. Decimate.
    return x[:, :, ::downy, ::downx]


def _upfirdn_1axis_or_2d(
    x: torch.Tensor, k: torch.Tensor, up: tuple[int, int], down: tuple[int, int], pad: tuple[int, int, int, int]
) -> torch.Tensor:
    """Fast upfirdn with a convolution kernel `k` ([kh, kw], already flipped/scaled) on x [N, C, H, W].

    Upsampling uses a strided transposed convolution (no zero-stuffed intermediate), downsampling a
    strided convolution (no discarded outputs). Result equals `upfirdn2d_ref`.
    """
    channels = x.shape[1]
    kh, kw = k.shape
    (upx, upy), (downx, downy) = up, down
    px0, px1, py0, py1 = pad
    if upx > 1 or upy > 1:
        # conv_transpose2d with kernel k == full convolution of the zero-stuffed input with k.
        # Its output index o corresponds to reference output index o - (k - 1) + p0.
        w = k[None, None].expand(channels, 1, kh, kw).contiguous()
        x = F.conv_transpose2d(x, w, stride=(upy, upx), groups=channels)
        x = _pad_or_crop(x, [px0 - kw + 1, upx + px1 - kw, py0 - kh + 1, upy + py1 - kh])
        if downx > 1 or downy > 1:
            x = x[:, :, ::downy, ::downx]
        return x
    # No upsampling: pad / crop, then correlate with the flipped kernel at stride `down`.
    w = k.flip([0, 1])[None, None].expand(channels, 1, kh, kw).contiguous()
    if px0 == px1 >= 0 and py0 == py1 >= 0:  # let the convolution pad (no padded copy)
        return F.conv2d(x, w, stride=(downy, downx), padding=(py0, px0), groups=channels)
    return F.conv2d(_pad_or_crop(x, [px0, px1, py0, py1]), w, stride=(downy, downx), groups=channels)


def _pad_or_crop(x: torch.Tensor, pad: Sequence[int]) -> torch.Tensor:
    """F.pad semantics ([x0, x1, y0, y1], negative = crop) with crops as views, not copies."""
    px0, px1, py0, py1 = pad
    h, w = x.shape[2], x.shape[3]
    x = x[:, :, max(-py0, 0) : h - max(-py1, 0), max(-px0, 0) : w - max(-px1, 0)]
    if max(px0, px1, py0, py1) > 0:
        x = F.pad(x, [max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)])
    return x


def upfirdn2d(
    x: torch.Tensor,
    f: Optional[torch.Tensor],
    up: Union[int, Sequence[int]] = 1,
    down: Union[int, Sequence[int]] = 1,
    padding: Union[int, Sequence[int]] = 0,
    flip_filter: bool = False,
    gain: float = 1,
    impl: str = "fast",
) -> torch.Tensor:
    """Pad, upsample, FIR-filter and downsample a batch of images: same arguments and result as
    `upfirdn2d_ref` (`impl='ref'`), computed without the zero-stuffed or full-resolution
    intermediates (`impl='fast'`, the default). Introduced in 02_stylegan2_wplus.ipynb.
    """
    if impl == "ref":
        return upfirdn2d_ref(x, f, up=up, down=down, padding=padding, flip_filter=flip_filter, gain=gain)
    if impl != "fast":
        raise ValueError(f"impl must be 'fast' or 'ref', got {impl!r}")
    if f is None:
        f = torch.ones([1, 1], dtype=torch.float32, device=x.device)
    upx, upy = _pair(up)
    downx, downy = _pair(down)
    px0, px1, py0, py1 = _parse_padding(padding)
    f = (f * (gain ** (f.ndim / 2))).to(x.dtype)
    if flip_filter:  # reference correlates with f instead of convolving: convolve with flip(f)
        f = f.flip(list(range(f.ndim)))
    if f.ndim == 2:
        return _upfirdn_1axis_or_2d(x, f, (upx, upy), (downx, downy), (px0, px1, py0, py1))
    # Separable filter: x axis, then y axis.
    x = _upfirdn_1axis_or_2d(x, f[None, :], (upx, 1), (downx, 1), (px0, px1, 0, 0))
    return _upfirdn_1axis_or_2d(x, f[:, None], (1, upy), (1, downy), (0, 0, py0, py1))


def upsample2d(
    x: torch.Tensor, f: Optional[torch.Tensor], up: int = 2, padding: Union[int, Sequence[int]] = 0,
    flip_filter: bool = False, gain: float = 1, impl: str = "fast",
) -> torch.Tensor:
    """Upsample by `up` with FIR filter `f`, output `[N, C, H*up, W*up]` (plus `padding`).
    Introduced in 02_stylegan2_wplus.ipynb."""
    upx, upy = _pair(up)
    px0, px1, py0, py1 = _parse_padding(padding)
    fw, fh = _filter_size(f)
    p = [px0 + (fw + upx - 1) // 2, px1 + (fw - upx) // 2, py0 + (fh + upy - 1) // 2, py1 + (fh - upy) // 2]
    return upfirdn2d(x, f, up=up, padding=p, flip_filter=flip_filter, gain=gain * upx * upy, impl=impl)


def downsample2d(
    x: torch.Tensor, f: Optional[torch.Tensor], down: int = 2, padding: Union[int, Sequence[int]] = 0,
    flip_filter: bool = False, gain: float = 1, impl: str = "fast",
) -> torch.Tensor:
    """Downsample by `down` with FIR filter `f`, output `[N, C, H/down, W/down]` (plus `padding`).
    Introduced in 02_stylegan2_wplus.ipynb."""
    downx, downy = _pair(down)
    px0, px1, py0, py1 = _parse_padding(padding)
    fw, fh = _filter_size(f)
    p = [px0 + (fw - downx + 1) // 2, px1 + (fw - downx) // 2, py0 + (fh - downy + 1) // 2, py1 + (fh - downy) // 2]
    return upfirdn2d(x, f, down=down, padding=p, flip_filter=flip_filter, gain=gain, impl=impl)


def _conv2d(x: torch.Tensor, w: torch.Tensor, stride: int = 1, padding: Any = 0, groups: int = 1,
            transpose: bool = False, flip_weight: bool = True) -> torch.Tensor:
    """conv2d / conv_transpose2d; `flip_weight=False` makes it a true convolution."""
    if not flip_weight:
        w = w.flip([2, 3])
    if transpose:
        return F.conv_transpose2d(x, w, stride=stride, padding=padding, groups=groups)
    return F.conv2d(x, w, stride=stride, padding=padding, groups=groups)


def conv2d_resample(
    x: torch.Tensor,
    w: torch.Tensor,
    f: Optional[torch.Tensor] = None,
    up: int = 1,
    down: int = 1,
    padding: Union[int, Sequence[int]] = 0,
    groups: int = 1,
    flip_weight: bool = True,
    flip_filter: bool = False,
    impl: str = "fast",
) -> torch.Tensor:
    """2-D convolution with optional FIR upsampling / downsampling (02_stylegan2_wplus.ipynb).

    x: [N, C_in, H, W], w: [C_out, C_in // groups, kh, kw] -> [N, C_out, H*up/down, W*up/down].
    `padding` is with respect to the upsampled image and applied once, before the operations.

    impl='fast' (default) fuses the resampling into the convolution: upsampling runs as a strided
    transposed convolution followed by the blur, downsampling as blur followed by a strided
    convolution, so the 3x3 convolution runs at the low resolution. impl='ref' is the naive order:
    zero-stuff + blur to full resolution, convolve there, then blur + decimate; 4x the convolution
    work, the same result (up to float rounding).
    """
    if not (x.ndim == 4 and w.ndim == 4 and w.dtype == x.dtype):
        raise ValueError("conv2d_resample: x and w must be 4-D tensors of the same dtype")
    out_channels, in_channels_per_group, kh, kw = (int(s) for s in w.shape)
    fw, fh = _filter_size(f)
    px0, px1, py0, py1 = _parse_padding(padding)

    # Adjust padding to account for up/downsampling.
    if up > 1:
        px0 += (fw + up - 1) // 2
        px1 += (fw - up) // 2
        py0 += (fh + up - 1) // 2
        py1 += (fh - up) // 2
    if down > 1:
        px0 += (fw - down + 1) // 2
        px1 += (fw - down) // 2
        py0 += (fh - down + 1) // 2
        py1 += (fh - down) // 2

    if impl == "ref":
        x = upfirdn2d_ref(x, f if up > 1 else None, up=up, padding=[px0, px1, py0, py1], gain=up**2,
                          flip_filter=flip_filter)
        x = _conv2d(x, w, groups=groups, flip_weight=flip_weight)
        if down > 1:
            x = upfirdn2d_ref(x, f, down=down, flip_filter=flip_filter)
        return x
    if impl != "fast":
        raise ValueError(f"impl must be 'fast' or 'ref', got {impl!r}")

    # 1x1 convolution with downsampling only: downsample first, then convolve (fewer pixels).
    if kw == 1 and kh == 1 and (down > 1 and up == 1):
        x = upfirdn2d(x, f, down=down, padding=[px0, px1, py0, py1], flip_filter=flip_filter)
        return _conv2d(x, w, groups=groups, flip_weight=flip_weight)

    # 1x1 convolution with upsampling only: convolve first, then upsample.
    if kw == 1 and kh == 1 and (up > 1 and down == 1):
        x = _conv2d(x, w, groups=groups, flip_weight=flip_weight)
        return upfirdn2d(x, f, up=up, padding=[px0, px1, py0, py1], gain=up**2, flip_filter=flip_filter)

    # Downsampling only: blur, then strided convolution.
    if down > 1 and up == 1:
        x = upfirdn2d(x, f, padding=[px0, px1, py0, py1], flip_filter=flip_filter)
        return _conv2d(x, w, stride=down, groups=groups, flip_weight=flip_weight)

    # Upsampling (optionally followed by downsampling): strided transposed convolution, then blur.
    if up > 1:
        if groups == 1:
            w = w.transpose(0, 1)
        else:
            w = w.reshape(groups, out_channels // groups, in_channels_per_group, kh, kw)
            w = w.transpose(1, 2)
            w = w.reshape(groups * in_channels_per_group, out_channels // groups, kh, kw)
        px0 -= kw - 1
        px1 -= kw - up
        py0 -= kh - 1
        py1 -= kh - up
        pxt = max(min(-px0, -px1), 0)
        pyt = max(min(-py0, -py1), 0)
        x = _conv2d(x, w, stride=up, padding=[pyt, pxt], groups=groups, transpose=True, flip_weight=not flip_weight)
        x = upfirdn2d(x, f, padding=[px0 + pxt, px1 + pxt, py0 + pyt, py1 + pyt], gain=up**2, flip_filter=flip_filter)
        if down > 1:
            x = upfirdn2d(x, f, down=down, flip_filter=flip_filter)
        return x

    # No resampling, symmetric non-negative padding: a plain convolution.
    if up == 1 and down == 1 and px0 == px1 and py0 == py1 and px0 >= 0 and py0 >= 0:
        return _conv2d(x, w, padding=[py0, px0], groups=groups, flip_weight=flip_weight)

    # Anything else: the generic order.
    x = upfirdn2d(x, f if up > 1 else None, up=up, padding=[px0, px1, py0, py1], gain=up**2, flip_filter=flip_filter)
    x = _conv2d(x, w, groups=groups, flip_weight=flip_weight)
    if down > 1:
        x = upfirdn2d(x, f, down=down, flip_filter=flip_filter)
    return x


def modulated_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    styles: torch.Tensor,
    noise: Optional[torch.Tensor] = None,
    up: int = 1,
    down: int = 1,
    padding: int = 0,
    resample_filter: Optional[torch.Tensor] = None,
    demodulate: bool = True,
    flip_weight: bool = True,
    fused_modconv: bool = True,
    impl: str = "fast",
) -> torch.Tensor:
    """StyleGAN2's weight-modulated convolution (02_stylegan2_wplus.ipynb).

    x: [N, I, H, W], weight: [O, I, kh, kw], styles: [N, I] -> [N, O, H', W'].
    Each sample's kernel is `weight * styles[n]` (per input channel), divided by its L2 norm per
    output channel when `demodulate`. `fused_modconv=True` runs all samples as one grouped
    convolution (groups=N); False scales activations before and after a shared convolution.
    """
    batch_size = x.shape[0]
    out_channels, in_channels, kh, kw = weight.shape
    assert_shape(weight, [out_channels, in_channels, kh, kw], "weight")
    assert_shape(x, [batch_size, in_channels, None, None], "x")
    assert_shape(styles, [batch_size, in_channels], "styles")

    # Pre-normalise inputs to avoid fp16 overflow.
    if x.dtype == torch.float16 and demodulate:
        weight = weight * (1 / math.sqrt(in_channels * kh * kw) / weight.norm(float("inf"), dim=[1, 2, 3], keepdim=True))
        styles = styles / styles.norm(float("inf"), dim=1, keepdim=True)

    # Demodulation coefficients 1 / ||weight * styles[n]|| per output channel. NVIDIA sums the squares
    # of the per-sample weights [N, O, I, kh, kw]; the same sum is a matmul, sum_i s[n,i]^2 * sum_k w[o,i,k]^2,
    # which never builds that tensor (equal up to float summation order).
    dcoefs = None
    if demodulate:
        dcoefs = (styles.square() @ weight.square().sum(dim=[2, 3]).t() + 1e-8).rsqrt()  # [N, O]
    w = None
    if fused_modconv:
        w = weight.unsqueeze(0)  # [N, O, I, kh, kw]
        w = w * styles.reshape(batch_size, 1, -1, 1, 1)  # [N, O, I, kh, kw]
    if demodulate and fused_modconv:
        w = w * dcoefs.reshape(batch_size, -1, 1, 1, 1)  # [N, O, I, kh, kw]

    # Not fused: scale activations before and after one shared convolution.
    if not fused_modconv:
        x = x * styles.to(x.dtype).reshape(batch_size, -1, 1, 1)
        x = conv2d_resample(x, weight.to(x.dtype), f=resample_filter, up=up, down=down, padding=padding,
                            flip_weight=flip_weight, impl=impl)
        if demodulate and noise is not None:
            x = torch.addcmul(noise.to(x.dtype), x, dcoefs.to(x.dtype).reshape(batch_size, -1, 1, 1))
        elif demodulate:
            x = x * dcoefs.to(x.dtype).reshape(batch_size, -1, 1, 1)
        elif noise is not None:
            x = x.add_(noise.to(x.dtype))
        return x

    # Fused: the batch becomes the group axis of one grouped convolution.
    x = x.reshape(1, -1, *x.shape[2:])  # [1, N*I, H, W]
    w = w.reshape(-1, in_channels, kh, kw)  # [N*O, I, kh, kw]
    x = conv2d_resample(x, w.to(x.dtype), f=resample_filter, up=up, down=down, padding=padding,
                        groups=batch_size, flip_weight=flip_weight, impl=impl)
    x = x.reshape(batch_size, -1, *x.shape[2:])  # [N, O, H', W']
    if noise is not None:
        x = x.add_(noise)
    return x


# =================================================================================================
# Layers and networks. Names, attributes and parameter layout follow NVIDIA's training/networks.py.
# =================================================================================================


class FullyConnectedLayer(torch.nn.Module):
    """Dense layer with equalised learning rate: weights stored as N(0, 1) / lr_multiplier and scaled
    by `lr_multiplier / sqrt(in_features)` at run time. x: [N, in] -> [N, out]. (02_stylegan2_wplus.ipynb)"""

    @_records_init
    def __init__(self, in_features: int, out_features: int, bias: bool = True, activation: str = "linear",
                 lr_multiplier: float = 1, bias_init: float = 0):
        super().__init__()
        self.activation = activation
        self.weight = torch.nn.Parameter(_randn([out_features, in_features]) / lr_multiplier)
        self.bias = torch.nn.Parameter(torch.full([out_features], float(bias_init))) if bias else None
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight.to(x.dtype) * self.weight_gain
        b = self.bias
        if b is not None:
            b = b.to(x.dtype)
            if self.bias_gain != 1:
                b = b * self.bias_gain
        if self.activation == "linear" and b is not None:
            return torch.addmm(b.unsqueeze(0), x, w.t())
        x = x.matmul(w.t())
        return bias_act(x, b, act=self.activation)


class Conv2dLayer(torch.nn.Module):
    """Convolution with equalised learning rate, optional FIR up/downsampling, bias, activation and
    clamping. x: [N, in, H, W] -> [N, out, H*up/down, W*up/down]. (02_stylegan2_wplus.ipynb)"""

    @_records_init
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, bias: bool = True,
                 activation: str = "linear", up: int = 1, down: int = 1, resample_filter: Sequence[int] = (1, 3, 3, 1),
                 conv_clamp: Optional[float] = None, channels_last: bool = False, trainable: bool = True):
        super().__init__()
        self.activation = activation
        self.up = up
        self.down = down
        self.conv_clamp = conv_clamp
        self.register_buffer("resample_filter", setup_filter(list(resample_filter)))
        self.padding = kernel_size // 2
        self.weight_gain = 1 / math.sqrt(in_channels * (kernel_size**2))
        self.act_gain = ACTIVATIONS[activation].def_gain
        self.resample_impl = "fast"

        memory_format = torch.channels_last if channels_last else torch.contiguous_format
        weight = _randn([out_channels, in_channels, kernel_size, kernel_size]).to(memory_format=memory_format)
        bias_t = torch.zeros([out_channels]) if bias else None
        if trainable:
            self.weight = torch.nn.Parameter(weight)
            self.bias = torch.nn.Parameter(bias_t) if bias_t is not None else None
        else:
            self.register_buffer("weight", weight)
            if bias_t is not None:
                self.register_buffer("bias", bias_t)
            else:
                self.bias = None

    def forward(self, x: torch.Tensor, gain: float = 1) -> torch.Tensor:
        w = self.weight * self.weight_gain
        b = self.bias.to(x.dtype) if self.bias is not None else None
        flip_weight = self.up == 1  # slightly faster
        x = conv2d_resample(x, w.to(x.dtype), f=self.resample_filter, up=self.up, down=self.down,
                            padding=self.padding, flip_weight=flip_weight, impl=self.resample_impl)
        act_gain = self.act_gain * gain
        act_clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return bias_act(x, b, act=self.activation, gain=act_gain, clamp=act_clamp)


class MappingNetwork(torch.nn.Module):
    """StyleGAN's mapping network z (+ label c) -> w, broadcast to `num_ws` copies (02_stylegan2_wplus.ipynb).

    z: [N, z_dim] (normalised to unit mean square), c: [N, c_dim] (embedded by `embed`, normalised,
    concatenated) -> `num_layers` lrelu layers -> w: [N, w_dim], returned as ws: [N, num_ws, w_dim]
    (or [N, w_dim] when num_ws is None). `w_avg` tracks the mean w during training (decay
    `w_avg_beta`) and is the centre of the truncation trick: w' = w_avg + psi * (w - w_avg).
    """

    @_records_init
    def __init__(self, z_dim: int, c_dim: int, w_dim: int, num_ws: Optional[int], num_layers: int = 8,
                 embed_features: Optional[int] = None, layer_features: Optional[int] = None,
                 activation: str = "lrelu", lr_multiplier: float = 0.01, w_avg_beta: Optional[float] = 0.995):
        super().__init__()
        self.z_dim = z_dim
        self.c_dim = c_dim
        self.w_dim = w_dim
        self.num_ws = num_ws
        self.num_layers = num_layers
        self.w_avg_beta = w_avg_beta

        if embed_features is None:
            embed_features = w_dim
        if c_dim == 0:
            embed_features = 0
        if layer_features is None:
            layer_features = w_dim
        features_list = [z_dim + embed_features] + [layer_features] * (num_layers - 1) + [w_dim]

        if c_dim > 0:
            self.embed = FullyConnectedLayer(c_dim, embed_features)
        for idx in range(num_layers):
            layer = FullyConnectedLayer(features_list[idx], features_list[idx + 1], activation=activation,
                                        lr_multiplier=lr_multiplier)
            setattr(self, f"fc{idx}", layer)

        if num_ws is not None and w_avg_beta is not None:
            self.register_buffer("w_avg", torch.zeros([w_dim]))

    def forward(self, z: Optional[torch.Tensor], c: Optional[torch.Tensor], truncation_psi: float = 1,
                truncation_cutoff: Optional[int] = None, skip_w_avg_update: bool = False,
                update_emas: Optional[bool] = None) -> torch.Tensor:
        """ws: [N, num_ws, w_dim]. `w_avg` is updated in training mode (stylegan2-ada rule) unless
        `skip_w_avg_update`; `update_emas=True/False` overrides that (stylegan3 rule)."""
        x = None
        if self.z_dim > 0:
            assert_shape(z, [None, self.z_dim], "z")
            x = normalize_2nd_moment(z.to(torch.float32))
        if self.c_dim > 0:
            assert_shape(c, [None, self.c_dim], "c")
            y = normalize_2nd_moment(self.embed(c.to(torch.float32)))
            x = torch.cat([x, y], dim=1) if x is not None else y

        for idx in range(self.num_layers):
            x = getattr(self, f"fc{idx}")(x)

        # Moving average of w.
        update = (self.training and not skip_w_avg_update) if update_emas is None else update_emas
        if self.w_avg_beta is not None and update:
            self.w_avg.copy_(x.detach().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))

        # Broadcast: [N, w_dim] -> [N, num_ws, w_dim].
        if self.num_ws is not None:
            x = x.unsqueeze(1).repeat([1, self.num_ws, 1])

        # Truncation trick.
        if truncation_psi != 1:
            if self.w_avg_beta is None:
                raise ValueError("truncation needs w_avg, but this mapping network does not track it")
            if self.num_ws is None or truncation_cutoff is None:
                x = self.w_avg.lerp(x, truncation_psi)
            else:
                x[:, :truncation_cutoff] = self.w_avg.lerp(x[:, :truncation_cutoff], truncation_psi)
        return x


_NOISE_MODES = ("random", "const", "none")
_FP16_DEVICE_TYPES = ("cuda",)  # where num_fp16_res takes effect (float16 kernels are slow or missing on CPU)


class SynthesisLayer(torch.nn.Module):
    """One modulated 3x3 convolution + noise + bias + lrelu, optionally upsampling x2 (02_stylegan2_wplus.ipynb).

    x: [N, in, res/up, res/up], w: [N, w_dim] -> [N, out, res, res]. `affine` turns w into the
    per-input-channel styles; `noise_const` is the fixed noise image used by noise_mode='const'.
    """

    @_records_init
    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, kernel_size: int = 3,
                 up: int = 1, use_noise: bool = True, activation: str = "lrelu",
                 resample_filter: Sequence[int] = (1, 3, 3, 1), conv_clamp: Optional[float] = None,
                 channels_last: bool = False):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.w_dim = w_dim
        self.resolution = resolution
        self.up = up
        self.use_noise = use_noise
        self.activation = activation
        self.conv_clamp = conv_clamp
        self.register_buffer("resample_filter", setup_filter(list(resample_filter)))
        self.padding = kernel_size // 2
        self.act_gain = ACTIVATIONS[activation].def_gain
        self.resample_impl = "fast"

        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.weight = torch.nn.Parameter(
            _randn([out_channels, in_channels, kernel_size, kernel_size]).to(memory_format=memory_format))
        if use_noise:
            self.register_buffer("noise_const", _randn([resolution, resolution]))
            self.noise_strength = torch.nn.Parameter(torch.zeros([]))
        self.bias = torch.nn.Parameter(torch.zeros([out_channels]))

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise_mode: str = "random", fused_modconv: bool = True,
                gain: float = 1) -> torch.Tensor:
        if noise_mode not in _NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {_NOISE_MODES}, got {noise_mode!r}")
        in_resolution = self.resolution // self.up
        assert_shape(x, [None, self.weight.shape[1], in_resolution, in_resolution], "x")
        styles = self.affine(w)  # [N, in_channels]

        noise = None
        if self.use_noise and noise_mode == "random":
            noise = torch.randn([x.shape[0], 1, self.resolution, self.resolution], device=x.device) * self.noise_strength
        if self.use_noise and noise_mode == "const":
            noise = self.noise_const * self.noise_strength

        flip_weight = self.up == 1  # slightly faster
        x = modulated_conv2d(x, self.weight, styles, noise=noise, up=self.up, padding=self.padding,
                             resample_filter=self.resample_filter, flip_weight=flip_weight,
                             fused_modconv=fused_modconv, impl=self.resample_impl)
        act_gain = self.act_gain * gain
        act_clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return bias_act(x, self.bias.to(x.dtype), act=self.activation, gain=act_gain, clamp=act_clamp)


class ToRGBLayer(torch.nn.Module):
    """Modulated 1x1 convolution (no demodulation) from features to colours. x: [N, in, H, W] ->
    [N, img_channels, H, W]. (02_stylegan2_wplus.ipynb)"""

    @_records_init
    def __init__(self, in_channels: int, out_channels: int, w_dim: int, kernel_size: int = 1,
                 conv_clamp: Optional[float] = None, channels_last: bool = False):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.w_dim = w_dim
        self.conv_clamp = conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.weight = torch.nn.Parameter(
            _randn([out_channels, in_channels, kernel_size, kernel_size]).to(memory_format=memory_format))
        self.bias = torch.nn.Parameter(torch.zeros([out_channels]))
        self.weight_gain = 1 / math.sqrt(in_channels * (kernel_size**2))

    def forward(self, x: torch.Tensor, w: torch.Tensor, fused_modconv: bool = True) -> torch.Tensor:
        styles = self.affine(w) * self.weight_gain
        x = modulated_conv2d(x, self.weight, styles, demodulate=False, fused_modconv=fused_modconv)
        return bias_act(x, self.bias.to(x.dtype), clamp=self.conv_clamp)


class SynthesisBlock(torch.nn.Module):
    """One resolution of the synthesis network: (const input at 4 px | upsampling conv0) + conv1 + toRGB,
    with the image skip connection upsampled from the previous block (02_stylegan2_wplus.ipynb).

    x: [N, in, res/2, res/2] (None at 4 px), img: [N, C, res/2, res/2] (None at 4 px),
    ws: [N, num_conv + num_torgb, w_dim] -> (x: [N, out, res, res], img: [N, C, res, res]).
    `fused_modconv_default` (CUDA): None = stylegan2-ada rule (fused in eval mode when fp32 or batch 1),
    True/False, or 'inference_only' (stylegan3 repository). On CPU the modulated convolutions run
    unfused (scaled activations, one batched convolution), which `python -m clip2gan.bench
    stylegan2` measures as the faster path there; an explicit `fused_modconv=` argument always wins.
    Both paths compute the same function (they agree to float rounding).
    """

    @_records_init
    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, img_channels: int,
                 is_last: bool, architecture: str = "skip", resample_filter: Sequence[int] = (1, 3, 3, 1),
                 conv_clamp: Optional[float] = None, use_fp16: bool = False, fp16_channels_last: bool = False,
                 fused_modconv_default: Union[bool, str, None] = None, **layer_kwargs):
        if architecture not in ("orig", "skip", "resnet"):
            raise ValueError(f"architecture must be 'orig', 'skip' or 'resnet', got {architecture!r}")
        super().__init__()
        self.in_channels = in_channels
        self.w_dim = w_dim
        self.resolution = resolution
        self.img_channels = img_channels
        self.is_last = is_last
        self.architecture = architecture
        self.use_fp16 = use_fp16
        self.channels_last = use_fp16 and fp16_channels_last
        self.fused_modconv_default = fused_modconv_default
        self.register_buffer("resample_filter", setup_filter(list(resample_filter)))
        self.resample_impl = "fast"
        self.num_conv = 0
        self.num_torgb = 0

        if in_channels == 0:
            self.const = torch.nn.Parameter(_randn([out_channels, resolution, resolution]))

        if in_channels != 0:
            self.conv0 = SynthesisLayer(in_channels, out_channels, w_dim=w_dim, resolution=resolution, up=2,
                                        resample_filter=resample_filter, conv_clamp=conv_clamp,
                                        channels_last=self.channels_last, **layer_kwargs)
            self.num_conv += 1

        self.conv1 = SynthesisLayer(out_channels, out_channels, w_dim=w_dim, resolution=resolution,
                                    conv_clamp=conv_clamp, channels_last=self.channels_last, **layer_kwargs)
        self.num_conv += 1

        if is_last or architecture == "skip":
            self.torgb = ToRGBLayer(out_channels, img_channels, w_dim=w_dim, conv_clamp=conv_clamp,
                                    channels_last=self.channels_last)
            self.num_torgb += 1

        if in_channels != 0 and architecture == "resnet":
            self.skip = Conv2dLayer(in_channels, out_channels, kernel_size=1, bias=False, up=2,
                                    resample_filter=resample_filter, channels_last=self.channels_last)

    def forward(self, x: Optional[torch.Tensor], img: Optional[torch.Tensor], ws: torch.Tensor,
                force_fp32: bool = False, fused_modconv: Optional[bool] = None, noise_mode: str = "random"):
        assert_shape(ws, [None, self.num_conv + self.num_torgb, self.w_dim], "ws")
        w_iter = iter(ws.unbind(dim=1))
        if ws.device.type not in _FP16_DEVICE_TYPES:  # fp16 only on CUDA
            force_fp32 = True
        dtype = torch.float16 if self.use_fp16 and not force_fp32 else torch.float32
        memory_format = torch.channels_last if self.channels_last and not force_fp32 else torch.contiguous_format
        if fused_modconv is None:
            mode = self.fused_modconv_default
            if ws.device.type != "cuda":
                fused_modconv = False  # on CPU one batched convolution is faster at every batch size
            elif mode is None:
                fused_modconv = (not self.training) and (dtype == torch.float32 or int(ws.shape[0]) == 1)
            elif mode == "inference_only":
                fused_modconv = not self.training
            else:
                fused_modconv = bool(mode)

        # Input.
        if self.in_channels == 0:
            x = self.const.to(dtype=dtype, memory_format=memory_format)
            x = x.unsqueeze(0).repeat([ws.shape[0], 1, 1, 1])
        else:
            assert_shape(x, [None, self.in_channels, self.resolution // 2, self.resolution // 2], "x")
            x = x.to(dtype=dtype, memory_format=memory_format)

        # Main layers.
        if self.in_channels == 0:
            x = self.conv1(x, next(w_iter), fused_modconv=fused_modconv, noise_mode=noise_mode)
        elif self.architecture == "resnet":
            y = self.skip(x, gain=math.sqrt(0.5))
            x = self.conv0(x, next(w_iter), fused_modconv=fused_modconv, noise_mode=noise_mode)
            x = self.conv1(x, next(w_iter), fused_modconv=fused_modconv, noise_mode=noise_mode, gain=math.sqrt(0.5))
            x = y.add_(x)
        else:
            x = self.conv0(x, next(w_iter), fused_modconv=fused_modconv, noise_mode=noise_mode)
            x = self.conv1(x, next(w_iter), fused_modconv=fused_modconv, noise_mode=noise_mode)

        # ToRGB and the image skip connection.
        if img is not None:
            assert_shape(img, [None, self.img_channels, self.resolution // 2, self.resolution // 2], "img")
            img = upsample2d(img, self.resample_filter, impl=self.resample_impl)
        if self.is_last or self.architecture == "skip":
            y = self.torgb(x, next(w_iter), fused_modconv=fused_modconv)
            y = y.to(dtype=torch.float32, memory_format=torch.contiguous_format)
            img = img.add_(y) if img is not None else y

        return x, img


class SynthesisNetwork(torch.nn.Module):
    """ws: [N, num_ws, w_dim] -> img: [N, img_channels, img_resolution, img_resolution] (02_stylegan2_wplus.ipynb).

    Blocks `b4, b8, ..., b{img_resolution}`; block `b{res}` reads ws rows
    [w_idx, w_idx + num_conv + num_torgb) and consecutive blocks share one row (a block's toRGB w is
    the next block's conv0 w), which is why num_ws = 2 * log2(res) - 2.
    """

    @_records_init
    def __init__(self, w_dim: int, img_resolution: int, img_channels: int, channel_base: int = 32768,
                 channel_max: int = 512, num_fp16_res: int = 0, **block_kwargs):
        _check_resolution(img_resolution)
        super().__init__()
        self.w_dim = w_dim
        self.img_resolution = img_resolution
        self.img_resolution_log2 = int(np.log2(img_resolution))
        self.img_channels = img_channels
        self.num_fp16_res = num_fp16_res
        self.block_resolutions = [2**i for i in range(2, self.img_resolution_log2 + 1)]
        channels = {res: min(channel_base // res, channel_max) for res in self.block_resolutions}
        fp16_resolution = max(2 ** (self.img_resolution_log2 + 1 - num_fp16_res), 8)

        self.num_ws = 0
        for res in self.block_resolutions:
            in_channels = channels[res // 2] if res > 4 else 0
            out_channels = channels[res]
            use_fp16 = res >= fp16_resolution
            is_last = res == self.img_resolution
            block = SynthesisBlock(in_channels, out_channels, w_dim=w_dim, resolution=res, img_channels=img_channels,
                                   is_last=is_last, use_fp16=use_fp16, **block_kwargs)
            self.num_ws += block.num_conv
            if is_last:
                self.num_ws += block.num_torgb
            setattr(self, f"b{res}", block)

    def forward(self, ws: torch.Tensor, noise_mode: str = "const", force_fp32: bool = False,
                fused_modconv: Optional[bool] = None) -> torch.Tensor:
        """ws: [N, num_ws, w_dim] -> img [N, C, H, W] (float32, roughly [-1, 1]).

        noise_mode: 'const' (each layer's fixed `noise_const`; deterministic; the default here),
        'random' (fresh noise; what NVIDIA's training loop uses: pass it when training G) or 'none'.
        """
        assert_shape(ws, [None, self.num_ws, self.w_dim], "ws")
        ws = ws.to(torch.float32)
        block_ws = []
        w_idx = 0
        for res in self.block_resolutions:
            block = getattr(self, f"b{res}")
            block_ws.append(ws.narrow(1, w_idx, block.num_conv + block.num_torgb))
            w_idx += block.num_conv

        x = img = None
        for res, cur_ws in zip(self.block_resolutions, block_ws):
            block = getattr(self, f"b{res}")
            x, img = block(x, img, cur_ws, force_fp32=force_fp32, fused_modconv=fused_modconv, noise_mode=noise_mode)
        return img


class Generator(torch.nn.Module):
    """StyleGAN2 generator: `mapping` (z, c -> ws) and `synthesis` (ws -> img) (02_stylegan2_wplus.ipynb).

    Constructor as NVIDIA's: `Generator(z_dim, c_dim, w_dim, img_resolution, img_channels,
    mapping_kwargs={...}, synthesis_kwargs={...})`; extra keyword arguments are synthesis arguments
    (the stylegan3 repository's form, e.g. `channel_base=16384, num_fp16_res=4, conv_clamp=256`).
    `num_fp16_res` is honoured on CUDA only; on CPU everything runs in float32.
    """

    @_records_init
    def __init__(self, z_dim: int, c_dim: int, w_dim: int, img_resolution: int, img_channels: int,
                 mapping_kwargs: Optional[dict] = None, synthesis_kwargs: Optional[dict] = None, **extra_synthesis_kwargs):
        super().__init__()
        synthesis_kwargs = {**(synthesis_kwargs or {}), **extra_synthesis_kwargs}
        self.z_dim = z_dim
        self.c_dim = c_dim
        self.w_dim = w_dim
        self.img_resolution = img_resolution
        self.img_channels = img_channels
        self.synthesis = SynthesisNetwork(w_dim=w_dim, img_resolution=img_resolution, img_channels=img_channels,
                                          **synthesis_kwargs)
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, num_ws=self.num_ws, **(mapping_kwargs or {}))

    @property
    def init_kwargs(self) -> dict[str, Any]:
        """All constructor arguments as one JSON-friendly dict (what `save` records)."""
        return _full_init_kwargs(self)

    def forward(self, z: torch.Tensor, c: Optional[torch.Tensor] = None, truncation_psi: float = 1,
                truncation_cutoff: Optional[int] = None, noise_mode: str = "const", **synthesis_kwargs) -> torch.Tensor:
        """z: [N, z_dim], c: [N, c_dim] (None allowed when c_dim == 0) -> img [N, C, H, W]."""
        if c is None and self.c_dim == 0:
            c = z.new_zeros([z.shape[0], 0])
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)
        return self.synthesis(ws, noise_mode=noise_mode, **synthesis_kwargs)


class DiscriminatorBlock(torch.nn.Module):
    """One resolution of the discriminator: (fromRGB) + conv0 + downsampling conv1, with a residual
    1x1 skip in the 'resnet' architecture. x: [N, tmp, res, res] -> [N, out, res/2, res/2]. (02_stylegan2_wplus.ipynb)"""

    @_records_init
    def __init__(self, in_channels: int, tmp_channels: int, out_channels: int, resolution: int, img_channels: int,
                 first_layer_idx: int, architecture: str = "resnet", activation: str = "lrelu",
                 resample_filter: Sequence[int] = (1, 3, 3, 1), conv_clamp: Optional[float] = None,
                 use_fp16: bool = False, fp16_channels_last: bool = False, freeze_layers: int = 0):
        if in_channels not in (0, tmp_channels):
            raise ValueError("in_channels must be 0 or tmp_channels")
        if architecture not in ("orig", "skip", "resnet"):
            raise ValueError(f"architecture must be 'orig', 'skip' or 'resnet', got {architecture!r}")
        super().__init__()
        self.in_channels = in_channels
        self.resolution = resolution
        self.img_channels = img_channels
        self.first_layer_idx = first_layer_idx
        self.architecture = architecture
        self.use_fp16 = use_fp16
        self.channels_last = use_fp16 and fp16_channels_last
        self.register_buffer("resample_filter", setup_filter(list(resample_filter)))
        self.resample_impl = "fast"

        self.num_layers = 0

        def trainable() -> bool:  # Freeze-D: the first `freeze_layers` layers hold buffers, not parameters.
            layer_idx = self.first_layer_idx + self.num_layers
            self.num_layers += 1
            return layer_idx >= freeze_layers

        if in_channels == 0 or architecture == "skip":
            self.fromrgb = Conv2dLayer(img_channels, tmp_channels, kernel_size=1, activation=activation,
                                       trainable=trainable(), conv_clamp=conv_clamp, channels_last=self.channels_last)
        self.conv0 = Conv2dLayer(tmp_channels, tmp_channels, kernel_size=3, activation=activation,
                                 trainable=trainable(), conv_clamp=conv_clamp, channels_last=self.channels_last)
        self.conv1 = Conv2dLayer(tmp_channels, out_channels, kernel_size=3, activation=activation, down=2,
                                 trainable=trainable(), resample_filter=resample_filter, conv_clamp=conv_clamp,
                                 channels_last=self.channels_last)
        if architecture == "resnet":
            self.skip = Conv2dLayer(tmp_channels, out_channels, kernel_size=1, bias=False, down=2,
                                    trainable=trainable(), resample_filter=resample_filter,
                                    channels_last=self.channels_last)

    def forward(self, x: Optional[torch.Tensor], img: Optional[torch.Tensor], force_fp32: bool = False):
        if (x if x is not None else img).device.type not in _FP16_DEVICE_TYPES:  # fp16 only on CUDA
            force_fp32 = True
        dtype = torch.float16 if self.use_fp16 and not force_fp32 else torch.float32
        memory_format = torch.channels_last if self.channels_last and not force_fp32 else torch.contiguous_format

        if x is not None:
            assert_shape(x, [None, self.in_channels, self.resolution, self.resolution], "x")
            x = x.to(dtype=dtype, memory_format=memory_format)

        if self.in_channels == 0 or self.architecture == "skip":
            assert_shape(img, [None, self.img_channels, self.resolution, self.resolution], "img")
            img = img.to(dtype=dtype, memory_format=memory_format)
            y = self.fromrgb(img)
            x = x + y if x is not None else y
            img = downsample2d(img, self.resample_filter, impl=self.resample_impl) if self.architecture == "skip" else None

        if self.architecture == "resnet":
            y = self.skip(x, gain=math.sqrt(0.5))
            x = self.conv0(x)
            x = self.conv1(x, gain=math.sqrt(0.5))
            x = y.add_(x)
        else:
            x = self.conv0(x)
            x = self.conv1(x)
        return x, img


class MinibatchStdLayer(torch.nn.Module):
    """Append the standard deviation across groups of `group_size` samples as `num_channels` extra
    feature maps: [N, C, H, W] -> [N, C + num_channels, H, W]. N must be divisible by the group size.
    (02_stylegan2_wplus.ipynb)"""

    @_records_init
    def __init__(self, group_size: Optional[int], num_channels: int = 1):
        super().__init__()
        self.group_size = group_size
        self.num_channels = num_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        N, C, H, W = x.shape
        G = min(int(self.group_size), N) if self.group_size is not None else N
        if N % G:
            raise ValueError(f"MinibatchStdLayer: batch {N} is not divisible by the group size {G}")
        Fc = self.num_channels
        c = C // Fc
        y = x.reshape(G, -1, Fc, c, H, W)  # [G, n, F, c, H, W] n groups of G samples, F groups of c channels
        y = y - y.mean(dim=0)  # subtract the group mean
        y = y.square().mean(dim=0)  # [n, F, c, H, W] variance over the group
        y = (y + 1e-8).sqrt()  # standard deviation
        y = y.mean(dim=[2, 3, 4])  # [n, F] average over channels and pixels
        y = y.reshape(-1, Fc, 1, 1)  # [n, F, 1, 1]
        y = y.repeat(G, 1, H, W)  # [N, F, H, W]
        return torch.cat([x, y], dim=1)  # [N, C + F, H, W]


class DiscriminatorEpilogue(torch.nn.Module):
    """The 4x4 head of the discriminator: minibatch stddev, conv, fc, out; with labels, the output is
    projected onto the mapped label (`cmap`). x: [N, C, 4, 4] -> [N, 1]. (02_stylegan2_wplus.ipynb)"""

    @_records_init
    def __init__(self, in_channels: int, cmap_dim: int, resolution: int, img_channels: int,
                 architecture: str = "resnet", mbstd_group_size: Optional[int] = 4, mbstd_num_channels: int = 1,
                 activation: str = "lrelu", conv_clamp: Optional[float] = None):
        if architecture not in ("orig", "skip", "resnet"):
            raise ValueError(f"architecture must be 'orig', 'skip' or 'resnet', got {architecture!r}")
        super().__init__()
        self.in_channels = in_channels
        self.cmap_dim = cmap_dim
        self.resolution = resolution
        self.img_channels = img_channels
        self.architecture = architecture

        if architecture == "skip":
            self.fromrgb = Conv2dLayer(img_channels, in_channels, kernel_size=1, activation=activation)
        self.mbstd = MinibatchStdLayer(group_size=mbstd_group_size, num_channels=mbstd_num_channels) if mbstd_num_channels > 0 else None
        self.conv = Conv2dLayer(in_channels + mbstd_num_channels, in_channels, kernel_size=3, activation=activation,
                                conv_clamp=conv_clamp)
        self.fc = FullyConnectedLayer(in_channels * (resolution**2), in_channels, activation=activation)
        self.out = FullyConnectedLayer(in_channels, 1 if cmap_dim == 0 else cmap_dim)

    def forward(self, x: torch.Tensor, img: Optional[torch.Tensor], cmap: Optional[torch.Tensor],
                force_fp32: bool = False) -> torch.Tensor:
        assert_shape(x, [None, self.in_channels, self.resolution, self.resolution], "x")
        x = x.to(dtype=torch.float32, memory_format=torch.contiguous_format)
        if self.architecture == "skip":
            assert_shape(img, [None, self.img_channels, self.resolution, self.resolution], "img")
            img = img.to(dtype=torch.float32, memory_format=torch.contiguous_format)
            x = x + self.fromrgb(img)
        if self.mbstd is not None:
            x = self.mbstd(x)
        x = self.conv(x)
        x = self.fc(x.flatten(1))
        x = self.out(x)  # [N, cmap_dim or 1]
        if self.cmap_dim > 0:  # projection discriminator
            assert_shape(cmap, [None, self.cmap_dim], "cmap")
            x = (x * cmap).sum(dim=1, keepdim=True) * (1 / np.sqrt(self.cmap_dim))
        return x


class Discriminator(torch.nn.Module):
    """StyleGAN2 discriminator (resnet by default): img [N, C, R, R], c [N, c_dim] -> logits [N, 1].

    Blocks `b{R}, ..., b8` halve the resolution; `b4` is the epilogue; with labels, `mapping` embeds
    c into `cmap`. Introduced in 02_stylegan2_wplus.ipynb.
    """

    @_records_init
    def __init__(self, c_dim: int, img_resolution: int, img_channels: int, architecture: str = "resnet",
                 channel_base: int = 32768, channel_max: int = 512, num_fp16_res: int = 0,
                 conv_clamp: Optional[float] = None, cmap_dim: Optional[int] = None,
                 block_kwargs: Optional[dict] = None, mapping_kwargs: Optional[dict] = None,
                 epilogue_kwargs: Optional[dict] = None):
        _check_resolution(img_resolution)
        super().__init__()
        self.c_dim = c_dim
        self.img_resolution = img_resolution
        self.img_resolution_log2 = int(np.log2(img_resolution))
        self.img_channels = img_channels
        self.block_resolutions = [2**i for i in range(self.img_resolution_log2, 2, -1)]
        channels = {res: min(channel_base // res, channel_max) for res in self.block_resolutions + [4]}
        fp16_resolution = max(2 ** (self.img_resolution_log2 + 1 - num_fp16_res), 8)

        if cmap_dim is None:
            cmap_dim = channels[4]
        if c_dim == 0:
            cmap_dim = 0

        common_kwargs = dict(img_channels=img_channels, architecture=architecture, conv_clamp=conv_clamp)
        cur_layer_idx = 0
        for res in self.block_resolutions:
            in_channels = channels[res] if res < img_resolution else 0
            block = DiscriminatorBlock(in_channels, channels[res], channels[res // 2], resolution=res,
                                       first_layer_idx=cur_layer_idx, use_fp16=res >= fp16_resolution,
                                       **(block_kwargs or {}), **common_kwargs)
            setattr(self, f"b{res}", block)
            cur_layer_idx += block.num_layers
        if c_dim > 0:
            self.mapping = MappingNetwork(z_dim=0, c_dim=c_dim, w_dim=cmap_dim, num_ws=None, w_avg_beta=None,
                                          **(mapping_kwargs or {}))
        self.b4 = DiscriminatorEpilogue(channels[4], cmap_dim=cmap_dim, resolution=4, **(epilogue_kwargs or {}),
                                        **common_kwargs)

    @property
    def init_kwargs(self) -> dict[str, Any]:
        """All constructor arguments as one JSON-friendly dict (what `save` records)."""
        return _full_init_kwargs(self)

    def forward(self, img: torch.Tensor, c: Optional[torch.Tensor] = None, force_fp32: bool = False) -> torch.Tensor:
        """img: [N, img_channels, R, R], c: [N, c_dim] (None allowed when c_dim == 0) -> logits [N, 1]."""
        assert_shape(img, [None, self.img_channels, self.img_resolution, self.img_resolution], "img")
        x = None
        for res in self.block_resolutions:
            x, img = getattr(self, f"b{res}")(x, img, force_fp32=force_fp32)
        cmap = None
        if self.c_dim > 0:
            assert_shape(c, [img.shape[0] if img is not None else x.shape[0], self.c_dim], "c")
            cmap = self.mapping(None, c)
        return self.b4(x, img, cmap)


def set_resample_impl(module: torch.nn.Module, impl: str) -> torch.nn.Module:
    """Switch every layer of `module` to 'fast' (fused resampling, the default) or 'ref' (naive:
    zero-stuffing and full-resolution convolutions). Same results; used by the benchmark.
    Introduced in 02_stylegan2_wplus.ipynb."""
    if impl not in ("fast", "ref"):
        raise ValueError(f"impl must be 'fast' or 'ref', got {impl!r}")
    for m in module.modules():
        if hasattr(m, "resample_impl"):
            m.resample_impl = impl
    return module


# =================================================================================================
# NVIDIA network pickles, read without executing anything from the file.
# =================================================================================================
#
# A stylegan2-ada-pytorch snapshot is `pickle.dump(dict(G=..., D=..., G_ema=..., augment_pipe=...,
# training_set_kwargs=...))`. Every network is a `torch_utils.persistence` object, pickled as
# `_reconstruct_persistent_obj(meta)` with meta = dict(type='class', version=6, module_src=<the whole
# networks.py source>, class_name='Generator', state=<the module's __dict__>). NVIDIA's unpickler
# `exec`s module_src; ours reads `state` as data: `_parameters` and `_buffers` give the state dict,
# `_modules` the nested objects, `_init_kwargs` the constructor arguments, and the remaining
# attributes (resolution, conv_clamp, ...) are checked against the rebuilt network.


class UnsafePickleError(pickle.UnpicklingError):
    """A pickle asked for something outside the allow-list of NVIDIA network pickles; nothing ran.

    Introduced in 02_stylegan2_wplus.ipynb."""


class _PersistentRecord:
    """What `torch_utils.persistence._reconstruct_persistent_obj(meta)` would have rebuilt, kept as data."""

    __slots__ = ("class_name", "module_src", "state", "version")

    def __init__(self, meta: Any):
        if not isinstance(meta, dict) or meta.get("type") != "class" or not isinstance(meta.get("class_name"), str):
            raise UnsafePickleError("malformed persistent object (expected NVIDIA persistence metadata)")
        state = meta.get("state")
        if not isinstance(state, dict):
            raise UnsafePickleError(f"persistent object {meta['class_name']!r} has no state dict")
        self.class_name: str = meta["class_name"]
        self.module_src: str = meta.get("module_src") or ""
        self.state: dict = state
        self.version = meta.get("version")

    def __repr__(self) -> str:
        return f"<NVIDIA persistent {self.class_name} (not executed)>"


class _EasyDict(dict):
    """Stand-in for `dnnlib.util.EasyDict` (a dict with attribute access); no behaviour needed."""

    def _safe_setstate(self, state: Any) -> None:
        if state:
            raise UnsafePickleError("unexpected instance state on dnnlib.util.EasyDict")


_NUMPY_DTYPES = {"b1", "i1", "u1", "i2", "u2", "i4", "u4", "i8", "u8", "f2", "f4", "f8", "c8", "c16"}


class _NumpyDtype:
    """Stand-in for `numpy.dtype(name, align, copy)` + its pickled state; only plain numeric dtypes."""

    def __init__(self, name: Any, *args: Any):
        if name not in _NUMPY_DTYPES:
            raise UnsafePickleError(f"numpy dtype {name!r} is not allowed (plain numeric dtypes only)")
        self.name = name
        self.byteorder = "="

    def _safe_setstate(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) > 1 and state[1] in ("<", ">", "|", "="):
            self.byteorder = state[1]

    def to_numpy(self) -> np.dtype:
        order = "" if self.byteorder in ("|", "=") else self.byteorder
        return np.dtype(order + self.name)


def _numpy_scalar(dtype: Any, data: Any = None) -> Any:
    """`numpy.core.multiarray.scalar(dtype, bytes)` -> a Python number."""
    if not isinstance(dtype, _NumpyDtype) or not isinstance(data, bytes):
        raise UnsafePickleError("numpy scalar with unexpected arguments")
    return np.frombuffer(data, dtype=dtype.to_numpy(), count=1)[0].item()


def _load_storage_from_bytes(data: Any) -> Any:
    """`torch.storage._load_from_bytes`, but with `weights_only=True` (torch's own uses False)."""
    if not isinstance(data, bytes):
        raise UnsafePickleError("tensor storage is not a byte string")
    try:
        storage = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise UnsafePickleError(f"a tensor storage inside the pickle is not plain tensor data: {err}") from None
    if not isinstance(storage, (torch.TypedStorage, torch.UntypedStorage)):
        raise UnsafePickleError(f"a tensor storage inside the pickle decoded to {type(storage).__name__}")
    return storage


def _rebuild_tensor_v2(storage: Any, storage_offset: Any, size: Any, stride: Any, requires_grad: Any = False,
                       backward_hooks: Any = None, metadata: Any = None) -> torch.Tensor:
    if not isinstance(storage, (torch.TypedStorage, torch.UntypedStorage)):
        raise UnsafePickleError("tensor rebuilt from something that is not a storage")
    if backward_hooks:
        raise UnsafePickleError("tensor with backward hooks")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TypedStorage deprecation
        t = torch._utils._rebuild_tensor(storage, int(storage_offset), tuple(int(s) for s in size),
                                         tuple(int(s) for s in stride))
    t.requires_grad = bool(requires_grad)
    return t


def _rebuild_parameter(data: Any, requires_grad: Any, backward_hooks: Any = None, state: Any = None) -> torch.nn.Parameter:
    if not isinstance(data, torch.Tensor):
        raise UnsafePickleError("parameter rebuilt from something that is not a tensor")
    if backward_hooks:
        raise UnsafePickleError("parameter with backward hooks")
    return torch.nn.Parameter(data, requires_grad=bool(requires_grad))


def _codecs_encode(text: Any, encoding: Any = "latin1") -> bytes:
    """Protocol-2 pickles store bytes as `_codecs.encode(str, 'latin1')`."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise UnsafePickleError("_codecs.encode with unexpected arguments")
    return text.encode("latin1")


class _NDArrayType:
    """Stand-in for `numpy.ndarray` (accepted only as the class argument of `_reconstruct`)."""


class _NDArrayRecord:
    """`numpy.core.multiarray._reconstruct(ndarray, ...)` + its BUILD state, decoded as plain numbers."""

    def __init__(self) -> None:
        self.array: Optional[np.ndarray] = None

    def _safe_setstate(self, state: Any) -> None:
        if not (isinstance(state, tuple) and len(state) == 5):
            raise UnsafePickleError("numpy array with unexpected state")
        _, shape, dtype, is_fortran, raw = state
        if not isinstance(dtype, _NumpyDtype) or not isinstance(raw, bytes):
            raise UnsafePickleError("numpy array that is not plain numeric data")
        shape = tuple(int(d) for d in shape)
        self.array = np.frombuffer(raw, dtype=dtype.to_numpy()).reshape(shape, order="F" if is_fortran else "C").copy()


def _ndarray_reconstruct(cls: Any, shape: Any = None, typecode: Any = None) -> _NDArrayRecord:
    if cls is not _NDArrayType:
        raise UnsafePickleError("numpy _reconstruct of something other than numpy.ndarray")
    return _NDArrayRecord()


class _TFNetworkRecord:
    """Stand-in for `dnnlib.tflib.network.Network` of the TensorFlow StyleGAN2 repositories: its pickled
    state (static kwargs, sub-networks, variables) kept as data; `build_module_src` is never executed."""

    def __init__(self) -> None:
        self.state: dict = {}

    def _safe_setstate(self, state: Any) -> None:
        if not isinstance(state, dict) or not isinstance(state.get("variables"), list):
            raise UnsafePickleError("TensorFlow network with unexpected state")
        self.state = state


# (module, name) -> the harmless object returned in its place. This is everything that NVIDIA's
# stylegan2-ada-pytorch and stylegan3 snapshots and the TensorFlow-era (G, D, Gs) pickles contain;
# nothing here can run code from the file.
_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _PersistentRecord,
    ("dnnlib.util", "EasyDict"): _EasyDict,
    ("dnnlib", "EasyDict"): _EasyDict,
    ("collections", "OrderedDict"): OrderedDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("_codecs", "encode"): _codecs_encode,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch.storage", "_load_from_bytes"): _load_storage_from_bytes,
    ("numpy", "dtype"): _NumpyDtype,
    ("numpy.core.multiarray", "scalar"): _numpy_scalar,
    ("numpy._core.multiarray", "scalar"): _numpy_scalar,
    # TensorFlow-era pickles (the original StyleGAN2 and StyleGAN2-ADA repositories):
    ("dnnlib.tflib.network", "Network"): _TFNetworkRecord,
    ("numpy", "ndarray"): _NDArrayType,
    ("numpy.core.multiarray", "_reconstruct"): _ndarray_reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _ndarray_reconstruct,
}


class _SafeUnpickler(pickle._Unpickler):  # the pure-Python unpickler, so BUILD can be restricted too
    """Unpickler whose globals come only from `_ALLOWED_GLOBALS`; BUILD (`__setstate__`) only on our stand-ins."""

    dispatch = dict(pickle._Unpickler.dispatch)

    def find_class(self, module: str, name: str) -> Any:
        if self.proto < 3:  # Python 2 names written by protocols 0-2 (e.g. __builtin__.set)
            import _compat_pickle

            if (module, name) in _compat_pickle.NAME_MAPPING:
                module, name = _compat_pickle.NAME_MAPPING[(module, name)]
            elif module in _compat_pickle.IMPORT_MAPPING:
                module = _compat_pickle.IMPORT_MAPPING[module]
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"refusing to load: the pickle asks for the global '{module}.{name}', which is not on the "
                "allow-list of NVIDIA StyleGAN2 network pickles. Nothing from the file was executed."
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError("refusing to load: the pickle uses persistent ids (not an NVIDIA network pickle)")

    def _load_build(self) -> None:
        state = self.stack.pop()
        inst = self.stack[-1]
        setstate = getattr(inst, "_safe_setstate", None)
        if setstate is None:
            raise UnsafePickleError(
                f"refusing to load: the pickle sets the state of a {type(inst).__name__} object (BUILD), "
                "which NVIDIA network pickles never do. Nothing from the file was executed."
            )
        setstate(state)

    dispatch[pickle.BUILD[0]] = _load_build


def _plain(value: Any) -> Any:
    """EasyDicts / OrderedDicts / tuples from a pickle -> plain dicts and lists (JSON-friendly)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


_KNOWN_CLASSES = {
    "FullyConnectedLayer": FullyConnectedLayer,
    "Conv2dLayer": Conv2dLayer,
    "MappingNetwork": MappingNetwork,
    "SynthesisLayer": SynthesisLayer,
    "ToRGBLayer": ToRGBLayer,
    "SynthesisBlock": SynthesisBlock,
    "SynthesisNetwork": SynthesisNetwork,
    "Generator": Generator,
    "DiscriminatorBlock": DiscriminatorBlock,
    "MinibatchStdLayer": MinibatchStdLayer,
    "DiscriminatorEpilogue": DiscriminatorEpilogue,
    "Discriminator": Discriminator,
}

# Attributes recorded in the pickle that must equal those of the rebuilt network; a difference means
# the pickle's architecture is not the one rebuilt from its init kwargs (and the numerics would differ).
_CHECKED_ATTRS = (
    "z_dim", "c_dim", "w_dim", "num_ws", "num_layers", "w_avg_beta", "img_resolution", "img_channels",
    "block_resolutions", "in_channels", "resolution", "up", "down", "use_noise", "activation", "conv_clamp",
    "padding", "act_gain", "weight_gain", "bias_gain", "is_last", "architecture", "use_fp16", "channels_last",
    "num_conv", "num_torgb", "fused_modconv_default", "first_layer_idx", "cmap_dim", "group_size", "num_channels",
)


def _record_tree_classes(rec: _PersistentRecord, out: set) -> set:
    out.add(rec.class_name)
    for sub in (rec.state.get("_modules") or {}).values():
        if isinstance(sub, _PersistentRecord):
            _record_tree_classes(sub, out)
        elif sub is not None:
            out.add(type(sub).__name__)
    return out


def _record_state_dict(rec: _PersistentRecord, prefix: str = "") -> dict[str, torch.Tensor]:
    state = rec.state
    skip = set(state.get("_non_persistent_buffers_set") or ())
    out: dict[str, torch.Tensor] = {}
    for kind in ("_parameters", "_buffers"):
        for name, value in (state.get(kind) or {}).items():
            if value is None or (kind == "_buffers" and name in skip):
                continue
            if not isinstance(value, torch.Tensor):
                raise ValueError(f"{prefix}{name} in the pickle is a {type(value).__name__}, not a tensor")
            out[prefix + name] = value
    for name, sub in (state.get("_modules") or {}).items():
        if sub is None:
            continue
        if not isinstance(sub, _PersistentRecord):
            raise ValueError(f"submodule {prefix}{name} in the pickle is a {type(sub).__name__}")
        out.update(_record_state_dict(sub, prefix + name + "."))
    return out


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, bool) or isinstance(b, bool) or a is None or b is None or isinstance(a, str) or isinstance(b, str):
        return a == b
    try:
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=0.0)
    except (TypeError, ValueError):
        return a == b


def _check_against_record(rec: _PersistentRecord, module: torch.nn.Module, prefix: str = "") -> None:
    where = prefix.rstrip(".") or "<root>"
    if rec.class_name != type(module).__name__:
        raise ValueError(f"{where}: pickle has {rec.class_name}, rebuilt network has {type(module).__name__}")
    for attr in _CHECKED_ATTRS:
        if attr in rec.state and attr in module.__dict__:
            if not _same(rec.state[attr], module.__dict__[attr]):
                raise ValueError(f"{where}.{attr}: the pickle records {rec.state[attr]!r}, the network rebuilt "
                                 f"from its init kwargs has {module.__dict__[attr]!r}")
    rec_modules = {k: v for k, v in (rec.state.get("_modules") or {}).items() if v is not None}
    my_modules = dict(module.named_children())
    if set(rec_modules) != set(my_modules):
        raise ValueError(f"{where}: submodules differ: pickle {sorted(rec_modules)}, rebuilt {sorted(my_modules)}")
    for name, sub in rec_modules.items():
        _check_against_record(sub, my_modules[name], prefix + name + ".")


def _is_stylegan3_repo_source(src: str) -> bool:
    """networks_stylegan2.py of the stylegan3 repository (other defaults) vs stylegan2-ada-pytorch."""
    return "fused_modconv_default" in src or "update_emas" in src


def _rebuild_network(rec: _PersistentRecord, device: Union[str, torch.device] = "cpu") -> torch.nn.Module:
    classes = _record_tree_classes(rec, set())
    unknown = sorted(classes - set(_KNOWN_CLASSES))
    if rec.class_name not in ("Generator", "Discriminator") or unknown:
        hint = " StyleGAN3 (alias-free) networks are not supported." if "SynthesisInput" in classes else ""
        raise ValueError(f"the pickle holds a {rec.class_name} built from classes {unknown or [rec.class_name]} "
                         f"that clip2gan.stylegan2 does not implement.{hint}")
    args = _plain(rec.state.get("_init_args") or [])
    kwargs = _plain(rec.state.get("_init_kwargs") or {})
    if _is_stylegan3_repo_source(rec.module_src):  # the stylegan3 repository's defaults differ
        if rec.class_name == "Generator":
            kwargs["mapping_kwargs"] = {"w_avg_beta": 0.998, **(kwargs.get("mapping_kwargs") or {})}
            for key, default in (("num_fp16_res", 4), ("conv_clamp", 256), ("fused_modconv_default", True)):
                if key not in kwargs and key not in (kwargs.get("synthesis_kwargs") or {}):
                    kwargs[key] = default
        else:
            kwargs.setdefault("num_fp16_res", 4)
            kwargs.setdefault("conv_clamp", 256)
    cls = _KNOWN_CLASSES[rec.class_name]
    with skip_init():  # no random init (every tensor comes from the pickle), global RNG untouched
        net = cls(*args, **kwargs)
    state_dict = _record_state_dict(rec)
    net.load_state_dict({k: v.detach() for k, v in state_dict.items()}, strict=True, assign=True)
    _check_against_record(rec, net)
    return net.to(device).eval().requires_grad_(False)


# TensorFlow-era pickles: a tuple (G, D, Gs) of dnnlib.tflib.network.Network objects, each holding
# `static_kwargs`, sub-networks (`components`: G has 'mapping' and 'synthesis') and `variables`, a list
# of (name, numpy array). Names and layouts follow the TF code: dense weights are [in, out], conv
# weights [kh, kw, in, out], the upsampling conv kernel is stored flipped, style biases are stored
# minus 1, noise images as noise{i} [1, 1, r, r]. (The same table as NVIDIA's legacy.py converter.)

_TF_G_KWARGS = {"latent_size", "label_size", "dlatent_size", "resolution", "num_channels", "mapping_layers",
                "label_fmaps", "mapping_fmaps", "mapping_nonlinearity", "mapping_lrmul", "w_avg_beta", "fmap_base",
                "fmap_max", "num_fp16_res", "conv_clamp", "architecture", "resample_kernel", "use_noise",
                "nonlinearity", "truncation_psi", "truncation_cutoff", "style_mixing_prob", "structure",
                "conditioning", "fused_modconv"}  # the last two (StyleGAN2-ADA TF) do not change the function
_TF_D_KWARGS = {"label_size", "resolution", "num_channels", "architecture", "fmap_base", "fmap_max", "num_fp16_res",
                "conv_clamp", "mapping_fmaps", "nonlinearity", "resample_kernel", "freeze_layers", "mapping_layers",
                "mapping_lrmul", "mbstd_group_size", "mbstd_num_features", "structure"}


def _tf_variables(rec: _TFNetworkRecord, prefix: str = "") -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for item in rec.state.get("variables", []):
        name, value = item
        value = value.array if isinstance(value, _NDArrayRecord) else value
        if not isinstance(value, (np.ndarray, float, int)):
            raise ValueError(f"TF variable {prefix}{name} is a {type(value).__name__}")
        out[prefix + str(name)] = np.asarray(value, dtype=np.float32)
    for name, comp in (rec.state.get("components") or {}).items():
        if not isinstance(comp, _TFNetworkRecord):
            raise ValueError(f"TF component {name} is a {type(comp).__name__}")
        out.update(_tf_variables(comp, prefix + str(name) + "/"))
    return out


def _tf_static_kwargs(rec: _TFNetworkRecord, known: set, what: str) -> dict[str, Any]:
    if int(rec.state.get("version", 0)) < 4:
        raise ValueError(f"TensorFlow {what} pickle version {rec.state.get('version')} is too old (need 4)")
    kwargs = _plain(rec.state.get("static_kwargs") or {})
    unknown = sorted(set(kwargs) - known)
    if unknown:
        raise ValueError(f"TensorFlow {what}: unsupported static kwargs {unknown}")
    return kwargs


def _tf_fill(net: torch.nn.Module, values: dict[str, np.ndarray], what: str) -> torch.nn.Module:
    state = net.state_dict()
    missing = sorted(k for k in state if k not in values and not k.endswith("resample_filter"))
    if missing:
        raise ValueError(f"TensorFlow {what}: no variables for {missing[:4]}{'...' if len(missing) > 4 else ''}")
    for key, value in values.items():
        t = torch.from_numpy(np.ascontiguousarray(value)).reshape(state[key].shape)
        state[key] = t
    net.load_state_dict(state, strict=True)
    return net


def _convert_tf_generator(rec: _TFNetworkRecord) -> Generator:
    k = _tf_static_kwargs(rec, _TF_G_KWARGS, "generator")
    w_avg_beta = k.get("w_avg_beta", 0.995)
    kwargs = dict(
        z_dim=k.get("latent_size", 512), c_dim=k.get("label_size", 0), w_dim=k.get("dlatent_size", 512),
        img_resolution=k.get("resolution", 1024), img_channels=k.get("num_channels", 3),
        mapping_kwargs=dict(num_layers=k.get("mapping_layers", 8), embed_features=k.get("label_fmaps"),
                            layer_features=k.get("mapping_fmaps"), activation=k.get("mapping_nonlinearity", "lrelu"),
                            lr_multiplier=k.get("mapping_lrmul", 0.01), w_avg_beta=1 if w_avg_beta is None else w_avg_beta),
        synthesis_kwargs=dict(channel_base=k.get("fmap_base", 16384) * 2, channel_max=k.get("fmap_max", 512),
                              num_fp16_res=k.get("num_fp16_res", 0), conv_clamp=k.get("conv_clamp"),
                              architecture=k.get("architecture", "skip"),
                              resample_filter=k.get("resample_kernel", [1, 3, 3, 1]),
                              use_noise=k.get("use_noise", True), activation=k.get("nonlinearity", "lrelu")))
    v = _tf_variables(rec)
    if any("ToRGB_lod" in name for name in v) or any("LabelConcat" in name for name in v):
        raise ValueError("this TensorFlow generator uses an architecture without an NVIDIA PyTorch equivalent "
                         "(progressive-growing 'orig' toRGB layers or LabelConcat labels)")
    with skip_init():
        G = Generator(**kwargs)
    sd: dict[str, np.ndarray] = {"mapping.w_avg": v["dlatent_avg"]}
    if G.c_dim > 0:
        sd["mapping.embed.weight"] = v["mapping/LabelEmbed/weight"].T
        sd["mapping.embed.bias"] = v["mapping/LabelEmbed/bias"]
    for i in range(G.mapping.num_layers):
        sd[f"mapping.fc{i}.weight"] = v[f"mapping/Dense{i}/weight"].T
        sd[f"mapping.fc{i}.bias"] = v[f"mapping/Dense{i}/bias"]
    sd["synthesis.b4.const"] = v["synthesis/4x4/Const/const"][0]

    def modulated(dst: str, src: str, flip: bool = False) -> None:
        weight = v[f"{src}/weight"]  # [kh, kw, I, O]
        if flip:
            weight = weight[::-1, ::-1]
        sd[f"{dst}.weight"] = weight.transpose(3, 2, 0, 1)
        sd[f"{dst}.bias"] = v[f"{src}/bias"]
        sd[f"{dst}.affine.weight"] = v[f"{src}/mod_weight"].T
        sd[f"{dst}.affine.bias"] = v[f"{src}/mod_bias"] + 1

    for res in G.synthesis.block_resolutions:
        block = getattr(G.synthesis, f"b{res}")
        src = f"synthesis/{res}x{res}"
        convs = [("conv1", "Conv", 0, False)] if res == 4 else [("conv0", "Conv0_up", -5, True), ("conv1", "Conv1", -4, False)]
        for name, tf_name, offset, flip in convs:
            modulated(f"synthesis.b{res}.{name}", f"{src}/{tf_name}", flip=flip)
            if getattr(block, name).use_noise:
                sd[f"synthesis.b{res}.{name}.noise_strength"] = v[f"{src}/{tf_name}/noise_strength"]
                noise_idx = 0 if res == 4 else 2 * int(math.log2(res)) + offset
                sd[f"synthesis.b{res}.{name}.noise_const"] = v[f"synthesis/noise{noise_idx}"][0, 0]
        if hasattr(block, "torgb"):
            modulated(f"synthesis.b{res}.torgb", f"{src}/ToRGB")
        if hasattr(block, "skip"):
            sd[f"synthesis.b{res}.skip.weight"] = v[f"{src}/Skip/weight"][::-1, ::-1].transpose(3, 2, 0, 1)
    return _tf_fill(G, sd, "generator")


def _convert_tf_discriminator(rec: _TFNetworkRecord) -> Discriminator:
    k = _tf_static_kwargs(rec, _TF_D_KWARGS, "discriminator")
    act = k.get("nonlinearity", "lrelu")
    kwargs = dict(
        c_dim=k.get("label_size", 0), img_resolution=k.get("resolution", 1024), img_channels=k.get("num_channels", 3),
        architecture=k.get("architecture", "resnet"), channel_base=k.get("fmap_base", 16384) * 2,
        channel_max=k.get("fmap_max", 512), num_fp16_res=k.get("num_fp16_res", 0), conv_clamp=k.get("conv_clamp"),
        cmap_dim=k.get("mapping_fmaps"),
        block_kwargs=dict(activation=act, resample_filter=k.get("resample_kernel", [1, 3, 3, 1]),
                          freeze_layers=k.get("freeze_layers", 0)),
        mapping_kwargs=dict(num_layers=k.get("mapping_layers", 0), embed_features=k.get("mapping_fmaps"),
                            layer_features=k.get("mapping_fmaps"), activation=act,
                            lr_multiplier=k.get("mapping_lrmul", 0.1)),
        # The TF discriminator's own default group size is 4 (NVIDIA's legacy.py uses None = whole batch;
        # the two agree for batches of up to 4).
        epilogue_kwargs=dict(mbstd_group_size=k.get("mbstd_group_size", 4),
                             mbstd_num_channels=k.get("mbstd_num_features", 1), activation=act))
    v = _tf_variables(rec)
    if any("FromRGB_lod" in name for name in v):
        raise ValueError("this TensorFlow discriminator uses progressive-growing fromRGB layers (not supported)")
    with skip_init():
        D = Discriminator(**kwargs)
    sd: dict[str, np.ndarray] = {}

    def conv(dst: str, src: str, bias: bool = True) -> None:
        sd[f"{dst}.weight"] = v[f"{src}/weight"].transpose(3, 2, 0, 1)
        if bias:
            sd[f"{dst}.bias"] = v[f"{src}/bias"]

    def dense(dst: str, src: str) -> None:
        sd[f"{dst}.weight"] = v[f"{src}/weight"].T
        sd[f"{dst}.bias"] = v[f"{src}/bias"]

    for res in D.block_resolutions:
        block = getattr(D, f"b{res}")
        src = f"{res}x{res}"
        if hasattr(block, "fromrgb"):
            conv(f"b{res}.fromrgb", f"{src}/FromRGB")
        conv(f"b{res}.conv0", f"{src}/Conv0")
        conv(f"b{res}.conv1", f"{src}/Conv1_down")
        if hasattr(block, "skip"):
            conv(f"b{res}.skip", f"{src}/Skip", bias=False)
    if D.c_dim > 0:
        dense("mapping.embed", "LabelEmbed")
        for i in range(D.mapping.num_layers):
            dense(f"mapping.fc{i}", f"Mapping{i}")
    if hasattr(D.b4, "fromrgb"):
        conv("b4.fromrgb", "4x4/FromRGB")
    conv("b4.conv", "4x4/Conv")
    dense("b4.fc", "4x4/Dense0")
    dense("b4.out", "Output")
    return _tf_fill(D, sd, "discriminator")


def _resolve(path_or_name: PathLike) -> Path:
    path = Path(os.fspath(path_or_name)).expanduser()
    if path.is_file():
        return path
    from . import hub  # resolved lazily: nothing is looked up at import time

    return Path(hub.resolve(path_or_name))


def load_nvidia_pkl(path_or_name: PathLike, device: Union[str, torch.device] = "cpu") -> dict[str, Any]:
    """Read an NVIDIA StyleGAN2 network pickle safely: `dict(G=..., D=..., G_ema=...)` (02_stylegan2_wplus.ipynb).

    Reads stylegan2-ada-pytorch snapshots, the StyleGAN2-config pickles of the stylegan3 repository
    and the TensorFlow-era `(G, D, Gs)` pickles of the original StyleGAN2 (e.g. LSUN Church; their
    variables are converted as NVIDIA's legacy.py does). Nothing from the file is executed and neither `dnnlib` nor `torch_utils` is needed:
    a restricted unpickler accepts only the globals those files contain, each network is rebuilt
    from its recorded init kwargs with this module's classes and filled from the recorded
    parameters and buffers (`strict=True`), and its recorded attributes are checked against the
    rebuilt one. Anything else raises `UnsafePickleError` naming the offending global.

    `path_or_name`: a file, or an artefact name for `clip2gan.hub.resolve` (e.g. 'stylegan2-ffhq-1024').
    Networks come back in eval mode with `requires_grad=False`, as NVIDIA's snapshots store them;
    `training_set_kwargs` is passed through as a plain dict when present.
    """
    path = _resolve(path_or_name)
    with open(path, "rb") as f:
        data = _SafeUnpickler(f).load()
    if isinstance(data, tuple) and len(data) == 3 and all(isinstance(n, _TFNetworkRecord) for n in data):
        tf_G, tf_D, tf_Gs = data  # TensorFlow-era pickle
        return {"G": _convert_tf_generator(tf_G).to(device).eval().requires_grad_(False),
                "D": _convert_tf_discriminator(tf_D).to(device).eval().requires_grad_(False),
                "G_ema": _convert_tf_generator(tf_Gs).to(device).eval().requires_grad_(False)}
    if not isinstance(data, dict) or "G_ema" not in data:
        kind = type(data).__name__
        raise ValueError(f"{path} is not an NVIDIA network snapshot (top level is a {kind} without 'G_ema')")
    out: dict[str, Any] = {}
    for key in ("G", "D", "G_ema"):
        rec = data.get(key)
        if rec is None:
            continue
        if not isinstance(rec, _PersistentRecord):
            raise ValueError(f"{path}: '{key}' is a {type(rec).__name__}, not an NVIDIA persistent network")
        out[key] = _rebuild_network(rec, device=device)
    if isinstance(data.get("training_set_kwargs"), dict):
        out["training_set_kwargs"] = _plain(data["training_set_kwargs"])
    return out


def load_generator(path_or_name: PathLike, device: Union[str, torch.device] = "cpu") -> Generator:
    """The generator to use for inference: eval mode, `requires_grad=False` (02_stylegan2_wplus.ipynb).

    Reads, by content: an NVIDIA pickle (its `G_ema`, via `load_nvidia_pkl`), a rosinality `.pt`
    checkpoint (its `g_ema`, via `load_rosinality`) or a checkpoint written by `save`.
    `path_or_name` is a file or a `clip2gan.hub` artefact name.
    """
    path = _resolve(path_or_name)
    with open(path, "rb") as f:
        head = f.read(16)
    if head.startswith(b"PK"):  # torch.save zip archive
        G = load_rosinality(path, device=device)
    elif head[:1] == b"\x80":  # pickle protocol >= 2
        G = load_nvidia_pkl(path, device=device)["G_ema"]
    elif len(head) >= 9 and head[8:9] == b"{":  # safetensors: u64 header length, then JSON
        G = load(path, device=device)
    else:
        raise ValueError(f"{path}: not an NVIDIA pickle, a rosinality .pt or a clip2gan safetensors file")
    if not isinstance(G, Generator):
        raise ValueError(f"{path} holds a {type(G).__name__}, not a Generator")
    return G.to(device).eval().requires_grad_(False)


# =================================================================================================
# rosinality/stylegan2-pytorch checkpoints
# =================================================================================================

_ROSINALITY_DOC = """
rosinality `Generator(size, style_dim, n_mlp, channel_multiplier)` (its `g_ema` state dict) and this
Generator(z_dim=w_dim=style_dim, c_dim=0, img_resolution=size, img_channels=3,
mapping_kwargs=dict(num_layers=n_mlp, lr_multiplier=lr_mlp),
synthesis_kwargs=dict(channel_base=16384 * channel_multiplier, channel_max=512)) hold the same numbers:

| rosinality key (shape)                              | this Generator key (shape)                       |
|-----------------------------------------------------|--------------------------------------------------|
| style.{i+1}.weight [S, S], .bias [S]                | mapping.fc{i}.weight [S, S], .bias [S]           |
| latent_avg [S] (top level of converted files)       | mapping.w_avg [S] (else estimated, see below)    |
| input.input [1, C4, 4, 4]                           | synthesis.b4.const [C4, 4, 4]                    |
| conv1.conv.weight [1, O, I, 3, 3]                   | synthesis.b4.conv1.weight [O, I, 3, 3]           |
| conv1.conv.modulation.weight [I, S], .bias [I]      | synthesis.b4.conv1.affine.weight, .bias          |
| conv1.noise.weight [1]                              | synthesis.b4.conv1.noise_strength []             |
| conv1.activate.bias [O]                             | synthesis.b4.conv1.bias [O]                      |
| noises.noise_0 [1, 1, 4, 4]                         | synthesis.b4.conv1.noise_const [4, 4]            |
| to_rgb1.conv.weight [1, 3, C, 1, 1]                 | synthesis.b4.torgb.weight [3, C, 1, 1]           |
| to_rgb1.conv.modulation.weight, .bias               | synthesis.b4.torgb.affine.weight, .bias          |
| to_rgb1.bias [1, 3, 1, 1]                           | synthesis.b4.torgb.bias [3]                      |
| convs.{2k}.* (upsampling conv, res r = 8 * 2**k)    | synthesis.b{r}.conv0.*                           |
| convs.{2k+1}.*                                      | synthesis.b{r}.conv1.*                           |
| noises.noise_{2k+1}, noises.noise_{2k+2}            | synthesis.b{r}.conv0/conv1.noise_const [r, r]    |
| to_rgbs.{k}.*                                       | synthesis.b{r}.torgb.*                           |
| convs.{2k}.conv.blur.kernel, to_rgbs.{k}.upsample.kernel | (the [1,3,3,1] filter: resample_filter buffers) |

No kernel is flipped: both run the upsampling convolution as `conv_transpose2d` with the kernel as
stored (NVIDIA via `flip_weight=False`, which cancels the transpose path's own flip), and both
converters flipped the TF original's `Conv0_up` kernel the same way. rosinality scales weights by
1/sqrt(fan_in) before demodulating, NVIDIA does not; demodulation cancels the scale (only the 1e-8
epsilon sees it). The ws rows are consumed in the same order, so
`latent` [N, 2*log2(size)-2, S] of rosinality is our `ws`.
"""


def _rosinality_channels(sd: dict[str, torch.Tensor]) -> dict[int, int]:
    channels = {4: int(sd["to_rgb1.conv.weight"].shape[2])}
    k = 0
    while f"to_rgbs.{k}.conv.weight" in sd:
        channels[8 * 2**k] = int(sd[f"to_rgbs.{k}.conv.weight"].shape[2])
        k += 1
    return channels


def rosinality_to_nvidia(sd: dict[str, torch.Tensor], latent_avg: Optional[torch.Tensor] = None,
                         lr_mlp: float = 0.01) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Convert a rosinality `g_ema` state dict: returns (Generator init kwargs, state dict for it).

    `mapping.w_avg` is `latent_avg` when given, else left out (see `load_rosinality`).
    Introduced in 02_stylegan2_wplus.ipynb.
    """
    if "style.1.weight" not in sd or "input.input" not in sd:
        raise ValueError("not a rosinality generator state dict (no style.1.weight / input.input)")
    style_dim = int(sd["style.1.weight"].shape[1])
    n_mlp = sum(1 for k in sd if k.startswith("style.") and k.endswith(".weight"))
    channels = _rosinality_channels(sd)
    size = max(channels)
    if int(sd["to_rgb1.conv.weight"].shape[1]) != 3:
        raise ValueError("rosinality generators have 3 colour channels")
    cm = channels[64] // 256 if 64 in channels else 2
    kwargs = dict(z_dim=style_dim, c_dim=0, w_dim=style_dim, img_resolution=size, img_channels=3,
                  mapping_kwargs=dict(num_layers=n_mlp, lr_multiplier=lr_mlp),
                  synthesis_kwargs=dict(channel_base=16384 * cm, channel_max=512))
    if channels_dict(size, 16384 * cm, 512) != channels:
        raise ValueError(f"rosinality channel table {channels} has no NVIDIA equivalent (channel_multiplier 1 or 2 only)")
    blur = setup_filter([1, 3, 3, 1]) * 4
    for key in [k for k in sd if k.endswith("blur.kernel") or k.endswith("upsample.kernel")]:
        if sd[key].shape != blur.shape or not torch.allclose(sd[key].float(), blur):
            raise ValueError(f"{key}: only the [1, 3, 3, 1] blur kernel is supported")

    out: dict[str, torch.Tensor] = {}
    for i in range(n_mlp):
        out[f"mapping.fc{i}.weight"] = sd[f"style.{i + 1}.weight"]
        out[f"mapping.fc{i}.bias"] = sd[f"style.{i + 1}.bias"]
    if latent_avg is not None:
        out["mapping.w_avg"] = latent_avg.reshape(style_dim)
    out["synthesis.b4.const"] = sd["input.input"][0]

    def conv(src: str, dst: str, noise: str) -> None:
        out[f"{dst}.weight"] = sd[f"{src}.conv.weight"][0]
        out[f"{dst}.affine.weight"] = sd[f"{src}.conv.modulation.weight"]
        out[f"{dst}.affine.bias"] = sd[f"{src}.conv.modulation.bias"]
        out[f"{dst}.noise_strength"] = sd[f"{src}.noise.weight"].reshape([])
        out[f"{dst}.bias"] = sd[f"{src}.activate.bias"]
        out[f"{dst}.noise_const"] = sd[f"noises.{noise}"][0, 0]

    def torgb(src: str, dst: str) -> None:
        out[f"{dst}.weight"] = sd[f"{src}.conv.weight"][0]
        out[f"{dst}.affine.weight"] = sd[f"{src}.conv.modulation.weight"]
        out[f"{dst}.affine.bias"] = sd[f"{src}.conv.modulation.bias"]
        out[f"{dst}.bias"] = sd[f"{src}.bias"].reshape(-1)

    conv("conv1", "synthesis.b4.conv1", "noise_0")
    torgb("to_rgb1", "synthesis.b4.torgb")
    for k, res in enumerate(r for r in sorted(channels) if r > 4):
        conv(f"convs.{2 * k}", f"synthesis.b{res}.conv0", f"noise_{2 * k + 1}")
        conv(f"convs.{2 * k + 1}", f"synthesis.b{res}.conv1", f"noise_{2 * k + 2}")
        torgb(f"to_rgbs.{k}", f"synthesis.b{res}.torgb")
    filt = setup_filter([1, 3, 3, 1])
    for res in sorted(channels):
        out[f"synthesis.b{res}.resample_filter"] = filt.clone()
        if res > 4:
            out[f"synthesis.b{res}.conv0.resample_filter"] = filt.clone()
        out[f"synthesis.b{res}.conv1.resample_filter"] = filt.clone()
    return kwargs, out


def nvidia_to_rosinality(G: Generator) -> dict[str, Any]:
    """The inverse of `rosinality_to_nvidia`: `{'g_ema': state_dict, 'latent_avg': w_avg}` in
    rosinality's layout, for generators that rosinality's code can express (c_dim 0, z_dim == w_dim,
    'skip' architecture, 3 channels, [1,3,3,1] filter, no clamping, channel_base 16384 or 32768).
    Introduced in 02_stylegan2_wplus.ipynb."""
    syn, mp = G.synthesis, G.mapping
    problems = []
    if G.c_dim != 0 or G.z_dim != G.w_dim or G.img_channels != 3:
        problems.append("needs c_dim 0, z_dim == w_dim and 3 channels")
    if any(getattr(m, "architecture", "skip") != "skip" for m in syn.modules() if isinstance(m, SynthesisBlock)):
        problems.append("needs the 'skip' architecture")
    for m in syn.modules():
        if isinstance(m, (SynthesisLayer, ToRGBLayer)) and m.conv_clamp is not None:
            problems.append("needs conv_clamp None")
            break
    for m in mp.modules():
        if isinstance(m, FullyConnectedLayer) and m.activation != "lrelu":
            problems.append("needs lrelu mapping layers")
            break
    if problems:
        raise ValueError("this Generator has no rosinality equivalent: " + "; ".join(problems))
    sd = {k: v.detach().cpu() for k, v in G.state_dict().items()}
    out: dict[str, torch.Tensor] = {}
    for i in range(mp.num_layers):
        out[f"style.{i + 1}.weight"] = sd[f"mapping.fc{i}.weight"]
        out[f"style.{i + 1}.bias"] = sd[f"mapping.fc{i}.bias"]
    out["input.input"] = sd["synthesis.b4.const"][None]
    blur = setup_filter([1, 3, 3, 1]) * 4

    def conv(src: str, dst: str, noise: str, upsample: bool) -> None:
        out[f"{dst}.conv.weight"] = sd[f"{src}.weight"][None]
        out[f"{dst}.conv.modulation.weight"] = sd[f"{src}.affine.weight"]
        out[f"{dst}.conv.modulation.bias"] = sd[f"{src}.affine.bias"]
        out[f"{dst}.noise.weight"] = sd[f"{src}.noise_strength"].reshape(1)
        out[f"{dst}.activate.bias"] = sd[f"{src}.bias"]
        out[f"noises.{noise}"] = sd[f"{src}.noise_const"][None, None]
        if upsample:
            out[f"{dst}.conv.blur.kernel"] = blur.clone()

    def torgb(src: str, dst: str, upsample: bool) -> None:
        if upsample:
            out[f"{dst}.upsample.kernel"] = blur.clone()
        out[f"{dst}.conv.weight"] = sd[f"{src}.weight"][None]
        out[f"{dst}.conv.modulation.weight"] = sd[f"{src}.affine.weight"]
        out[f"{dst}.conv.modulation.bias"] = sd[f"{src}.affine.bias"]
        out[f"{dst}.bias"] = sd[f"{src}.bias"].reshape(1, -1, 1, 1)

    conv("synthesis.b4.conv1", "conv1", "noise_0", upsample=False)
    torgb("synthesis.b4.torgb", "to_rgb1", upsample=False)
    for k, res in enumerate(syn.block_resolutions[1:]):
        conv(f"synthesis.b{res}.conv0", f"convs.{2 * k}", f"noise_{2 * k + 1}", upsample=True)
        conv(f"synthesis.b{res}.conv1", f"convs.{2 * k + 1}", f"noise_{2 * k + 2}", upsample=False)
        torgb(f"synthesis.b{res}.torgb", f"to_rgbs.{k}", upsample=True)
    channels = _rosinality_channels(out)
    cm = channels[64] // 256 if 64 in channels else 2
    if channels_dict(G.img_resolution, 16384 * cm, 512) != channels or cm not in (1, 2):
        raise ValueError(f"channel table {channels} has no rosinality equivalent")
    result: dict[str, Any] = {"g_ema": out}
    if "mapping.w_avg" in sd:
        result["latent_avg"] = sd["mapping.w_avg"]
    return result


@torch.no_grad()
def _estimate_w_avg(G: Generator, num: int = 10000, seed: int = 0) -> torch.Tensor:
    """Mean of mapping(z) over `num` seeded samples (what NVIDIA's w_avg converges to)."""
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn([num, G.z_dim], generator=gen).to(G.mapping.fc0.weight.device)
    c = z.new_zeros([num, G.c_dim])
    return G.mapping(z, c, update_emas=False)[:, 0].mean(dim=0)


def load_rosinality(path_or_name: PathLike, device: Union[str, torch.device] = "cpu", key: str = "g_ema",
                    lr_mlp: float = 0.01) -> Generator:
    """Load a rosinality/stylegan2-pytorch checkpoint's generator as this Generator (02_stylegan2_wplus.ipynb).

    The file is read with `torch.load(weights_only=True)` (rosinality training checkpoints also carry
    an `argparse.Namespace`, which is allowed). `key` picks the generator ('g_ema' by default; a bare
    state dict works too). `mapping.w_avg` comes from the file's `latent_avg` when present, else it
    is estimated from 10,000 seeded samples of the mapping network. Returns eval mode,
    requires_grad False. The key/shape table follows.
    """
    path = _resolve(path_or_name)
    with torch.serialization.safe_globals([argparse.Namespace]):
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(ckpt, dict) and key in ckpt:
        sd, latent_avg = ckpt[key], ckpt.get("latent_avg")
    elif isinstance(ckpt, dict) and "style.1.weight" in ckpt:
        sd, latent_avg = ckpt, None
    else:
        raise ValueError(f"{path}: no '{key}' generator in this checkpoint (keys: {sorted(ckpt)[:8]})")
    kwargs, state = rosinality_to_nvidia(sd, latent_avg=latent_avg, lr_mlp=lr_mlp)
    G = Generator(**kwargs)
    missing = set(G.state_dict()) - set(state)
    if missing - {"mapping.w_avg"}:
        raise ValueError(f"{path}: missing tensors {sorted(missing)[:5]}")
    G.load_state_dict(state, strict=False)
    if "mapping.w_avg" not in state:
        G.mapping.w_avg.copy_(_estimate_w_avg(G))
    return G.to(device).eval().requires_grad_(False)


load_rosinality.__doc__ = (load_rosinality.__doc__ or "") + _ROSINALITY_DOC


# =================================================================================================
# Our own checkpoints: safetensors + JSON config, no pickle.
# =================================================================================================

_FORMAT = "clip2gan.stylegan2"


def save(net: Union[Generator, Discriminator], path: PathLike, half: bool = False) -> Path:
    """Save a Generator or Discriminator as safetensors + a JSON config of its init kwargs (02_stylegan2_wplus.ipynb).

    No pickle: `load(path)` rebuilds the network from the config and fills it strictly.
    """
    from .checkpoint import save_safetensors

    if not isinstance(net, (Generator, Discriminator)):
        raise TypeError(f"save() takes a Generator or Discriminator, not {type(net).__name__}")
    config = {"format": _FORMAT, "version": 1, "class": type(net).__name__, "init_kwargs": _plain(net.init_kwargs)}
    return save_safetensors(net.state_dict(), path, config=config, half=half)


def load(path: PathLike, device: Union[str, torch.device] = "cpu") -> Union[Generator, Discriminator]:
    """Load a network written by `save` (eval mode; float32 even if saved with half=True;
    02_stylegan2_wplus.ipynb)."""
    from .checkpoint import load_safetensors

    state, config = load_safetensors(path)
    if config.get("format") != _FORMAT or config.get("class") not in ("Generator", "Discriminator"):
        raise ValueError(f"{path} is not a clip2gan StyleGAN2 checkpoint (config: {str(config)[:200]})")
    cls = Generator if config["class"] == "Generator" else Discriminator
    with skip_init():
        net = cls(**config["init_kwargs"])
    state = {k: (v.float() if v.is_floating_point() else v) for k, v in state.items()}
    net.load_state_dict(state, strict=True, assign=True)
    return net.to(device).eval()
