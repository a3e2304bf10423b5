"""The standard FID feature network, TF Inception-v3 (2015-12-05) up to pool3, from a local weights file (08_evaluation.ipynb).

Published FIDs are computed with pytorch-fid, torch-fidelity or clean-fid, all on the same network:
the TensorFlow Inception graph of 2015-12-05, whose PyTorch port (`pt_inception-2015-12-05-6726825d.pth`,
pytorch-fid's release file) `clip2gan.hub.resolve('inception-fid')` finds. The network here is
torch-fidelity's `FeatureExtractorInceptionV3`, built from that file offline. What each library
offers, measured with torch-fidelity 0.4.0 (0.3.0 too), pytorch-fid 0.3.0 and clean-fid 0.1.35 on a CPU
without network access:

* torch-fidelity: `FeatureExtractorInceptionV3(name, ['2048'], feature_extractor_weights_path=...)`
  loads pytorch-fid's file strictly (its parameter and buffer names are that file's: no key missing
  or unexpected) and, given the same normalised 299 px input, returns the same pool3 features as
  torchvision's `Inception3` with the TF pooling patches (maximum difference 0.0). It takes uint8
  images and reproduces the TF graph's input path: bilinear resizing as TF 1.x does it and
  (x − 128) / 128 — the reference FID's numbers, where pytorch-fid's float path (torch bilinear
  resizing, 2x − 1) moves features by about 2 % for a 64 px input.
* pytorch-fid: `InceptionV3(use_fid_inception=True)` always downloads the file from its URL
  (`fid_inception_v3`; offline: URLError) and names its parameters `blocks.N…`, not the file's; only
  its patched blocks (`FIDInceptionA`, …) could be reused.
* clean-fid: its TF-compatible network is a TorchScript file (`inception-2015-12-05.pt`), another
  format than the `.pth`; its legacy mode downloads pytorch-fid's file.

Images enter as `[B, 3, H, W]` in [-1, 1] and are quantised to uint8 first (the way images saved as
PNG files reach the reference FID).
"""

from __future__ import annotations

import io
import os
from typing import Any, Callable, Mapping

import torch
from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
from torchvision.models import inception as tv

from clip2gan import hub

__all__ = ["FIDInceptionV3", "inception_feature_extractor", "quantise"]


def quantise(images: torch.Tensor) -> torch.Tensor:
    """`[B, 3, H, W]` in [-1, 1] → uint8 in [0, 255], rounded to nearest (08_evaluation.ipynb)."""
    return ((images.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def _random_state() -> dict[str, torch.Tensor]:
    """A randomly initialised state dict in the file's layout (torchvision's `Inception3(num_classes=1008,
    aux_logits=False)`: the same names and shapes), for tests and benchmarks without the weights."""
    return tv.Inception3(num_classes=1008, aux_logits=False, init_weights=False).state_dict()


class FIDInceptionV3(torch.nn.Module):
    """TF Inception-v3 (2015-12-05) up to pool3: images `[B, 3, H, W]` in [-1, 1] → `[B, 2048]` (08_evaluation.ipynb).

    weights: a path to pytorch-fid's `pt_inception-2015-12-05-6726825d.pth`, its state dict, or None
    for random weights in the same layout (benchmarks, tests). The file is read with
    `weights_only=True` and handed to torch-fidelity's `FeatureExtractorInceptionV3`, which loads it
    strictly. `state_dict()` and `load_state_dict()` use the file's names (no prefix).
    """

    def __init__(self, weights: str | os.PathLike | Mapping[str, torch.Tensor] | None = None) -> None:
        super().__init__()
        if weights is None:
            state = _random_state()
        elif isinstance(weights, Mapping):
            state = dict(weights)
        else:
            state = torch.load(weights, map_location="cpu", weights_only=True)
        buffer = io.BytesIO()  # torch-fidelity reads a file; a buffer spares a temporary one
        torch.save(state, buffer)
        buffer.seek(0)
        net = FeatureExtractorInceptionV3("clip2gan-inception-fid", ["2048"], feature_extractor_weights_path=buffer)
        self.net = net.eval().requires_grad_(False)  # torch-fidelity 0.3 leaves it in training mode (batch statistics)

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False):
        return self.net.load_state_dict(state_dict, strict=strict, assign=assign)

    def state_dict(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return self.net.state_dict(*args, **kwargs)

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (features,) = self.net(quantise(x))
        return features.float()


def inception_feature_extractor(path: str | os.PathLike | None = None, device: str | torch.device = "cpu",
                                download: bool | None = None) -> Callable[[torch.Tensor], torch.Tensor]:
    """images `[B, 3, H, W]` in [-1, 1] → standard FID features `[B, 2048]` (08_evaluation.ipynb).

    Weights: `path`, or `clip2gan.hub.resolve('inception-fid')` (`CLIP2GAN_INCEPTION_FID`, `data/`,
    the cache, or a download when allowed); offline without the file: `clip2gan.hub.WeightsNotFound`
    naming the file, its URL and the variable to set.
    """
    file = hub.resolve(path or "inception-fid", download=download)
    net = FIDInceptionV3(file).to(device).eval()

    @torch.no_grad()
    def extract(images: torch.Tensor) -> torch.Tensor:
        return net(images.to(device))

    return extract
