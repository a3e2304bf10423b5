"""The mapping network M: a CLIP feature to a StyleGAN2 w+ code (03_mapping_network.ipynb).

Paper §3.1: "a 12-layer fully connected layer with each layer post-connected to the activation
layer Leaky ReLU", 512-d CLIP feature in, 18 × 512 w+ code out (eq. 3: z = M(f)). Only the depth,
the activation and the input/output sizes are given (docs/design.md#the-mapping-networks-layers).
Our choices:

Widths. Eleven hidden layers of `hidden_dim = 512` (the CLIP width and StyleGAN's w width), then
one layer `hidden_dim -> num_ws * w_dim` that emits all w+ rows at once, reshaped to
`[N, num_ws, w_dim]`. One shared trunk with a joint last layer lets each w+ row (coarse pose/shape
rows, fine colour rows) be a different function of the feature, which the paper's 18 × 512
output requires, at 4.7 M of the 7.6 M parameters (paper config 512 -> 18 × 512, 12 layers:
7,617,024 parameters; `paper_parameter_count()`).

Layers. StyleGAN2's own `FullyConnectedLayer` (from `clip2gan.stylegan2`): equalised learning rate
(weights stored N(0, 1), scaled by `lr_multiplier / sqrt(fan_in)` at run time), zero bias, and
LeakyReLU(0.2) with gain sqrt(2) after *every* layer, the last one included (the paper's wording;
LeakyReLU is a bijection, so the last activation does not restrict the codes M can emit, and
StyleGAN's own w is also the output of a LeakyReLU layer). The paper's optimiser settings (Adam,
lr 2e-3) are StyleGAN2's, which assume equalised learning rate; with plain `nn.Linear` the same
learning rate would be a much larger relative step for 512-wide layers. `lr_multiplier = 1` (not
StyleGAN's 0.01 for its own mapping network): M is the only network being trained and must move.

Input. The CLIP feature is scaled to unit mean square (StyleGAN's `normalize_2nd_moment`), so M
sees the same input scale whether the feature was L2-normalised (norm 1), unnormalised (open_clip's
raw output) or perturbed by the diversity noise.

Centred input (`centre_input=True`, off by default; 10_comparisons.ipynb). An M trained the C3 way
(Zhang et al., ICLR 2024: collapse, then corrupt) sees CLIP features minus the training images' mean;
the mean is stored as the `input_mean` buffer and subtracted before the normalisation, so the saved M
still takes raw CLIP features and its image path needs no special case.

Output offset (`offset_w_avg=True`, default). M predicts a residual around the generator's average
latent: `ws = w_avg + M_net(f)`, with `w_avg = G.mapping.w_avg` stored as a buffer. StyleGAN2's good
images live near `w_avg` (the centre of the truncation trick); a freshly initialised network
outputs codes near the origin, which for a real generator are far from `w_avg` and decode to
artefacts. With the offset, the untrained M already produces the average face and training starts
from a meaningful reconstruction (pSp and e4e add the average latent to their encoders' outputs
for the same reason). The last layer is initialised `last_init_scale = 0.1` times smaller, so the
untrained residual is small (per-coordinate RMS about 0.1) and the untrained codes lie close to
`w_avg`; `03_mapping_network.ipynb` measures the distance with and without the offset.

Fewer free rows (`free_rows=k`, off by default; 05_training.ipynb). The paper's M writes every one of
the num_ws rows of w+ freely, and codes far from the distribution of G's own w (whose rows are all
equal) decode to less clean images: the distortion-perception-editability trade-off of encoders into
w+ (Tov et al., "Designing an Encoder for StyleGAN Image Manipulation", SIGGRAPH 2021). With
`free_rows=k` the last layer emits k rows, `hidden_dim -> k * w_dim`, and w+ row r takes the emitted
row g(r) = floor(r k / num_ws): k contiguous groups whose sizes differ by at most one (`row_groups`).
k = 1 is StyleGAN's own w space (one w broadcast to every row), k = num_ws the paper's layout. A
checkpoint records `free_rows` only when it is set, so older checkpoints load unchanged.

Progressive rows (`unlocked_rows=n`, off by default; 05_training.ipynb). e4e trains its encoder
progressively: first a single w, then one more row of w+ at a time. With `unlocked_rows=n` the rows
r >= n are replaced by row 0 after the last layer, ws[:, r] = ws[:, 0]; the trainer raises n on its
schedule (`clip2gan.train.TrainConfig.delta_progressive`) and a checkpoint written mid-schedule
records n, so the saved M decodes exactly as it was trained.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from clip2gan.stylegan2 import FullyConnectedLayer, normalize_2nd_moment

__all__ = ["MappingNetwork", "paper_parameter_count", "row_groups"]


class MappingNetwork(nn.Module):
    """CLIP feature f `[N, in_dim]` -> w+ code `[N, num_ws, w_dim]` (03_mapping_network.ipynb).

    in_dim: CLIP embedding size (512 for ViT-B/16 and ViT-B/32); num_ws, w_dim: the generator's
    (`G.num_ws`, `G.w_dim`; 18 and 512 at 1024 px); n_layers: fully connected layers (paper: 12;
    Table 3 also tries 4 and 8); hidden_dim: width of the hidden layers (512);
    lr_multiplier: equalised-learning-rate multiplier of every layer (1);
    w_avg: `[w_dim]` initial value of the `w_avg` buffer (e.g. `G.mapping.w_avg`; zeros if None);
    offset_w_avg: add `w_avg` to the output (True; see the module docstring);
    last_init_scale: scale of the last layer's initial weights (0.1: untrained outputs near w_avg);
    centre_input: subtract the `input_mean` buffer `[in_dim]` (`set_input_mean`) from every input (C3's
    collapse; see the module docstring);
    free_rows: k distinct rows emitted and spread over the num_ws rows in contiguous groups (`row_groups`;
    None: every row free, the paper; 1: a single w broadcast to every row) (05_training.ipynb);
    unlocked_rows: n, the rows r >= n are copies of row 0 (e4e's progressive training; None: none copied;
    `set_unlocked_rows`) (05_training.ipynb).
    """

    def __init__(self, in_dim: int, num_ws: int, w_dim: int, n_layers: int = 12, hidden_dim: int = 512,
                 lr_multiplier: float = 1.0, w_avg: torch.Tensor | None = None, offset_w_avg: bool = True,
                 normalize_input: bool = True, last_init_scale: float = 0.1, centre_input: bool = False,
                 free_rows: int | None = None, unlocked_rows: int | None = None):
        super().__init__()
        if n_layers < 1:
            raise ValueError(f"n_layers must be >= 1, got {n_layers}")
        if min(in_dim, num_ws, w_dim, hidden_dim) < 1:
            raise ValueError(f"sizes must be positive: in_dim={in_dim}, num_ws={num_ws}, w_dim={w_dim}, "
                             f"hidden_dim={hidden_dim}")
        self.in_dim, self.num_ws, self.w_dim = int(in_dim), int(num_ws), int(w_dim)
        self.n_layers, self.hidden_dim = int(n_layers), int(hidden_dim)
        self.lr_multiplier = float(lr_multiplier)
        self.offset_w_avg = bool(offset_w_avg)
        self.normalize_input = bool(normalize_input)
        self.last_init_scale = float(last_init_scale)
        self.centre_input = bool(centre_input)
        self.free_rows = _check_rows("free_rows", free_rows, self.num_ws)
        self.unlocked_rows: int | None = None
        self.set_unlocked_rows(unlocked_rows)

        out_rows = self.num_ws if self.free_rows is None else self.free_rows
        widths = [self.in_dim] + [self.hidden_dim] * (self.n_layers - 1) + [out_rows * self.w_dim]
        for i in range(self.n_layers):
            layer = FullyConnectedLayer(widths[i], widths[i + 1], activation="lrelu", lr_multiplier=self.lr_multiplier)
            setattr(self, f"fc{i}", layer)
        with torch.no_grad():
            getattr(self, f"fc{self.n_layers - 1}").weight.mul_(self.last_init_scale)

        self.register_buffer("w_avg", torch.zeros([self.w_dim]))
        if w_avg is not None:
            self.set_w_avg(w_avg)
        if self.centre_input:  # only then: older checkpoints' state dicts keep loading strictly
            self.register_buffer("input_mean", torch.zeros([self.in_dim]))
        if self.free_rows is not None:  # not persistent: the state dict stays M's weights
            self.register_buffer("row_index", torch.tensor(row_groups(self.num_ws, self.free_rows)), persistent=False)

    @property
    def config(self) -> dict[str, Any]:
        """Constructor arguments (JSON-friendly; what a checkpoint records besides the state dict)."""
        return {"in_dim": self.in_dim, "num_ws": self.num_ws, "w_dim": self.w_dim, "n_layers": self.n_layers,
                "hidden_dim": self.hidden_dim, "lr_multiplier": self.lr_multiplier,
                "offset_w_avg": self.offset_w_avg, "normalize_input": self.normalize_input,
                "last_init_scale": self.last_init_scale, "centre_input": self.centre_input,
                # only when set: a default M's config (and file) is what it was before these options
                **({"free_rows": self.free_rows} if self.free_rows is not None else {}),
                **({"unlocked_rows": self.unlocked_rows} if self.unlocked_rows is not None else {})}

    @classmethod
    def for_generator(cls, G: nn.Module, in_dim: int = 512, **kwargs: Any) -> "MappingNetwork":
        """An M sized for generator `G` (`G.num_ws`, `G.w_dim`) with `w_avg = G.mapping.w_avg`."""
        w_avg = getattr(getattr(G, "mapping", None), "w_avg", None)
        return cls(in_dim, int(G.num_ws), int(G.w_dim), w_avg=w_avg, **kwargs)

    def set_w_avg(self, w_avg: torch.Tensor) -> "MappingNetwork":
        """Copy the generator's average latent `[w_dim]` into the `w_avg` buffer."""
        w_avg = torch.as_tensor(w_avg).detach()
        if tuple(w_avg.shape) != (self.w_dim,):
            raise ValueError(f"w_avg must be [{self.w_dim}], got {tuple(w_avg.shape)}")
        self.w_avg.copy_(w_avg.to(self.w_avg))
        return self

    def set_input_mean(self, mean: torch.Tensor) -> "MappingNetwork":
        """Store the mean `[in_dim]` subtracted from every input (an M built with `centre_input=True`)."""
        if not self.centre_input:
            raise ValueError("this MappingNetwork was built without centre_input=True: it has no input mean")
        mean = torch.as_tensor(mean).detach()
        if tuple(mean.shape) != (self.in_dim,):
            raise ValueError(f"the input mean must be [{self.in_dim}], got {tuple(mean.shape)}")
        self.input_mean.copy_(mean.to(self.input_mean))
        return self

    def set_unlocked_rows(self, n: int | None) -> "MappingNetwork":
        """Let rows 0..n-1 be free and make rows n..num_ws-1 copies of row 0 (e4e's progressive
        training; 05_training.ipynb). None or num_ws: every row free."""
        n = _check_rows("unlocked_rows", n, self.num_ws)
        self.unlocked_rows = None if n is None or n == self.num_ws else n
        return self

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        """f: `[N, in_dim]` -> ws `[N, num_ws, w_dim]` (eq. 3)."""
        if f.ndim != 2 or f.shape[1] != self.in_dim:
            raise ValueError(f"MappingNetwork expects features [N, {self.in_dim}], got {tuple(f.shape)}")
        x = f.float()
        if self.centre_input:
            x = x - self.input_mean
        if self.normalize_input:
            x = normalize_2nd_moment(x)
        for i in range(self.n_layers):
            x = getattr(self, f"fc{i}")(x)
        if self.free_rows is None:
            ws = x.view(-1, self.num_ws, self.w_dim)
        else:  # [N, k, w_dim] -> [N, num_ws, w_dim], row r = emitted row row_groups(num_ws, k)[r]
            ws = x.view(-1, self.free_rows, self.w_dim).index_select(1, self.row_index)
        if self.unlocked_rows is not None:  # rows not yet unlocked repeat row 0
            n = self.unlocked_rows
            ws = torch.cat([ws[:, :n], ws[:, :1].expand(-1, self.num_ws - n, -1)], dim=1)
        if self.offset_w_avg:
            ws = ws + self.w_avg
        return ws

    def extra_repr(self) -> str:
        rows = "".join(f", {k}={getattr(self, k)}" for k in ("free_rows", "unlocked_rows") if getattr(self, k) is not None)
        return (f"in_dim={self.in_dim}, num_ws={self.num_ws}, w_dim={self.w_dim}, n_layers={self.n_layers}, "
                f"hidden_dim={self.hidden_dim}, offset_w_avg={self.offset_w_avg}{rows}")


def _check_rows(name: str, value: int | None, num_ws: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or int(value) != value or not 1 <= value <= num_ws:
        raise ValueError(f"{name} must be an integer from 1 to num_ws = {num_ws} (or None), got {value!r}")
    return int(value)


def row_groups(num_ws: int, k: int) -> list[int]:
    """Which of k emitted rows each of the num_ws w+ rows takes: row r -> floor(r k / num_ws) (05_training.ipynb).

    Contiguous groups, in order, whose sizes differ by at most one (num_ws = 8, k = 3: [0, 0, 0, 1, 1, 1, 2, 2]);
    k = 1 gives one group (a single w), k = num_ws the identity.
    """
    if not 1 <= k <= num_ws:
        raise ValueError(f"k must be from 1 to num_ws = {num_ws}, got {k}")
    return [r * k // num_ws for r in range(num_ws)]


def paper_parameter_count(in_dim: int = 512, num_ws: int = 18, w_dim: int = 512, n_layers: int = 12,
                          hidden_dim: int = 512) -> int:
    """Parameters of M without building it (weights + biases): 7,617,024 for the paper's config
    (512 -> 18 × 512, 12 layers, hidden 512). (03_mapping_network.ipynb)"""
    widths = [in_dim] + [hidden_dim] * (n_layers - 1) + [num_ws * w_dim]
    return sum(a * b + b for a, b in zip(widths[:-1], widths[1:]))
