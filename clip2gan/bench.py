"""Benchmarks: `python -m clip2gan.bench [NAME ...] [--device cpu|cuda] [--json out.json]`.

A small registry of named benchmarks; with no name, all of them run. Each benchmark returns a
JSON-friendly dict (printed as a table, optionally written with `--json`) and reports its figures
as ratios where a ratio is what matters (fast path vs naive path, fp16 vs fp32), because absolute
numbers depend on the machine. Add one with::

    from clip2gan.bench import register

    @register("editing", help="beta editing throughput")
    def bench_editing(args) -> dict: ...

Benchmarks: 'stylegan2' (synthesis throughput and latency; fused vs naive resampling; fp16 vs fp32
on CUDA). Introduced in 02_stylegan2_wplus.ipynb. 'editing' (EditingApp latency of a β change vs a
full re-encode per change, 07_editing.ipynb); 'fid' (feature throughput; eigenvalue Fréchet
distance vs scipy's sqrtm, 08_evaluation.ipynb).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional

import numpy as np
import torch

from clip2gan import hub
from clip2gan.cli import add_config_args, option
from clip2gan.clip_encoder import ClipEncoder
from clip2gan.edit import edit_image
from clip2gan.evaluation.inception import FIDInceptionV3
from clip2gan.evaluation.metrics import frechet_distance
from clip2gan.identity import IRSE50, face_crop
from clip2gan.losses import IdentityLoss, LPIPSLoss, d_loss, g_adv_loss, requires_grad
from clip2gan.mapping import MappingNetwork
from clip2gan.model import CLIP2GAN
from clip2gan.stylegan2 import Generator, set_resample_impl
from clip2gan.toy import clip as toyclip
from clip2gan.toy.nets import AttributeClassifier
from clip2gan.toy.stylegan2_recipe import GANTrainConfig, generator_kwargs
from clip2gan.train import TrainConfig, Trainer, discriminator_like
from clip2gan.viz import to_uint8
from clip2gan.widgets import EditingApp, png_bytes

__all__ = ["Benchmark", "BENCHMARKS", "Timing", "register", "timeit", "resolve_device", "main"]


@dataclass
class Benchmark:
    """A named benchmark: `func(args) -> dict`, its help line and the config dataclass of its own flags."""

    name: str
    func: Callable[[argparse.Namespace], dict[str, Any]]
    help: str = ""
    config: Optional[type] = None


@dataclass
class CommonConfig:
    """Flags every benchmark takes."""

    device: str = option("auto", "cpu, cuda or auto (cuda when available)")
    threads: Optional[int] = option(None, "torch.set_num_threads for CPU runs (default: torch's)")
    quick: bool = option(False, "fewer repetitions (smoke test)")
    json: Optional[str] = option(None, "also write the results as JSON to this path")


BENCHMARKS: dict[str, Benchmark] = {}


def register(name: str, help: str = "", config: Optional[type] = None):
    """Decorator: add `func(args) -> dict` to the registry under `name` (its own CLI subcommand);
    `config` is a dataclass whose fields (built with `clip2gan.cli.option`) are the benchmark's flags."""

    def wrap(func: Callable[[argparse.Namespace], dict[str, Any]]):
        BENCHMARKS[name] = Benchmark(name, func, help, config)
        return func

    return wrap


def resolve_device(device: str) -> torch.device:
    """'auto' -> cuda when available, else cpu."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(device)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Timing(float):
    """Best (minimum) wall-clock seconds of one call: a float, so `batch / timeit(...)` works, with
    `.wall` (the same value) and `.cpu`: CPU time of this process (all threads), which other
    processes competing for the cores do not inflate."""

    cpu: float

    def __new__(cls, wall: float, cpu: float) -> "Timing":
        obj = super().__new__(cls, wall)
        obj.cpu = cpu
        return obj

    @property
    def wall(self) -> float:
        return float(self)


def timeit(fn: Callable[[], Any], device: torch.device, warmup: int = 1, min_reps: int = 3, max_reps: int = 50,
           min_time: float = 0.5) -> Timing:
    """Time `fn()`: `warmup` untimed calls, then at least `min_reps` and at most `max_reps` timed
    calls, stopping once `min_time` seconds have been spent; returns the best wall time (a float)
    carrying the best CPU time as `.cpu` (minimum: the estimate least disturbed by other processes)."""
    for _ in range(warmup):
        fn()
    _sync(device)
    walls: list[float] = []
    cpus: list[float] = []
    start = time.perf_counter()
    while len(walls) < max_reps and (len(walls) < min_reps or time.perf_counter() - start < min_time):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        _sync(device)
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return Timing(min(walls), min(cpus))


def _environment(device: torch.device) -> dict[str, Any]:
    env = {"device": str(device), "torch": torch.__version__, "python": platform.python_version(),
           "threads": torch.get_num_threads()}
    if hasattr(os, "getloadavg"):
        env["load_avg_1min"] = round(os.getloadavg()[0], 2)
        env["cpu_count"] = os.cpu_count()
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
    else:
        env["cpu"] = platform.processor() or platform.machine()
    return env


# ------------------------------------------------------------------------------------------------
# stylegan2


def _stylegan2_networks(device: torch.device) -> list[dict[str, Any]]:
    """(name, resolution, Generator kwargs, batches, reps) for the networks this project uses."""
    nets = [
        # The toy world's generator (clip2gan.toy.stylegan2_recipe.GANTrainConfig defaults, 28 labels).
        dict(name="toy-32", res=32, kwargs=generator_kwargs(GANTrainConfig()), batches=[1, 8, 32]),
        # A 64 px toy-world generator (twice the toy channel budget).
        dict(name="toy-64", res=64, kwargs=generator_kwargs(GANTrainConfig(resolution=64, channel_base=4096)),
             batches=[1, 8, 32]),
        # NVIDIA paper256 (the FFHQ-256 network): 14 x 512 w+.
        dict(name="paper256", res=256, kwargs=dict(z_dim=512, c_dim=0, w_dim=512, img_resolution=256, img_channels=3,
             synthesis_kwargs=dict(channel_base=16384, channel_max=512)),
             batches=[1] if device.type == "cpu" else [1, 8, 32]),
    ]
    if device.type == "cuda":
        # NVIDIA config-f (the FFHQ-1024 network): 18 x 512 w+.
        nets.append(dict(name="config-f-1024", res=1024, kwargs=dict(z_dim=512, c_dim=0, w_dim=512,
                         img_resolution=1024, img_channels=3, synthesis_kwargs=dict(channel_base=32768, channel_max=512)),
                         batches=[1, 8]))
    return nets


@dataclass
class StyleGAN2BenchConfig:
    max_res: Optional[int] = option(None, "skip networks above this resolution (default: all; 1024 only on CUDA)")


@register("stylegan2", help="synthesis images/s and latency; fused vs naive resampling; fp16 vs fp32 on CUDA",
          config=StyleGAN2BenchConfig)
def bench_stylegan2(args: argparse.Namespace) -> dict[str, Any]:
    device = resolve_device(args.device)
    threads_before = torch.get_num_threads()
    if device.type == "cpu" and not getattr(args, "threads", None):
        # Per-core figures: CPU time is a fair clock only single-threaded (idle OpenMP workers spin,
        # and on a busy machine they spin while their partner waits for a core).
        torch.set_num_threads(1)
    try:
        return _bench_stylegan2(args, device)
    finally:
        torch.set_num_threads(threads_before)


def _bench_stylegan2(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:

    quick = bool(getattr(args, "quick", False))
    max_res = getattr(args, "max_res", None)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    rows: list[dict[str, Any]] = []
    cpu_clock = device.type == "cpu"
    print(f"stylegan2 synthesis, noise_mode='const', eval mode, best of N, {_environment(device)}", flush=True)
    print("paths: default = what G.synthesis(ws) runs here (fused resampling; on CPU unfused modconv);\n"
          "       naive resampling = the same network with zero-stuffing + full-resolution convolutions;\n"
          "       grouped modconv = NVIDIA's fp32 inference choice (one grouped conv over the batch).\n"
          + ("ratios and img/s use process CPU time, one thread (robust to other load); wall ms beside it."
             if cpu_clock else "times are wall clock (CUDA synchronised)"), flush=True)
    header = (f"{'network':10s} {'res':>4s} {'batch':>5s} {'path':>17s} {'wall ms':>9s} {'cpu ms':>9s} "
              f"{'img/s':>8s} {'vs naive':>8s}")
    print(header)
    print("-" * len(header), flush=True)
    for spec in _stylegan2_networks(device):
        if max_res is not None and spec["res"] > max_res:
            continue
        torch.manual_seed(0)
        G = Generator(**spec["kwargs"]).to(device).eval().requires_grad_(False)
        slow = (spec["res"] >= 256 and device.type == "cpu") or quick
        reps = dict(min_reps=2, max_reps=2, min_time=0.0) if slow else dict(min_reps=3, min_time=0.3)
        for batch in spec["batches"]:
            gen = torch.Generator().manual_seed(batch)
            z = torch.randn([batch, G.z_dim], generator=gen).to(device)
            c = torch.zeros([batch, G.c_dim], device=device)
            entries: list[tuple[str, Timing]] = []
            with torch.inference_mode():
                ws = G.mapping(z, c)

                def run(G=G, ws=ws, **kw):
                    return G.synthesis(ws, noise_mode="const", **kw)

                set_resample_impl(G, "fast")
                t_fast = timeit(run, device, **reps)
                img_fast = run()
                set_resample_impl(G, "ref")
                t_naive = timeit(run, device, **reps)
                diff = (run() - img_fast).abs().max().item()
                set_resample_impl(G, "fast")
                entries += [("default", t_fast), ("naive resampling", t_naive)]
                if device.type == "cpu" and spec["res"] <= 64:
                    entries.append(("grouped modconv", timeit(lambda: run(fused_modconv=True), device, **reps)))
            key = (lambda t: t.cpu) if cpu_clock else (lambda t: t.wall)
            for path, t in entries:
                ratio = key(t_naive) / key(t)
                rows.append(dict(network=spec["name"], res=spec["res"], batch=batch, path=path, wall_ms=t.wall * 1e3,
                                 cpu_ms=t.cpu * 1e3, img_per_s=batch / key(t), speedup_vs_naive=ratio,
                                 max_abs_diff_fast_vs_naive=diff))
                print(f"{spec['name']:10s} {spec['res']:4d} {batch:5d} {path:>17s} {t.wall * 1e3:9.1f} "
                      f"{t.cpu * 1e3:9.1f} {batch / key(t):8.1f} {ratio:7.2f}x", flush=True)
            if device.type == "cuda":
                G16 = Generator(**{**spec["kwargs"], "synthesis_kwargs": {**spec["kwargs"]["synthesis_kwargs"],
                                                                       "num_fp16_res": 4}}).to(device).eval()
                G16.load_state_dict(G.state_dict(), strict=True)
                with torch.inference_mode():
                    t16 = timeit(lambda G16=G16, ws=ws: G16.synthesis(ws, noise_mode="const"), device, **reps)
                    diff16 = (G16.synthesis(ws, noise_mode="const") - img_fast).abs().max().item()
                rows.append(dict(network=spec["name"], res=spec["res"], batch=batch, path="fp16 (num_fp16_res=4)",
                                 wall_ms=t16.wall * 1e3, img_per_s=batch / t16.wall,
                                 speedup_vs_fp32=t_fast.wall / t16.wall, max_abs_diff_vs_fp32=diff16))
                print(f"{spec['name']:10s} {spec['res']:4d} {batch:5d} {'fp16 (4 top res)':>17s} "
                      f"{t16.wall * 1e3:9.1f} {'':>9s} {batch / t16.wall:8.1f}   fp16 vs fp32: "
                      f"{t_fast.wall / t16.wall:.2f}x faster, max |diff| {diff16:.3f}", flush=True)
        del G
    clock = "cpu_ms" if cpu_clock else "wall_ms"
    latency = {r["network"]: round(r[clock], 2) for r in rows if r["batch"] == 1 and r["path"] == "default"}
    print(f"single-image latency ({'CPU time, ' if cpu_clock else ''}ms): {latency}")
    worst = max((r.get("max_abs_diff_fast_vs_naive", 0.0) for r in rows), default=0.0)
    print(f"fused and naive resampling agree to max |diff| {worst:.2e}", flush=True)
    return {"environment": _environment(device), "rows": rows, "latency_ms": latency}


# ------------------------------------------------------------------------------------------------
# CLI


def build_parser() -> argparse.ArgumentParser:
    """`python -m clip2gan.bench [NAME] [flags]`: one subcommand per registered benchmark."""
    parser = argparse.ArgumentParser(prog="python -m clip2gan.bench", description=__doc__.split("\n\n")[0])
    add_config_args(parser, CommonConfig)
    sub = parser.add_subparsers(dest="name", metavar="NAME", help="benchmark to run (default: all)")
    add_config_args(sub.add_parser("all", help="run every benchmark"), CommonConfig)
    for bench in BENCHMARKS.values():
        p = sub.add_parser(bench.name, help=bench.help)
        add_config_args(p, CommonConfig)
        if bench.config:
            add_config_args(p, bench.config)
    return parser


def main(argv: Optional[list[str]] = None) -> dict[str, Any]:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    names = list(BENCHMARKS) if args.name in (None, "all") else [args.name]
    results: dict[str, Any] = {}
    for name in names:
        bench = BENCHMARKS[name]
        if bench.config:  # defaults of benchmark-specific options when run via 'all'
            for key, value in dataclasses.asdict(bench.config()).items():
                if not hasattr(args, key):
                    setattr(args, key, value)
        t0 = time.perf_counter()
        results[name] = bench.func(args)
        results[name]["seconds"] = time.perf_counter() - t0
        print(f"[{name}: {results[name]['seconds']:.1f} s]\n", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return results



# -------------------------------------------------------------------------------------------------
# training (the paper-size GPU check): one full CLIP2GAN step — CLIP → M → G, eq. 10, D step with GP


@dataclass
class TrainingBenchConfig:
    size: str = option("toy", "toy: 32 px world (CPU); ffhq: ViT-B-16 + 1024 px config-f G + IR-SE50 (GPU)",
                       choices=("toy", "ffhq"))
    batch: Optional[int] = option(None, "images per step (default 32 toy, 8 ffhq)")
    steps: Optional[int] = option(None, "timed steps (default 10 toy, 20 ffhq)")
    pieces: bool = option(True, "time each piece of the step on its own first (--no-pieces skips it)")


def _training_world(size: str, device: torch.device) -> dict[str, Any]:
    """Random-weight components at the requested size (nothing is downloaded)."""

    torch.manual_seed(0)
    if size == "toy":

        clip = ClipEncoder(toyclip.create_model(device=device), toyclip.get_tokenizer(), name="toyfaces-clip (random)")
        G = Generator(**generator_kwargs(GANTrainConfig(conditional=False)))
        identity, lpips = None, LPIPSLoss("clip", clip_encoder=clip)
    else:
        clip = ClipEncoder.from_open_clip("ViT-B-16-quickgelu", pretrained=None, device=device)
        G = Generator(z_dim=512, c_dim=0, w_dim=512, img_resolution=1024, img_channels=3,
                      mapping_kwargs={"num_layers": 8}, channel_base=32768, channel_max=512,
                      num_fp16_res=4, conv_clamp=256)
        identity = IdentityLoss(_RandomArcFace(IRSE50())).to(device)
        lpips = LPIPSLoss("alex-random", resize_to=256)
    G = G.to(device).eval().requires_grad_(False)
    return {"clip": clip.to(device), "G": G, "D": discriminator_like(G).to(device), "identity": identity,
            "lpips": lpips.to(device), "world": {"profile": "bench"}}


class _RandomArcFace(torch.nn.Module):
    """IR-SE50 with random weights behind the identity interface (the cost is what is measured)."""

    def __init__(self, net: torch.nn.Module):
        super().__init__()
        self.net = net.eval().requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:

        return torch.nn.functional.normalize(self.net(face_crop(x)), dim=-1)


def _component_times(world: dict[str, Any], x: torch.Tensor, amp: bool, reps: int = 3) -> list[tuple[str, float]]:
    """Seconds per call of each piece of one training step, timed alone and printed as each ends, so
    a slow or stalled step shows which piece holds it (CLIP, M, G, LPIPS, identity, D, penalty)."""

    device = x.device
    G, D, clip = world["G"], world["D"], world["clip"]
    M = MappingNetwork(clip.embed_dim, G.num_ws, G.w_dim).to(device)
    auto = lambda: torch.autocast(device.type, enabled=amp)  # noqa: E731
    with torch.no_grad(), auto():
        f = clip.encode_image(x).float()
    ws = M(f).detach()

    def clip_forward():
        with torch.no_grad(), auto():
            clip.encode_image(x)

    def mapping_fwd_bwd():
        with auto():
            M(f).float().square().mean().backward()

    def synthesis_fwd_bwd():
        w = ws.clone().requires_grad_(True)
        with auto():
            G.synthesis(w, noise_mode="const").float().square().mean().backward()

    x_fake = x.flip(0).clone().requires_grad_(True)

    def lpips_fwd_bwd():
        with auto():
            world["lpips"](x_fake, x).backward()

    def identity_fwd_bwd():
        with auto():
            world["identity"](x_fake, x).backward()

    def d_adv_fwd_bwd():
        with requires_grad(D, False), auto():
            g_adv_loss(D, x_fake).backward()

    def d_step_with_penalty():
        with auto():
            d_loss(D, x, x_fake.detach())[0].backward()

    pieces = [("CLIP image encoder (forward)", clip_forward), ("M (forward + backward)", mapping_fwd_bwd),
              ("G synthesis (forward + backward to w+)", synthesis_fwd_bwd), ("LPIPS (forward + backward)", lpips_fwd_bwd)]
    if world["identity"] is not None:
        pieces.append(("identity (forward + backward)", identity_fwd_bwd))
    pieces += [("D for L_G (forward + backward)", d_adv_fwd_bwd), ("D step with penalty (eq. 7)", d_step_with_penalty)]
    out = []
    for name, fn in pieces:
        t0 = time.perf_counter()
        seconds = timeit(fn, device, warmup=1, min_reps=reps, max_reps=reps)
        out.append((name, float(seconds)))
        print(f"  piece: {name:<42} {seconds * 1e3:9.1f} ms  (first call + {reps} timed: "
              f"{time.perf_counter() - t0:.1f} s)", flush=True)
    return out


@register("training", help="CLIP2GAN training step: images/s and peak memory; full loss vs reconstruction only; "
                           "AMP vs fp32 on CUDA", config=TrainingBenchConfig)
def bench_training(args: argparse.Namespace) -> dict[str, Any]:


    device = resolve_device(args.device)
    size = getattr(args, "size", "toy")
    batch = getattr(args, "batch", None) or (32 if size == "toy" else 8)
    steps = getattr(args, "steps", None) or (10 if size == "toy" else 20)
    if args.quick:
        steps = 3
    t_world = time.perf_counter()
    world = _training_world(size, device)
    _sync(device)
    print(f"training bench: {size} world built on {device} in {time.perf_counter() - t_world:.1f} s; "
          f"{steps} timed steps per variant", flush=True)
    res = world["G"].img_resolution
    x = torch.rand(batch, 3, res, res, device=device) * 2 - 1
    pieces = None
    if getattr(args, "pieces", True):
        print(f"pieces of one step, batch {batch}{', AMP' if device.type == 'cuda' else ''}:", flush=True)
        pieces = dict(_component_times(world, x, amp=device.type == "cuda", reps=1 if args.quick else 3))
    rows = []
    variants = [("reconstruction only (rec + LPIPS)", dict(adv=False, div=False, identity=False), True),
                ("full eq. 10 + D step", dict(adv=True, div=True, identity=world["identity"] is not None), True)]
    if device.type == "cuda":
        variants.append(("full eq. 10 + D step, fp32", dict(adv=True, div=True, identity=world["identity"] is not None), False))
    results: dict[str, Any] = {"size": size, "batch": batch, "resolution": res, "device": str(device),
                               "environment": _environment(device)}
    if pieces is not None:
        results["pieces_seconds"] = pieces
    with tempfile.TemporaryDirectory() as tmp:
        for label, flags, amp in variants:
            config = TrainConfig(out=tmp, device=str(device), batch_size=batch, amp=amp, epoch_size=batch, **flags)
            trainer = Trainer(config, world=world, dataset=_FixedBatch(x.cpu()), progress=False)
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            seconds = timeit(lambda trainer=trainer: trainer.train_step(x), device, warmup=1, min_reps=steps, max_reps=steps)
            row = {"variant": label, "s_per_step": seconds, "images_per_s": batch / seconds}
            if device.type == "cuda":
                row["peak_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
            rows.append(row)
            # printed as each variant ends, so a run stopped by a time limit still leaves figures
            print(f"  done: {label}: {seconds:.3f} s/step, {batch / seconds:.1f} img/s"
                  + (f", peak {row['peak_memory_gib']:.1f} GiB" if "peak_memory_gib" in row else ""), flush=True)
    base = rows[0]["s_per_step"]
    for row in rows:
        row["time_vs_reconstruction_only"] = row["s_per_step"] / base
    if device.type == "cuda":
        results["amp_speedup"] = rows[2]["s_per_step"] / rows[1]["s_per_step"]
    results["rows"] = rows
    print(f"CLIP2GAN training step, {size} size, batch {batch}, {res} px, {device}:")
    for row in rows:
        mem = f"  peak {row['peak_memory_gib']:.1f} GiB" if "peak_memory_gib" in row else ""
        print(f"  {row['variant']:<36} {row['images_per_s']:8.1f} img/s  ×{row['time_vs_reconstruction_only']:.2f}{mem}")
    if "amp_speedup" in results:
        print(f"  AMP speed-up over fp32: ×{results['amp_speedup']:.2f}")
    return results


class _FixedBatch(torch.utils.data.Dataset):
    def __init__(self, x: torch.Tensor):
        self.x = x

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"image": self.x[i], "ok": True, "status": "ok"}



# -------------------------------------------------------------------------------------------------
# editing: EditingApp update latency for a β change vs re-encoding everything


@dataclass
class EditingBenchConfig:
    changes: int = option(50, "β changes timed")
    random_world: bool = option(False, "use a random toyfaces-size world even if the shipped toy weights exist")


def _toy_world_model(device: torch.device, random_world: bool = False):
    """The shipped toyfaces CLIP2GAN, or (absent, or asked for) random weights at the same sizes:
    the toy CLIP config, a 32 px G (w 128, channel_max 128) and the default 12 × 512 mapping network."""

    if not random_world:
        try:
            return CLIP2GAN.from_pretrained("toyfaces", device=device), "shipped toyfaces weights"
        except (hub.WeightsNotFound, FileNotFoundError):
            pass

    torch.manual_seed(0)
    clip = ClipEncoder(toyclip.create_model(device=device), toyclip.get_tokenizer(), name="toyfaces-clip (random)")
    G = Generator(**generator_kwargs(GANTrainConfig(conditional=False))).eval().requires_grad_(False)
    M = MappingNetwork.for_generator(G, in_dim=clip.embed_dim)
    return CLIP2GAN(clip, M, G, profile="toyfaces").to(device).eval(), "random weights at toyfaces sizes"


def _seconds(t: Any) -> float:
    """A `timeit` result as wall seconds (a float, or a timing with a `.wall` field)."""
    return float(getattr(t, "wall", t))


def _clocked(fn: Callable[[], Any], device: torch.device) -> tuple[float, float]:
    """(wall, process CPU) seconds of one call; CPU time is not inflated by other processes' load."""
    _sync(device)
    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    _sync(device)
    return time.perf_counter() - t0, time.process_time() - c0


@register("editing", help="EditingApp: median update latency of a β change vs a full re-encode per change (toyfaces size)",
          config=EditingBenchConfig)
def bench_editing(args: argparse.Namespace) -> dict[str, Any]:



    device = resolve_device(args.device)
    n = 10 if args.quick else max(1, int(getattr(args, "changes", 50)))
    model, weights = _toy_world_model(device, bool(getattr(args, "random_world", False)))
    text = "a person wearing eyeglasses"
    app = EditingApp(model, prompt=text, n_toy=1)
    image = app._images[app.picker.value]
    betas = [float(b) for b in np.random.default_rng(0).permutation(np.linspace(0.0, 1.0, n + 1)[1:])]
    app.set_beta(0.0)
    # one β change = edited_latents + synthesis + PNG for the display (the encodes are cached)
    times = [_clocked(lambda b=b: app.set_beta(b), device) for b in betas]
    assert app.message == "" and app.n_redraws == n + 2, (app.message, app.n_redraws)

    def full(beta: float) -> bytes:  # what an uncached UI would do per change: encode image and text again
        return png_bytes(to_uint8(edit_image(model, image, text, beta=beta))[0], app.upscale)

    full(0.5)  # warm-up
    base = [_clocked(lambda b=b: full(b), device) for b in betas]
    ws = model.encode_image(app._encoded[app.picker.value].images)
    synth = _seconds(timeit(lambda: model.synthesize(ws), device, min_reps=10, max_reps=50))

    def med(rows, i):
        return statistics.median(r[i] for r in rows) * 1e3

    # Latency is wall time. On a CPU the process time is printed beside it: with one thread it is robust to other
    # load and equals the wall time on an idle machine; with several threads it is their sum, not a latency.
    app_ms, base_ms = med(times, 0), med(base, 0)
    result = {"environment": _environment(device), "weights": weights, "resolution": model.resolution, "changes": n,
              "clock": "wall", "app_median_cpu_ms": med(times, 1),
              "app_median_ms": app_ms, "app_median_wall_ms": med(times, 0),
              "app_p90_wall_ms": float(np.percentile([t[0] for t in times], 90)) * 1e3,
              "full_reencode_median_ms": base_ms, "full_reencode_median_wall_ms": med(base, 0),
              "speedup_vs_full_reencode": base_ms / app_ms, "synthesis_only_best_wall_ms": synth * 1e3,
              "target_ms": 15.0, "meets_target": app_ms <= 15.0}
    print(f"EditingApp β change, one {model.resolution} px image, {weights}, {device}, "
          f"{torch.get_num_threads()} threads, medians over {n} changes (wall time):")
    print(f"  cached update (edit_latent + G + PNG):      {app_ms:7.1f} ms  (p90 {result['app_p90_wall_ms']:.1f}; "
          f"process cpu {result['app_median_cpu_ms']:.1f})  target <= 15 ms: {'met' if result['meets_target'] else 'NOT met'}")
    print(f"  full re-encode (prepare + CLIP image/text + M + G + PNG): {base_ms:7.1f} ms")
    print(f"  the cache is x{result['speedup_vs_full_reencode']:.1f} faster; synthesis alone {synth * 1e3:.1f} ms (best wall)")
    return result


# -------------------------------------------------------------------------------------------------
# fid: feature extraction throughput, eigenvalue Fréchet distance vs the sqrtm formula


@dataclass
class FIDBenchConfig:
    dim: int = option(1024, "feature dimension of the Fréchet-distance timing (Inception's is 2048)")
    inception_batch: Optional[int] = option(None, "images per Inception batch (default 8 CPU, 64 CUDA)")


@register("fid", help="FID features/s (toy classifier, FID Inception with random weights); "
                      "eigenvalue Fréchet distance vs scipy sqrtm", config=FIDBenchConfig)
def bench_fid(args: argparse.Namespace) -> dict[str, Any]:


    device = resolve_device(args.device)
    quick = bool(args.quick)
    dim = 256 if quick else int(getattr(args, "dim", 2048))
    rng = np.random.default_rng(0)
    stats = []
    for shift in (0.0, 0.3):
        a = rng.normal(size=(dim, dim + 64)) / np.sqrt(dim)
        stats += [rng.normal(size=dim) * shift, a @ a.T]
    t0 = time.perf_counter()  # seconds per call at D >= 1024: one timed call each
    value = frechet_distance(*stats)
    t_eig = time.perf_counter() - t0
    result: dict[str, Any] = {"environment": _environment(device), "dim": dim, "eigh_fd_s": t_eig, "fd": value}
    try:
        import scipy.linalg

        def textbook():
            mu1, s1, mu2, s2 = stats
            covmean = scipy.linalg.sqrtm(s1 @ s2).real
            return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))

        t0 = time.perf_counter()
        reference = textbook()
        t_sqrtm = time.perf_counter() - t0
        result.update(sqrtm_fd_s=t_sqrtm, eigh_speedup_vs_sqrtm=t_sqrtm / t_eig,
                      relative_difference=abs(value - reference) / max(abs(value), 1e-12))
    except ImportError:
        pass

    torch.manual_seed(0)
    clf = AttributeClassifier().to(device).eval()
    x_toy = torch.rand(64 if quick else 512, 3, 32, 32, device=device) * 2 - 1
    t_toy = _seconds(timeit(lambda: clf.features(x_toy), device, min_reps=2, max_reps=5))
    result["toy_features_img_per_s"] = len(x_toy) / t_toy
    net = FIDInceptionV3().to(device)
    batch = getattr(args, "inception_batch", None) or (2 if quick else 8 if device.type == "cpu" else 64)
    x_inc = torch.rand(batch, 3, 256, 256, device=device) * 2 - 1
    with torch.inference_mode():
        t_inc = _seconds(timeit(lambda: net(x_inc), device, warmup=1, min_reps=1, max_reps=3, min_time=0.0))
    result["inception_img_per_s"] = batch / t_inc
    result["toy_vs_inception_throughput"] = result["toy_features_img_per_s"] / result["inception_img_per_s"]
    print(f"FID, {device}, {torch.get_num_threads()} threads:")
    print(f"  Fréchet distance at D={dim}: eigenvalues {t_eig:.2f} s"
          + (f", scipy sqrtm {result['sqrtm_fd_s']:.2f} s (eigh x{result['eigh_speedup_vs_sqrtm']:.1f}), "
             f"relative difference {result['relative_difference']:.1e}" if "sqrtm_fd_s" in result else ""))
    print(f"  features: toy classifier {result['toy_features_img_per_s']:.0f} img/s (32 px), FID Inception "
          f"{result['inception_img_per_s']:.1f} img/s (299 px, batch {batch}); "
          f"ratio x{result['toy_vs_inception_throughput']:.0f}")
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
