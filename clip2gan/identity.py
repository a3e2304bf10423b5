"""Identity networks for the identity loss L_id (eq. 8) behind one interface (04_losses.ipynb).

The interface: an `nn.Module` whose `forward(images)` takes `[N, 3, H, W]` in [-1, 1] (the
generator's range, any square size) and returns identity embeddings `[N, embed_dim]`, and which
has an `embed_dim` attribute. `clip2gan.losses.IdentityLoss(net)` turns any such net into
1 − cos(net(x), net(x')). `identity_net_for(profile)` picks the net of a world:

* `ffhq`: ArcFace IR-SE50 (`ArcFaceIdentity`), the network the paper cites [11] in the form the
  StyleGAN-inversion literature uses (TreB1eN/InsightFace_Pytorch weights `model_ir_se50.pth`, as in
  pSp and e4e). `IRSE50` reproduces that checkpoint's module names and shapes exactly so its state
  dict loads with `strict=True`; `load_arcface()` finds the file through `clip2gan.hub` (artefact
  'arcface-ir-se50') and loads it with `torch.load(weights_only=True)`: no code from the file runs.
  Faces are cropped as pSp does for FFHQ-aligned images: rows 35:223, columns 32:220 of a 256 px
  image (here the same fractions of any size), then area-resized to 112 px.
* `toyfaces`: the toy world's identity network (`clip2gan.toy.nets.ToyIdentityNet`, shipped as
  'toyfaces-identity'), wrapped by `ToyIdentity` which resizes to its 32 px input.
* `afhqcat`, `afhqdog`, `lsunchurch`: None — the paper removes the identity loss for these.
"""

from __future__ import annotations

import os
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from clip2gan.hub import resolve
from clip2gan.profiles import get_profile
from clip2gan.toy.nets import ToyIdentityNet

__all__ = [
    "SEModule",
    "BottleneckIRSE",
    "IRSE50",
    "IR_SE50_STAGES",
    "face_crop",
    "ArcFaceIdentity",
    "load_arcface",
    "ToyIdentity",
    "identity_net_for",
]

# (in_channels, depth, units) of the four stages of IR-SE50; the first unit of each stage has stride 2.
IR_SE50_STAGES = ((64, 64, 3), (64, 128, 4), (128, 256, 14), (256, 512, 3))

# pSp's crop of an FFHQ-aligned 256 px face: rows 35:223, columns 32:220 (a 188 px square).
_CROP_256 = (35, 223, 32, 220)


class SEModule(nn.Module):
    """Squeeze-and-excitation: channel weights from the global average, 1×1 convs `fc1`, `fc2`."""

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, channels // reduction, kernel_size=1, bias=False)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(channels // reduction, channels, kernel_size=1, bias=False)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.sigmoid(self.fc2(self.relu(self.fc1(self.avg_pool(x)))))
        return x * s


class BottleneckIRSE(nn.Module):
    """Improved-residual unit with SE: BN-conv-PReLU-conv(stride)-BN-SE plus a shortcut.

    The shortcut is a stride-`stride` subsampling when the width stays (`MaxPool2d(1, stride)`, no
    parameters) and a 1×1 conv + BN otherwise. Attribute names (`shortcut_layer`, `res_layer`) and
    the order inside `res_layer` are those of `model_ir_se50.pth`.
    """

    def __init__(self, in_channels: int, depth: int, stride: int):
        super().__init__()
        if in_channels == depth:
            self.shortcut_layer: nn.Module = nn.MaxPool2d(1, stride)
        else:
            self.shortcut_layer = nn.Sequential(
                nn.Conv2d(in_channels, depth, 1, stride, bias=False),
                nn.BatchNorm2d(depth),
            )
        self.res_layer = nn.Sequential(
            nn.BatchNorm2d(in_channels),
            nn.Conv2d(in_channels, depth, 3, 1, 1, bias=False),
            nn.PReLU(depth),
            nn.Conv2d(depth, depth, 3, stride, 1, bias=False),
            nn.BatchNorm2d(depth),
            SEModule(depth, 16),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.res_layer(x) + self.shortcut_layer(x)


class IRSE50(nn.Module):
    """ArcFace IR-SE50 backbone: `[N, 3, 112, 112]` in [-1, 1] -> `[N, 512]`, unit norm (04_losses.ipynb).

    input_layer (conv 3→64, BN, PReLU) -> body (24 `BottleneckIRSE` units in stages of 3, 4, 14, 3,
    widths 64/128/256/512, 112 → 7 px) -> output_layer (BN, Dropout, Flatten, Linear 512·7·7 → 512,
    BN1d) -> L2 normalisation. Module names match `model_ir_se50.pth`.
    """

    input_size = 112
    embed_dim = 512

    def __init__(self, drop_ratio: float = 0.6):
        super().__init__()
        self.input_layer = nn.Sequential(nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.PReLU(64))
        units = []
        for in_channels, depth, n in IR_SE50_STAGES:
            units.append(BottleneckIRSE(in_channels, depth, 2))
            units += [BottleneckIRSE(depth, depth, 1) for _ in range(n - 1)]
        self.body = nn.Sequential(*units)
        self.output_layer = nn.Sequential(
            nn.BatchNorm2d(512),
            nn.Dropout(drop_ratio),
            nn.Flatten(),
            nn.Linear(512 * 7 * 7, 512),
            nn.BatchNorm1d(512),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or tuple(x.shape[1:]) != (3, 112, 112):
            raise ValueError(f"IRSE50 expects [N, 3, 112, 112] in [-1, 1], got {tuple(x.shape)} (use face_crop)")
        x = self.output_layer(self.body(self.input_layer(x)))
        return F.normalize(x, dim=-1)


def face_crop(x: torch.Tensor, size: int = 112) -> torch.Tensor:
    """Crop the face of FFHQ-aligned images and resize to `size` (04_losses.ipynb).

    x: `[N, 3, R, R]` -> `[N, 3, size, size]`. The crop is pSp's rows 35:223, columns 32:220 at
    256 px, taken at the same fractions of R (identical at 256 px), then an area (adaptive average
    pool) resize as pSp's `face_pool`. Differentiable.
    """
    if x.ndim != 4 or x.shape[1] != 3 or x.shape[-1] != x.shape[-2]:
        raise ValueError(f"expected square images [N, 3, R, R], got {tuple(x.shape)}")
    r = x.shape[-1]
    top, bottom, left, right = (round(v * r / 256) for v in _CROP_256)
    x = x[:, :, top:bottom, left:right]
    if x.shape[-1] >= size:
        return F.adaptive_avg_pool2d(x, (size, size))
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)


class ArcFaceIdentity(nn.Module):
    """FFHQ-aligned images `[N, 3, R, R]` in [-1, 1] -> ArcFace embeddings `[N, 512]` (04_losses.ipynb).

    `face_crop` to 112 px, then `IRSE50` (frozen, eval mode).
    """

    embed_dim = 512

    def __init__(self, backbone: IRSE50 | None = None):
        super().__init__()
        self.backbone = backbone if backbone is not None else IRSE50()
        for p in self.backbone.parameters():
            p.requires_grad_(False)
        self.backbone.eval()

    def train(self, mode: bool = True) -> "ArcFaceIdentity":
        super().train(mode)
        self.backbone.eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(face_crop(x.float(), IRSE50.input_size))


def _clean_state_dict(state: Mapping[str, Any], model: nn.Module) -> dict[str, torch.Tensor]:
    if "state_dict" in state and isinstance(state["state_dict"], Mapping):
        state = state["state_dict"]
    out = {}
    for k, v in state.items():
        if not isinstance(v, torch.Tensor):
            raise ValueError(f"entry {k!r} of the ArcFace checkpoint is a {type(v).__name__}, not a tensor")
        out[k[len("module."):] if k.startswith("module.") else k] = v
    # Checkpoints saved before PyTorch 0.4.1 have no BatchNorm `num_batches_tracked` counters; they
    # are not used in eval mode, so fill them in and keep the load strict for everything else.
    for name, buf in model.state_dict().items():
        if name.endswith("num_batches_tracked") and name not in out:
            out[name] = torch.zeros_like(buf)
    return out


def load_arcface(path_or_name: str | os.PathLike = "arcface-ir-se50", device: str | torch.device = "cpu") -> ArcFaceIdentity:
    """ArcFace IR-SE50 with `model_ir_se50.pth` weights, strict, frozen (04_losses.ipynb).

    path_or_name: a file path or a `clip2gan.hub` artefact name (explicit path → env var
    `CLIP2GAN_ARCFACE_IR_SE50` → `data/` → cache; `WeightsNotFound` says how to get the file).
    The file is read with `torch.load(weights_only=True)`, which refuses to run pickled code.
    """
    path = resolve(path_or_name)
    state = torch.load(path, map_location="cpu", weights_only=True)
    backbone = IRSE50()
    backbone.load_state_dict(_clean_state_dict(state, backbone), strict=True)
    return ArcFaceIdentity(backbone).to(device).eval()


class ToyIdentity(nn.Module):
    """The toy world's identity network behind the common interface (04_losses.ipynb).

    net: a `clip2gan.toy.nets.ToyIdentityNet` (or any module `[N, 3, r, r]` -> `[N, D]` with a
    `resolution` attribute). Images of another size are area/bilinear-resized to `r` first.
    """

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net
        self.resolution = int(getattr(net, "resolution", 32))
        config = getattr(net, "config", {}) or {}
        self.embed_dim = int(config.get("embed_dim", 0)) or None
        for p in self.net.parameters():
            p.requires_grad_(False)
        self.net.eval()

    def train(self, mode: bool = True) -> "ToyIdentity":
        super().train(mode)
        self.net.eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected images [N, 3, H, W], got {tuple(x.shape)}")
        r = self.resolution
        if tuple(x.shape[-2:]) != (r, r):
            mode = "area" if x.shape[-1] > r else "bilinear"
            x = F.interpolate(x.float(), size=(r, r), mode=mode)
        return self.net(x.float())

    @classmethod
    def from_pretrained(cls, path_or_name: str = "toyfaces-identity", device: str | torch.device = "cpu") -> "ToyIdentity":
        """Load the shipped toy identity net (`ToyIdentityNet.from_pretrained`)."""
        return cls(ToyIdentityNet.from_pretrained(path_or_name, device=device))


def identity_net_for(profile: str, device: str | torch.device = "cpu") -> nn.Module | None:
    """The identity network of a world, or None where the paper drops L_id (04_losses.ipynb).

    The profile record says which (`clip2gan.profiles`): 'toyfaces' -> `ToyIdentity` (shipped
    weights), 'ffhq' -> `ArcFaceIdentity` (needs `model_ir_se50.pth`), 'afhqcat' / 'afhqdog' /
    'lsunchurch' -> None. Missing weights raise `clip2gan.hub.WeightsNotFound`; an unknown profile a
    `ValueError`.
    """
    record = get_profile(profile)
    if record.identity is None:
        return None
    if record.identity_kind == "toy":
        return ToyIdentity.from_pretrained(record.identity, device=device)
    return load_arcface(record.identity, device=device)
