"""StyleGAN2's generator and discriminator as `torch.nn.Module`s (introduced in 02_stylegan2_wplus.ipynb).

The layers and networks of NVIDIA's stylegan2-ada-pytorch `training/networks.py`, with the same
constructor arguments, attributes and module, parameter and buffer names, registered in the same
order: a state dict taken from an NVIDIA network loads with `strict=True` and computes the same
function (the golden-output test in `tests/test_stylegan2_golden.py` checks it against outputs of
NVIDIA's own code).

One class is named differently: NVIDIA's z -> w `MappingNetwork` is `StyleMappingNetwork` here, so
that `MappingNetwork` means one thing in this project, the CLIP2GAN mapping network M
(`clip2gan.mapping.MappingNetwork`). Its attribute name stays `mapping` (`G.mapping`, `D.mapping`),
so parameter names (`mapping.fc0.weight`, ...) are NVIDIA's, and `clip2gan.stylegan2.nvidia` maps
the class name `MappingNetwork` recorded in NVIDIA's pickles onto it.

Shapes: `z: [N, z_dim]`, `c: [N, c_dim]`, `ws: [N, num_ws, w_dim]`, `img: [N, C, H, W]` in about [-1, 1].
"""

from __future__ import annotations

import math
from typing import Any, Optional, Sequence, Union

import numpy as np
import torch

from clip2gan.stylegan2.ops import (
    ACTIVATIONS,
    _check_resolution,
    _full_init_kwargs,
    _randn,
    _records_init,
    assert_shape,
    bias_act,
    conv2d_resample,
    downsample2d,
    modulated_conv2d,
    normalize_2nd_moment,
    setup_filter,
    upsample2d,
)

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


class StyleMappingNetwork(torch.nn.Module):
    """StyleGAN's mapping network z (+ label c) -> w, broadcast to `num_ws` copies (02_stylegan2_wplus.ipynb).

    NVIDIA's `MappingNetwork` (renamed here; not the CLIP2GAN mapping network M of `clip2gan.mapping`).

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
                 fused_modconv_default: Union[bool, str, None] = None, **layer_kwargs: Any):
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
                force_fp32: bool = False, fused_modconv: Optional[bool] = None,
                noise_mode: str = "random") -> tuple[torch.Tensor, torch.Tensor]:
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
                 channel_max: int = 512, num_fp16_res: int = 0, **block_kwargs: Any):
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
                 mapping_kwargs: Optional[dict] = None, synthesis_kwargs: Optional[dict] = None, **extra_synthesis_kwargs: Any):
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
        self.mapping = StyleMappingNetwork(z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, num_ws=self.num_ws, **(mapping_kwargs or {}))

    @property
    def init_kwargs(self) -> dict[str, Any]:
        """All constructor arguments as one JSON-friendly dict (what `save` records)."""
        return _full_init_kwargs(self)

    def forward(self, z: torch.Tensor, c: Optional[torch.Tensor] = None, truncation_psi: float = 1,
                truncation_cutoff: Optional[int] = None, noise_mode: str = "const", **synthesis_kwargs: Any) -> torch.Tensor:
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

    def forward(self, x: Optional[torch.Tensor], img: Optional[torch.Tensor],
                force_fp32: bool = False) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
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
        self.mbstd = None
        if mbstd_num_channels > 0:
            self.mbstd = MinibatchStdLayer(group_size=mbstd_group_size, num_channels=mbstd_num_channels)
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
            self.mapping = StyleMappingNetwork(z_dim=0, c_dim=c_dim, w_dim=cmap_dim, num_ws=None, w_avg_beta=None,
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


