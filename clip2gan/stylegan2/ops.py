"""Building blocks of StyleGAN2 in plain PyTorch (introduced in 02_stylegan2_wplus.ipynb).

* helpers used to build the networks: `assert_shape`, `channels_dict`, `num_ws_for`, `skip_init`
  (build without random initialisation), and the private `_records_init` / `_full_init_kwargs`
  that remember constructor arguments as NVIDIA's persistence does;
* the ops NVIDIA implements as CUDA extensions, here in ordinary PyTorch with the same arguments and
  results: `bias_act`, FIR resampling (`upfirdn2d_ref` step by step as defined, `upfirdn2d` the
  faster equivalent, `upsample2d`, `downsample2d`), `conv2d_resample` (convolution with
  resampling) and `modulated_conv2d` (StyleGAN2's weight modulation and demodulation).

Nothing here compiles code or queries CUDA.
"""

from __future__ import annotations

import contextlib
import contextvars
import copy
import functools
import inspect
import math
from typing import Any, Callable, Iterator, NamedTuple, Optional, Sequence, Union

import torch
import torch.nn.functional as F

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
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> None:
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


