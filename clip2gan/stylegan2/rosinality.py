"""rosinality/stylegan2-pytorch checkpoints (introduced in 02_stylegan2_wplus.ipynb).

`rosinality_to_nvidia` / `nvidia_to_rosinality` convert a generator's state dict between
rosinality's layout and NVIDIA's (this package's), tensor for tensor, and `load_rosinality` reads
a rosinality `.pt` checkpoint (`torch.load(weights_only=True)`) as this package's `Generator`. The
key and shape table is in `load_rosinality`'s docstring.
"""

from __future__ import annotations

import argparse
from typing import Any, Optional, Union

import torch

from clip2gan.stylegan2.files import PathLike, resolve_file
from clip2gan.stylegan2.networks import FullyConnectedLayer, Generator, SynthesisBlock, SynthesisLayer, ToRGBLayer
from clip2gan.stylegan2.ops import channels_dict, setup_filter

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
    path = resolve_file(path_or_name)
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


