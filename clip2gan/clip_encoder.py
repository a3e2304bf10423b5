"""The CLIP side of CLIP2GAN: images and prompts to L2-normalised features (01_clip_embedding.ipynb).

CLIP2GAN trains its mapping network on CLIP *image* features and feeds it CLIP *text* features at
test time (paper §3.1, Fig. 2-3). `ClipEncoder` wraps one open_clip model so that both towers can be
called the same way in every profile:

* `encode_image(x)`: `x: [N, 3, H, W]` in the generator's range [-1, 1], **any size**. The model's
  own preprocessing (resize with its interpolation, centre crop, mean/std from its preprocess
  config) is re-done with differentiable tensor operations, so gradients reach `x` (the identity of
  the torchvision/PIL pipeline, which cannot be differentiated). Returns `[N, D]`, unit L2 norm.
* `encode_text(prompts)`: a list of strings through the model's tokenizer. Over-long prompts are
  truncated with a `PromptTruncatedWarning`; an empty or whitespace-only prompt or a non-string is a
  `ValueError` that names the offending item. Returns `[N, D]`, unit L2 norm.

The CLIP model is frozen by default (`requires_grad=False`, always in eval mode): CLIP2GAN only
trains the mapping network and the discriminator.

Where the weights come from (`ClipEncoder.from_profile`):

* `toyfaces`: the small CLIP trained by this project (`clip2gan.toy.clip.load('toyfaces-clip')`);
* `ffhq`, `afhqcat`, `afhqdog`, `lsunchurch`: open_clip `ViT-B-16-quickgelu` with OpenAI's weights
  (the paper's best CLIP, Table 3), or `clip_model='ViT-B-32-quickgelu'` for the Table 3 ablation.
  The weights come through the Hugging Face cache (or open_clip's `~/.cache/clip`); with
  `HF_HUB_OFFLINE=1` only the cache is consulted. Missing weights raise `clip2gan.hub.WeightsNotFound`
  naming the repository, file, cache folder and variables, never a stack trace from huggingface_hub.

The modality gap between these image and text features, and the project's bridges across it, are
in `clip2gan.modality_gap`.
"""

from __future__ import annotations

import os
import urllib.parse
import warnings
from typing import Any, Mapping, Sequence

import open_clip
import torch
import torch.nn.functional as F
from huggingface_hub import try_to_load_from_cache
from huggingface_hub.constants import HF_HUB_CACHE as hf_cache
from open_clip import pretrained as ocp
from torch import nn

from clip2gan.hub import WeightsNotFound, downloads_allowed, reachable
from clip2gan.profiles import get_profile
from clip2gan.toy import clip as toyclip

__all__ = [
    "ClipEncoder",
    "PromptTruncatedWarning",
    "PAPER_CLIP_MODELS",
    "differentiable_preprocess",
    "check_prompts",
]

# The two CLIPs of the paper's Table 3 (open_clip names; OpenAI weights need the -quickgelu variants).
PAPER_CLIP_MODELS = ("ViT-B-16-quickgelu", "ViT-B-32-quickgelu")

_OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
_OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


class PromptTruncatedWarning(UserWarning):
    """A prompt had more tokens than the text encoder's context length and was cut."""


# ---------------------------------------------------------------------------------------------
# Preprocessing as tensor operations


def _pair(size: Any) -> tuple[int, int]:
    if isinstance(size, (tuple, list)):
        if len(size) != 2:
            raise ValueError(f"image size must be an int or (height, width), got {size!r}")
        return int(size[0]), int(size[1])
    return int(size), int(size)


def _resize(x: torch.Tensor, size: tuple[int, int], interpolation: str) -> torch.Tensor:
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    if interpolation in ("bicubic", "bilinear"):
        # antialias=True low-pass filters when shrinking (as PIL does); no effect when enlarging.
        return F.interpolate(x, size=size, mode=interpolation, align_corners=False, antialias=True)
    if interpolation == "nearest":
        return F.interpolate(x, size=size, mode="nearest-exact")
    raise ValueError(f"unsupported interpolation {interpolation!r} (bicubic, bilinear or nearest)")


def differentiable_preprocess(
    x: torch.Tensor,
    size: int | tuple[int, int],
    mean: Sequence[float] = _OPENAI_MEAN,
    std: Sequence[float] = _OPENAI_STD,
    interpolation: str = "bicubic",
    resize_mode: str = "shortest",
    fill_color: int = 0,
) -> torch.Tensor:
    """open_clip's image preprocessing on a tensor batch, differentiable (01_clip_embedding.ipynb).

    x: `[N, 3, H, W]` in [-1, 1] -> `[N, 3, *size]`, normalised with `mean`/`std` (the values the
    model was trained with). `resize_mode` follows open_clip's `PreprocessCfg`:

    * 'shortest' (CLIP's default): resize so the shorter side fits, then centre-crop;
    * 'longest': resize so the longer side fits, then pad with `fill_color` (0-255) to the size;
    * 'squash': resize to the size, ignoring the aspect ratio.

    Values are clamped to [0, 1] after resizing, as PIL's 8-bit output is (bicubic overshoots).
    """
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"images must be [N, 3, H, W], got shape {tuple(x.shape)}")
    th, tw = _pair(size)
    h, w = int(x.shape[-2]), int(x.shape[-1])
    x = (x.float() + 1.0) * 0.5  # [-1, 1] -> [0, 1], the range torchvision's ToTensor produces
    if resize_mode == "squash":
        x = _resize(x, (th, tw), interpolation)
    elif resize_mode == "shortest":
        # torchvision's Resize(int) rule: the scaled side gets exactly the size, the other floor().
        if th / h >= tw / w:
            nh, nw = th, max(tw, int(w * th / h))
        else:
            nh, nw = max(th, int(h * tw / w)), tw
        x = _resize(x, (nh, nw), interpolation)
        top, left = int(round((nh - th) / 2.0)), int(round((nw - tw) / 2.0))
        x = x[:, :, top:top + th, left:left + tw]
    elif resize_mode == "longest":
        scale = min(th / h, tw / w)
        nh, nw = min(th, max(1, round(h * scale))), min(tw, max(1, round(w * scale)))
        x = _resize(x, (nh, nw), interpolation)
        pt, pl = (th - nh) // 2, (tw - nw) // 2
        x = F.pad(x, (pl, tw - nw - pl, pt, th - nh - pt), value=fill_color / 255.0)
    else:
        raise ValueError(f"unknown resize_mode {resize_mode!r} (shortest, longest or squash)")
    x = x.clamp(0.0, 1.0)
    m = torch.as_tensor(mean, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    s = torch.as_tensor(std, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x - m) / s


# ---------------------------------------------------------------------------------------------
# Prompts


def check_prompts(prompts: Any) -> list[str]:
    """Validate prompts; returns them as a list (01_clip_embedding.ipynb).

    A single string is accepted as one prompt. Raises `ValueError` for an empty list, a non-string
    item, or an empty / whitespace-only prompt, naming the item's index.
    """
    if isinstance(prompts, str):
        prompts = [prompts]
    if not isinstance(prompts, (list, tuple)):
        raise ValueError(f"prompts must be a list of strings, got {type(prompts).__name__}")
    if len(prompts) == 0:
        raise ValueError("prompts is an empty list: give at least one prompt")
    out = []
    for i, p in enumerate(prompts):
        if not isinstance(p, str):
            raise ValueError(f"prompt {i} is a {type(p).__name__} ({p!r}), not a string")
        if not p.strip():
            raise ValueError(f"prompt {i} is empty or only whitespace ({p!r}): CLIP needs a description")
        out.append(p)
    return out


# ---------------------------------------------------------------------------------------------
# The encoder


def _freeze(module: nn.Module) -> None:
    for p in module.parameters():
        p.requires_grad_(False)
    module.eval()


class ClipEncoder(nn.Module):
    """A frozen open_clip model with differentiable image preprocessing (01_clip_embedding.ipynb).

    model: an open_clip `CLIP` (anything with `encode_image`, `encode_text` and `visual`);
    tokenizer: its tokenizer (`tokenizer(list[str]) -> LongTensor [N, context_length]`);
    preprocess_cfg: open_clip's preprocess dict (`size`, `mean`, `std`, `interpolation`,
    `resize_mode`, `fill_color`); None reads `model.visual.preprocess_cfg`.
    frozen: True (default) freezes the model and keeps it in eval mode even under `.train()`.
    """

    def __init__(self, model: nn.Module, tokenizer: Any, preprocess_cfg: Mapping[str, Any] | None = None,
                 frozen: bool = True, name: str = ""):
        super().__init__()
        self.model = model
        self.tokenizer = tokenizer
        self.name = name
        self.frozen = bool(frozen)
        visual = getattr(model, "visual", model)
        cfg = dict(getattr(visual, "preprocess_cfg", None) or {})
        cfg.update(dict(preprocess_cfg or {}))
        size = cfg.get("size", getattr(visual, "image_size", None))
        if size is None:
            raise ValueError("cannot tell the model's image size: pass preprocess_cfg={'size': ...}")
        self.preprocess_cfg = {
            "size": _pair(size),
            "mean": tuple(float(v) for v in cfg.get("mean", _OPENAI_MEAN)),
            "std": tuple(float(v) for v in cfg.get("std", _OPENAI_STD)),
            "interpolation": cfg.get("interpolation", "bicubic"),
            "resize_mode": cfg.get("resize_mode", "shortest"),
            "fill_color": int(cfg.get("fill_color", 0)),
        }
        self.context_length = int(getattr(tokenizer, "context_length", None) or getattr(model, "context_length", 77))
        self.embed_dim = self._infer_embed_dim(model)
        if self.frozen:
            _freeze(self.model)

    @staticmethod
    def _infer_embed_dim(model: nn.Module) -> int:
        visual = getattr(model, "visual", None)
        dim = getattr(visual, "output_dim", None)
        if dim is None and getattr(model, "text_projection", None) is not None:
            proj = model.text_projection
            dim = proj.shape[1] if isinstance(proj, torch.Tensor) else getattr(proj, "out_features", None)
        if dim is None:
            raise ValueError("cannot tell the CLIP embedding size of this model")
        return int(dim)

    # -- housekeeping ------------------------------------------------------------------------
    def train(self, mode: bool = True) -> "ClipEncoder":
        super().train(mode)
        if self.frozen:
            self.model.eval()  # a frozen CLIP never switches to training behaviour (dropout etc.)
        return self

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(getattr(self.model, "visual", self.model).parameters()).dtype

    @property
    def image_size(self) -> tuple[int, int]:
        return self.preprocess_cfg["size"]

    def extra_repr(self) -> str:
        return (f"name={self.name!r}, embed_dim={self.embed_dim}, image_size={self.image_size}, "
                f"context_length={self.context_length}, frozen={self.frozen}")

    # -- images ------------------------------------------------------------------------------
    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """x: `[N, 3, H, W]` in [-1, 1] -> the model's input `[N, 3, *image_size]` (differentiable)."""
        _check_images(x)
        cfg = self.preprocess_cfg
        return differentiable_preprocess(x, cfg["size"], cfg["mean"], cfg["std"], cfg["interpolation"],
                                         cfg["resize_mode"], cfg["fill_color"])

    def encode_image(self, x: torch.Tensor) -> torch.Tensor:
        """x: `[N, 3, H, W]` in [-1, 1], any H, W -> f_img `[N, D]`, unit L2 norm (eq. 1, C_img).

        Differentiable with respect to `x` (the CLIP weights themselves stay frozen).
        """
        pixels = self.preprocess(x).to(device=self.device, dtype=self.dtype)
        f = self.model.encode_image(pixels)
        return F.normalize(f.float(), dim=-1)

    def image_intermediates(self, x: torch.Tensor, indices: int | Sequence[int] | None = None) -> list[torch.Tensor]:
        """Feature maps of the image tower's blocks, `[N, C, h, w]` each (04_losses.ipynb).

        indices: as open_clip's `forward_intermediates` (None: every block; int n: the last n).
        Used by `clip2gan.losses.LPIPSLoss(trunk='clip')`. Differentiable with respect to `x`.
        """
        visual = self.model.visual
        if not hasattr(visual, "forward_intermediates"):
            raise TypeError(f"{type(visual).__name__} has no forward_intermediates(); use another LPIPS trunk")
        pixels = self.preprocess(x).to(device=self.device, dtype=self.dtype)
        out = visual.forward_intermediates(pixels, indices=indices, intermediates_only=True)
        return [t.float() for t in out["image_intermediates"]]

    # -- text --------------------------------------------------------------------------------
    def count_tokens(self, prompt: str) -> int:
        """Tokens of one prompt including the start and end tokens (before truncation)."""
        encode = getattr(self.tokenizer, "encode", None)
        if callable(encode):
            return len(encode(prompt)) + 2
        ids = self.tokenizer([prompt], context_length=100_000)  # pad far beyond any real prompt
        return int((ids != 0).sum())

    def tokenize(self, prompts: Sequence[str] | str) -> torch.Tensor:
        """Validated prompts -> token ids `[N, context_length]`; warns for each truncated prompt."""
        prompts = check_prompts(prompts)
        for i, p in enumerate(prompts):
            n = self.count_tokens(p)
            if n > self.context_length:
                warnings.warn(
                    f"prompt {i} has {n} tokens (with start/end), more than the text encoder's context length "
                    f"{self.context_length}; it was truncated to its first {self.context_length - 2} tokens: "
                    f"{p[:60]!r}{'...' if len(p) > 60 else ''}",
                    PromptTruncatedWarning,
                    stacklevel=3,
                )
        return self.tokenizer(prompts, context_length=self.context_length)

    def encode_text(self, prompts: Sequence[str] | str) -> torch.Tensor:
        """prompts: list of N non-empty strings -> f_text `[N, D]`, unit L2 norm (C_text)."""
        tokens = self.tokenize(prompts).to(self.device)
        f = self.model.encode_text(tokens)
        return F.normalize(f.float(), dim=-1)

    # -- construction ------------------------------------------------------------------------
    @classmethod
    def from_open_clip(cls, name: str, pretrained: str | None = None, device: str | torch.device = "cpu",
                       cache_dir: str | None = None, frozen: bool = True, **model_kwargs: Any) -> "ClipEncoder":
        """Build an open_clip model by name (01_clip_embedding.ipynb).

        pretrained: None (random weights: offline, what tests use), an open_clip tag such as
        'openai', or a path to a checkpoint file. A tag is resolved from the Hugging Face cache (or
        open_clip's `~/.cache/clip`) before the model is built; if the file is not there and cannot be
        downloaded (offline, `HF_HUB_OFFLINE=1`), `WeightsNotFound` says what was looked for and how
        to provide it. `model_kwargs` go to `open_clip.create_model`.
        """

        force_pp: dict[str, Any] = {}
        checkpoint = pretrained
        if pretrained and not os.path.isfile(pretrained):
            tag_cfg = open_clip.get_pretrained_cfg(name, pretrained)
            if not tag_cfg:
                if name not in open_clip.list_models():
                    raise ValueError(f"unknown open_clip model {name!r}; see open_clip.list_models()")
                tags = open_clip.list_pretrained_tags_by_model(name)
                raise ValueError(f"{pretrained!r} is neither a file nor a weights tag of {name}; tags: {tags}")
            if tag_cfg.get("quick_gelu", False) and "quickgelu" not in name.lower() and not model_kwargs.get(
                    "force_quick_gelu", False):
                raise ValueError(
                    f"the {pretrained!r} weights were trained with QuickGELU; use '{name}-quickgelu' "
                    "(or force_quick_gelu=True), otherwise the features are wrong")
            checkpoint = _resolve_open_clip_weights(name, pretrained, tag_cfg, cache_dir)
            force_pp = {k: tag_cfg[k] for k in ("mean", "std", "interpolation", "resize_mode") if k in tag_cfg}
        if force_pp:
            model_kwargs.setdefault("force_preprocess_cfg", force_pp)
        model = open_clip.create_model(name, pretrained=checkpoint, device=device, **model_kwargs)
        tokenizer = open_clip.get_tokenizer(name)
        return cls(model, tokenizer, frozen=frozen, name=f"{name}/{pretrained}" if pretrained else name)

    @classmethod
    def from_profile(cls, profile: str = "toyfaces", device: str | torch.device = "cpu", clip: str | None = None,
                     clip_model: str | None = None, pretrained: str | None = None, **kwargs: Any) -> "ClipEncoder":
        """The CLIP of a world (01_clip_embedding.ipynb).

        A world whose CLIP was trained by this project ('toyfaces') loads it with `clip2gan.toy.clip.load`
        (`clip`: another checkpoint, path or hub name). The paper's worlds use open_clip:
        `ViT-B-16-quickgelu` with OpenAI weights, or the model given by `clip_model` (e.g.
        'ViT-B-32-quickgelu', Table 3) and tag or checkpoint `pretrained`.
        """
        record = get_profile(profile)
        if record.toy_clip and clip_model is None:
            name = str(clip or record.clip)
            model, tokenizer = toyclip.load(name, device=device)[:2]
            return cls(model.to(device), tokenizer, name=name, **kwargs)
        name = clip_model or record.clip_model
        tag = pretrained if pretrained is not None else (record.clip_tag or "openai")
        return cls.from_open_clip(name, tag, device=device, **kwargs)


def _check_images(x: Any) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"images must be a torch.Tensor [N, 3, H, W] in [-1, 1], got {type(x).__name__}")
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"images must be [N, 3, H, W] in [-1, 1], got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"images must be floating point in [-1, 1], got {x.dtype} (use x.float() / 127.5 - 1)")


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


def _resolve_open_clip_weights(name: str, tag: str, cfg: Mapping[str, Any], cache_dir: str | None) -> str:
    """The local file of an open_clip weights tag, honouring HF_HUB_OFFLINE; WeightsNotFound if absent."""

    offline = _truthy(os.environ.get("HF_HUB_OFFLINE")) or _truthy(os.environ.get("TRANSFORMERS_OFFLINE"))
    looked: list[str] = []
    hf = cfg.get("hf_hub", "")
    url = cfg.get("url", "")

    if hf:
        if hf.endswith("/"):  # 'org/repo/': the default file name
            repo_id, filename = hf.rstrip("/"), ocp.HF_WEIGHTS_NAME
        else:
            repo_id, filename = os.path.split(hf)
        candidates = [*ocp._get_safe_alternatives(filename), filename]
        for fn in candidates:
            hit = try_to_load_from_cache(repo_id, fn, cache_dir=cache_dir)
            looked.append(f"Hugging Face cache: {repo_id}/{fn}")
            if isinstance(hit, str) and os.path.isfile(hit):
                return hit
    url_file = None
    if url:
        url_file = os.path.join(cache_dir or os.path.expanduser("~/.cache/clip"), os.path.basename(url))
        looked.append(url_file)
        if os.path.isfile(url_file):
            return url_file

    host = "huggingface.co" if hf else (urllib.parse.urlparse(url).hostname or "")
    if offline:
        error = "HF_HUB_OFFLINE is set"
    elif not downloads_allowed():
        error = "downloads are off: set CLIP2GAN_DOWNLOAD=1 to allow one"
    elif host and not reachable(host):
        error = f"no network: {host} did not answer within 3 s"
    else:
        try:
            path = ocp.download_pretrained(dict(cfg), cache_dir=cache_dir)
            if path and os.path.isfile(path):
                return path
            error = "open_clip returned no file"
        except Exception as err:  # network errors come in many types; all mean "not available"
            error = f"{type(err).__name__}: {str(err).splitlines()[0][:200] if str(err) else ''}"

    lines = [
        f"CLIP weights {name} / '{tag}' are not available ({error}).",
        "  Looked in: " + "; ".join(looked),
    ]
    if hf:
        lines.append(f"  Hugging Face repository: {hf.rstrip('/')} (cache: {cache_dir or hf_cache}, "
                     "set HF_HOME or HF_HUB_CACHE to move it)")
    if url:
        lines.append(f"  Direct URL: {url}")
    lines.append(
        "  On a machine with internet: python -c \"import open_clip; "
        f"open_clip.create_model('{name}', pretrained='{tag}')\" and copy the cache here, or pass "
        "pretrained='/path/to/checkpoint' (or allow a download: CLIP2GAN_DOWNLOAD=1 and HF_HUB_OFFLINE unset).")
    raise WeightsNotFound("\n".join(lines))
