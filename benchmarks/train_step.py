"""The quickstart's training step: eager (0.2's layers) against every faster variant, in one run.

    python benchmarks/train_step.py [--steps 40] [--rounds 5] [--compile] [--out docs/benchmarks.md]

The step is the real one: the quickstart recipe's module built from its YAML (warp decoder, squared error, the
capacity schedule), a batch of 16 spectra of 8,192 px, ``SpectrumAutoencoder.terms`` (forward, masked loss, KL,
the schedule's term), backward, the recipe's Adam step. Each variant runs in its own process (its own threads
and peak memory) for ``--rounds`` rounds, the order rotating; the median ms/step is reported with the ratio to
the baseline measured in the same run.

Variants, each adding one change to the one before: ``0.2``: torch's ``Conv1d``/``ConvTranspose1d`` everywhere,
LeakyReLU out of place, glibc's default allocator, Adam (for-each) — the baseline; ``+ one-channel layers``
(``nets.SingleInputConv1d``, ``PhaseConvTranspose1d``, ``TapsConv1d``, LeakyReLU in place: 0.3); ``+ freed memory
kept`` (``allocator.keep_freed_memory``, which every training command sets); ``+ fused Adam`` (the quickstart
recipe's optimizer: the default step); with ``--compile``: ``+ torch.compile`` of the network's encoder and decoder
(inductor; its compile time, the warm-up steps', reported apart).
GFLOP/s counts the step's floating-point operations (``torch.utils.flop_counter``, the baseline's math) over its
time; the share is of this machine's fp32 FMA peak (cores × FMA units × SIMD lanes × 2 × clock, from
``/proc/cpuinfo``); on a GPU, of the device's fp32 peak when known.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from datetime import date
from pathlib import Path
from typing import cast

VARIANTS = {  # name: (label, changes on top of the recipe's step)
    "0.2": (
        "0.2: torch layers, default allocator, Adam (baseline)",
        {"layers": "torch", "memory": False, "fused": False},
    ),
    "layers": ("+ one-channel layers (0.3)", {"layers": "fast", "memory": False, "fused": False}),
    "memory": ("+ freed memory kept", {"layers": "fast", "memory": True, "fused": False}),
    "fused": ("+ fused Adam (the default step)", {"layers": "fast", "memory": True, "fused": True}),
    "compiled": ("+ torch.compile, inductor", {"layers": "fast", "memory": True, "fused": True, "compile": True}),
}
HERE = Path(__file__).resolve().parent
# fp32 (non-tensor-core) peaks of GPUs, GFLOP/s, from their data sheets (SXM parts)
GPU_FP32_PEAK = {"H200": 66_900.0, "H100": 66_900.0, "A100": 19_500.0, "L40S": 91_600.0, "V100": 15_700.0}


def gpu_peak_gflops(name: str) -> tuple[float | None, str]:
    """fp32 peak of the GPU called ``name`` when this table knows it."""
    known = next((k for k in GPU_FP32_PEAK if k in name), None)
    return (GPU_FP32_PEAK[known], f"{known} fp32 data sheet") if known else (None, f"{name}: peak unknown")


def cpu_peak_gflops(threads: int) -> tuple[float | None, str]:
    """fp32 FMA peak of ``threads`` cores of this CPU, GFLOP/s, and how it was computed."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None, "unknown CPU"
    flags = next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), [])
    mhz = [float(line.split(":", 1)[1]) for line in info.splitlines() if line.startswith("cpu MHz")]
    lanes = 16 if "avx512f" in flags else 8 if "avx2" in flags else 4
    fma = 2 if "fma" in flags or "avx512f" in flags else 1  # flops per lane per instruction
    units, ghz = 2, (max(mhz) / 1000 if mhz else 0.0)
    peak = threads * units * lanes * fma * ghz
    return (peak or None), f"{threads} cores × {units} FMA units × {lanes} fp32 lanes × {fma} × {ghz:.2f} GHz"


def cpu_name() -> str:
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "CPU"
    return next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), "CPU")


def one(variant: str, steps: int, warmup: int) -> dict:
    """Time ``steps`` training steps of ``variant`` in this process."""
    change = VARIANTS[variant][1]
    if change["memory"]:  # before torch allocates anything
        from spectra_lightning.common.allocator import keep_freed_memory

        keep_freed_memory()
    import torch
    from torch import nn

    sys.path.insert(0, str(HERE))
    from recipe import recipe_model

    from spectra_lightning.model import nets

    model, opt, cfg = recipe_model("quickstart.yaml")
    if change["layers"] == "torch":
        for m in model.modules():
            if isinstance(m, (nets.SingleInputConv1d, nets.TapsConv1d)):
                m.__class__ = nn.Conv1d
            elif isinstance(m, nets.PhaseConvTranspose1d):
                m.__class__ = nn.ConvTranspose1d
            elif isinstance(m, nn.LeakyReLU):
                m.inplace = False
    opt = torch.optim.Adam(model.parameters(), lr=opt.param_groups[0]["lr"], fused=change["fused"])
    compile_s = None
    if change.get("compile"):  # the network's encoder and decoder (encode/decode call them, not net.forward)
        net = model.net
        net.encoder = cast(nn.Module, torch.compile(net.encoder))
        net.decoder = cast(nn.Module, torch.compile(net.decoder))
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device).train()
    g = torch.Generator().manual_seed(0)
    n_px, batch_size = model.n_pixels, int(cfg["data"]["init_args"]["batch_size"])
    flux = (1 + 0.05 * torch.randn(batch_size, n_px, generator=g)).to(device)
    batch = {"flux": flux, "mask": torch.ones_like(flux, dtype=torch.bool)}

    def step() -> float:
        t = model.terms(batch, "train")
        opt.zero_grad(set_to_none=True)
        t["loss"].backward()
        opt.step()
        return float(t["loss"].detach())

    t0 = time.perf_counter()
    for _ in range(warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    if change.get("compile"):
        compile_s = time.perf_counter() - t0
    flops = None
    if variant == "0.2":
        from torch.utils.flop_counter import FlopCounterMode

        with FlopCounterMode(display=False) as counter:
            step()
        flops = counter.get_total_flops()
    t1 = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    ms = (time.perf_counter() - t1) / steps * 1000
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if device.type == "cuda":
        peak_mb = torch.cuda.max_memory_allocated() / 2**20
    return {
        "variant": variant,
        "ms": ms,
        "flops": flops,
        "compile_s": compile_s,
        "peak_mb": peak_mb,
        "threads": torch.get_num_threads(),
        "device": torch.cuda.get_device_name() if device.type == "cuda" else cpu_name(),
        "gpu": device.type == "cuda",
        "torch": torch.__version__,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=40, help="timed steps per round")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps first (compilation for `compiled`)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--compile", action="store_true", help="add the torch.compile variant (minutes on a CPU)")
    p.add_argument("--out", help="append the table to this markdown file")
    p.add_argument("--one", help=argparse.SUPPRESS)  # internal: run one variant in this process
    a = p.parse_args()
    if a.one:
        print(json.dumps(one(a.one, a.steps, a.warmup)))
        return
    variants = [v for v in VARIANTS if v != "compiled" or a.compile]
    results: dict[str, list[dict]] = {v: [] for v in variants}
    for r in range(a.rounds):
        for v in variants[r % len(variants) :] + variants[: r % len(variants)]:
            cmd = [sys.executable, __file__, "--one", v, "--steps", str(a.steps), "--warmup", str(a.warmup)]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
            results[v].append(json.loads(out))
            print(f"round {r + 1}: {v:14s} {results[v][-1]['ms']:7.1f} ms/step", file=sys.stderr, flush=True)

    def median(v: str, key: str) -> float:
        values = sorted(x[key] for x in results[v] if x[key] is not None)
        return values[len(values) // 2] if values else float("nan")

    base = median("0.2", "ms")
    flops = median("0.2", "flops")
    info = results["0.2"][0]
    peak, how = gpu_peak_gflops(info["device"]) if info.get("gpu") else cpu_peak_gflops(info["threads"])
    lines = [
        f"## The quickstart training step (`benchmarks/train_step.py`, {date.today().isoformat()})",
        "",
        f"Machine: {info['device']}, {os.cpu_count()} CPUs, {info['threads']} torch threads, torch {info['torch']}, "
        f"Python {platform.python_version()}. The quickstart recipe's step (batch 16 × 8,192 px, forward + "
        f"backward + Adam; {flops / 1e9:.2f} GFLOP); median of {a.rounds} rounds × {a.steps} steps, each variant "
        f"in its own process, order rotating. Peak: {f'{peak:.0f} GFLOP/s ({how})' if peak else how}.",
        "",
        "| variant | ms/step | × baseline speed | GFLOP/s | share of fp32 peak | peak memory (MB) | rounds (ms/step) |",
        "|---|---|---|---|---|---|---|",
    ]
    for v in variants:
        ms = median(v, "ms")
        gf = flops / (ms / 1000) / 1e9
        share = f"{100 * gf / peak:.1f} %" if peak else "-"
        extra = f" (compile {median(v, 'compile_s'):.0f} s)" if v == "compiled" else ""
        lines.append(
            f"| {VARIANTS[v][0]}{extra} | {ms:.1f} | {base / ms:.2f} | {gf:.1f} | {share} | {median(v, 'peak_mb'):.0f} | "
            + ", ".join(f"{x['ms']:.1f}" for x in results[v])
            + " |"
        )
    sys.path.insert(0, str(HERE))
    from report import publish

    publish(lines, a.out)


if __name__ == "__main__":
    main()
