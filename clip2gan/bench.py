"""Benchmarks: `python -m clip2gan.bench [NAME ...] [--device cpu|cuda] [--json out.json]`.

A small registry of named benchmarks; with no name, all of them run. Each benchmark returns a
JSON-friendly dict (printed as a table, optionally written with `--json`) and reports its figures
as ratios where a ratio is what matters (fast path vs naive path, fp16 vs fp32), because absolute
numbers depend on the machine. Add one with::

    from clip2gan.bench import register

    @register("editing", help="beta editing throughput")
    def bench_editing(args) -> dict: ...

Benchmarks: 'stylegan2' (synthesis throughput and latency; fused vs naive resampling; fp16 vs fp32
on CUDA). Introduced in 02_stylegan2_wplus.ipynb.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional

import torch

__all__ = ["Benchmark", "BENCHMARKS", "register", "timeit", "resolve_device", "main"]


@dataclass
class Benchmark:
    name: str
    func: Callable[[argparse.Namespace], dict[str, Any]]
    help: str = ""
    add_arguments: Optional[Callable[[argparse.ArgumentParser], None]] = None


BENCHMARKS: dict[str, Benchmark] = {}


def register(name: str, help: str = "", add_arguments: Optional[Callable[[argparse.ArgumentParser], None]] = None):
    """Decorator: add `func(args) -> dict` to the registry under `name` (its own CLI subcommand)."""

    def wrap(func: Callable[[argparse.Namespace], dict[str, Any]]):
        BENCHMARKS[name] = Benchmark(name, func, help, add_arguments)
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


def timeit(fn: Callable[[], Any], device: torch.device, warmup: int = 1, min_reps: int = 3, max_reps: int = 50,
           min_time: float = 0.5) -> float:
    """Best wall time of `fn()` in seconds (the minimum: the estimate least disturbed by other
    processes): `warmup` untimed calls, then at least `min_reps` and at most `max_reps` timed calls,
    stopping once `min_time` seconds have been spent."""
    for _ in range(warmup):
        fn()
    _sync(device)
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < max_reps and (len(times) < min_reps or time.perf_counter() - start < min_time):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return min(times)


def _environment(device: torch.device) -> dict[str, Any]:
    env = {"device": str(device), "torch": torch.__version__, "python": platform.python_version(),
           "threads": torch.get_num_threads()}
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
        # The toy world's generator (clip2gan.stylegan2_training.TrainConfig defaults, 28 labels).
        dict(name="toy-32", res=32, kwargs=dict(z_dim=128, c_dim=28, w_dim=128, img_resolution=32, img_channels=3,
             mapping_kwargs=dict(num_layers=2), synthesis_kwargs=dict(channel_base=1024, channel_max=128)),
             batches=[1, 8, 32]),
        # A 64 px toy-world generator (twice the toy channel budget).
        dict(name="toy-64", res=64, kwargs=dict(z_dim=128, c_dim=28, w_dim=128, img_resolution=64, img_channels=3,
             mapping_kwargs=dict(num_layers=2), synthesis_kwargs=dict(channel_base=4096, channel_max=128)),
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


def _stylegan2_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--max-res", type=int, default=None,
                        help="skip networks above this resolution (default: all; 1024 only on CUDA)")


@register("stylegan2", help="synthesis images/s and latency; fused vs naive resampling; fp16 vs fp32 on CUDA",
          add_arguments=_stylegan2_arguments)
def bench_stylegan2(args: argparse.Namespace) -> dict[str, Any]:
    from .stylegan2 import Generator, set_resample_impl

    device = resolve_device(args.device)
    quick = bool(getattr(args, "quick", False))
    max_res = getattr(args, "max_res", None)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    rows: list[dict[str, Any]] = []
    print(f"stylegan2 synthesis, noise_mode='const', eval mode, best of N, {_environment(device)}", flush=True)
    print("paths: default = what G.synthesis(ws) runs here (fused resampling; on CPU unfused modconv);\n"
          "       naive resampling = the same network with zero-stuffing + full-resolution convolutions;\n"
          "       grouped modconv = NVIDIA's fp32 inference choice (one grouped conv over the batch)", flush=True)
    header = f"{'network':14s} {'res':>4s} {'batch':>5s} {'path':>18s} {'ms/batch':>10s} {'img/s':>9s} {'vs naive':>9s}"
    print(header)
    print("-" * len(header), flush=True)
    for spec in _stylegan2_networks(device):
        if max_res is not None and spec["res"] > max_res:
            continue
        torch.manual_seed(0)
        G = Generator(**spec["kwargs"]).to(device).eval().requires_grad_(False)
        slow = (spec["res"] >= 256 and device.type == "cpu") or quick
        reps = dict(min_reps=1, max_reps=2, min_time=0.0) if slow else {}
        for batch in spec["batches"]:
            gen = torch.Generator().manual_seed(batch)
            z = torch.randn([batch, G.z_dim], generator=gen).to(device)
            c = torch.zeros([batch, G.c_dim], device=device)
            entries = []
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
                entries += [("default", t_fast, t_naive / t_fast), ("naive resampling", t_naive, 1.0)]
                if device.type == "cpu" and spec["res"] <= 64:
                    t_grouped = timeit(lambda: run(fused_modconv=True), device, **reps)
                    entries.append(("grouped modconv", t_grouped, t_naive / t_grouped))
            for path, t, ratio in entries:
                rows.append(dict(network=spec["name"], res=spec["res"], batch=batch, path=path, ms=t * 1e3,
                                 img_per_s=batch / t, speedup_vs_naive=ratio, max_abs_diff_fast_vs_naive=diff))
                print(f"{spec['name']:14s} {spec['res']:4d} {batch:5d} {path:>18s} {t * 1e3:10.1f} {batch / t:9.1f} "
                      f"{ratio:8.2f}x", flush=True)
            if device.type == "cuda":
                G16 = Generator(**{**spec["kwargs"], "synthesis_kwargs": {**spec["kwargs"]["synthesis_kwargs"],
                                                                       "num_fp16_res": 4}}).to(device).eval()
                G16.load_state_dict(G.state_dict(), strict=True)
                with torch.inference_mode():
                    t16 = timeit(lambda: G16.synthesis(ws, noise_mode="const"), device, **reps)
                    diff16 = (G16.synthesis(ws, noise_mode="const") - img_fast).abs().max().item()
                rows.append(dict(network=spec["name"], res=spec["res"], batch=batch, path="fp16 (num_fp16_res=4)",
                                 ms=t16 * 1e3, img_per_s=batch / t16, speedup_vs_fp32=t_fast / t16,
                                 max_abs_diff_vs_fp32=diff16))
                print(f"{spec['name']:14s} {spec['res']:4d} {batch:5d} {'fp16 (4 top res)':>18s} "
                      f"{t16 * 1e3:10.1f} {batch / t16:9.1f}   fp16/fp32 speed-up {t_fast / t16:.2f}x "
                      f"(max |diff| {diff16:.3f})", flush=True)
        del G
    latency = {f"{r['network']}": round(r["ms"], 2) for r in rows if r["batch"] == 1 and r["path"] == "default"}
    print(f"single-image latency (ms): {latency}")
    worst = max(r.get("max_abs_diff_fast_vs_naive", 0.0) for r in rows)
    print(f"fused and naive resampling agree to max |diff| {worst:.2e}", flush=True)
    return {"environment": _environment(device), "rows": rows, "latency_ms": latency}


# ------------------------------------------------------------------------------------------------
# CLI


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto (default: cuda when available)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads for CPU runs")
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (smoke test)")
    parser.add_argument("--json", default=None, metavar="PATH", help="also write the results as JSON")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m clip2gan.bench", description=__doc__.split("\n\n")[0])
    _common(parser)
    sub = parser.add_subparsers(dest="name", metavar="NAME", help="benchmark to run (default: all)")
    sub.add_parser("all", help="run every benchmark")
    for bench in BENCHMARKS.values():
        p = sub.add_parser(bench.name, help=bench.help)
        _common(p)
        if bench.add_arguments:
            bench.add_arguments(p)
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
        if bench.add_arguments:  # defaults of benchmark-specific options when run via 'all'
            p = argparse.ArgumentParser(add_help=False)
            bench.add_arguments(p)
            for key, value in vars(p.parse_args([])).items():
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
# training (issue #5's GPU check): one full CLIP2GAN step — CLIP → M → G, eq. 10, D step with GP


def _training_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--size", default="toy", choices=["toy", "ffhq"],
                        help="toy: 32 px world (CPU); ffhq: ViT-B-16 + 1024 px config-f G + IR-SE50 (GPU)")
    parser.add_argument("--batch", type=int, default=None, help="default 32 (toy) or 8 (ffhq)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default 10 toy, 20 ffhq)")


def _training_world(size: str, device: torch.device) -> dict[str, Any]:
    """Random-weight components at the requested size (nothing is downloaded)."""
    from .clip_encoder import ClipEncoder
    from .identity import IRSE50
    from .losses import IdentityLoss, LPIPSLoss
    from .stylegan2 import Generator
    from .train import discriminator_like

    torch.manual_seed(0)
    if size == "toy":
        from . import toyclip

        clip = ClipEncoder(toyclip.create_model(device=device), toyclip.get_tokenizer(), name="toyfaces-clip (random)")
        G = Generator(z_dim=128, c_dim=0, w_dim=128, img_resolution=32, img_channels=3,
                      mapping_kwargs={"num_layers": 2}, channel_base=1024, channel_max=128)
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
        from .identity import face_crop

        return torch.nn.functional.normalize(self.net(face_crop(x)), dim=-1)


@register("training", help="CLIP2GAN training step: images/s and peak memory; full loss vs reconstruction only; AMP vs fp32 on CUDA",
          add_arguments=_training_arguments)
def bench_training(args: argparse.Namespace) -> dict[str, Any]:
    import tempfile

    from .train import Trainer, TrainConfig

    device = resolve_device(args.device)
    size = getattr(args, "size", "toy")
    batch = getattr(args, "batch", None) or (32 if size == "toy" else 8)
    steps = getattr(args, "steps", None) or (10 if size == "toy" else 20)
    if args.quick:
        steps = 3
    world = _training_world(size, device)
    res = world["G"].img_resolution
    x = torch.rand(batch, 3, res, res, device=device) * 2 - 1
    rows = []
    variants = [("reconstruction only (rec + LPIPS)", dict(adv=False, div=False, identity=False), True),
                ("full eq. 10 + D step", dict(adv=True, div=True, identity=world["identity"] is not None), True)]
    if device.type == "cuda":
        variants.append(("full eq. 10 + D step, fp32", dict(adv=True, div=True, identity=world["identity"] is not None), False))
    results: dict[str, Any] = {"size": size, "batch": batch, "resolution": res, "device": str(device),
                               "environment": _environment(device)}
    with tempfile.TemporaryDirectory() as tmp:
        for label, flags, amp in variants:
            config = TrainConfig(out=tmp, device=str(device), batch_size=batch, amp=amp, epoch_size=batch, **flags)
            trainer = Trainer(config, world=world, dataset=_FixedBatch(x.cpu()), progress=False)
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            seconds = timeit(lambda: trainer.train_step(x), device, warmup=1, min_reps=steps, max_reps=steps)
            row = {"variant": label, "s_per_step": seconds, "images_per_s": batch / seconds}
            if device.type == "cuda":
                row["peak_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
            rows.append(row)
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


if __name__ == "__main__":
    main(sys.argv[1:])
