"""DCGAN training throughput: ganlib's trainer against pytorch/examples' dcgan/main.py, side by side.

For each image size (64x64, the reference architecture; 28x28, the course's MNIST DCGAN) this
measures, at batch 128 on MNIST:

- the **reference**: a faithful re-implementation of the training step of pytorch/examples'
  ``dcgan/main.py``, written here only as the comparison baseline: the same networks (a
  ``Sigmoid`` at the end of D), the same ``weights_init``, ``nn.BCELoss`` on probabilities,
  ``Adam(2e-4, betas=(0.5, 0.999))``, the same step order (D on real, D on the detached fake,
  one D update; then G through D on the *same* fake, one G update; the ``.item()`` reads of
  its log line), and its data path: a ``DataLoader`` (shuffle, ``--workers`` processes) whose
  dataset transforms each image when it is drawn (resize, ToTensor, Normalize);
- **ganlib**: ``ganlib.train.train_gan`` on ``ganlib.models.dcgan_generator`` /
  ``dcgan_discriminator`` fed by ``ganlib.data.Batches`` over ``mnist_images`` (resized once, up
  front), with each chapter-08 option off and on: ``amp`` (bfloat16 autocast), ``channels_last``,
  ``compile``, and all three; on CUDA also ``cuda_graphs`` (the whole D and G steps captured and
  replayed) alone, with bf16, and with all three.

Every configuration runs in a fresh subprocess (so peak memory, compile caches and thread
pools do not leak between them): ``--warmup`` steps, then ``--steps`` timed steps. Reported:
images/s (real images consumed per second), the time of one MNIST epoch (60,000 images) at that
rate, peak memory (CPU: the process's peak resident set while training, after the kernel's
peak mark is reset once the data is loaded, on Linux; elsewhere ``resource.getrusage``'s
lifetime peak; also the increase over the resident set after loading; CUDA:
``torch.cuda.max_memory_allocated``), the processor time per step of the training process (all its
threads; much less sensitive than wall-clock time to other programs competing for the CPU) and the
ratio ganlib / reference. On CUDA the timed steps are bracketed by two synchronisations only
(ganlib reads its statistics every 50 steps there; a wait in every step would hide what it saves),
and a further ``--profile-steps`` steps run under ``torch.profiler``: the **GPU busy fraction** is
the CUDA kernel time per step it records (kernels, copies and fills on the GPU) divided by the wall
time per step of the timed steps (the profiler's own overhead on the host is not counted; the
fraction measured inside the profiled steps is reported too). Per size, a **best** line names the
fastest ganlib configuration. The results go to a JSON file (device, threads, versions, load average,
every measurement; rewritten after each configuration, so an interrupted run keeps what it measured)
and a table on stdout.

Usage::

    python benchmarks/dcgan_throughput.py                       # CPU or CUDA, all configurations
    python benchmarks/dcgan_throughput.py --sizes 28 --steps 5  # quicker
    python benchmarks/dcgan_throughput.py --quick               # 2 warm-up + 3 timed steps, 4096 images
    python benchmarks/dcgan_throughput.py --device cuda --steps 40 --warmup 5   # a GPU, as in chapter 08

MNIST is found as by ``ganlib.data.mnist_dir`` (``$GANLIB_DATA``, the user cache, or a download).
Timings depend on everything else the machine is doing: the JSON records the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

OPTIONS = {  # name -> ganlib TrainConfig options
    "none": {},
    "amp": {"amp": "bf16"},
    "channels_last": {"channels_last": True},
    "compile": {"compile": True},
    "all": {"amp": "bf16", "channels_last": True, "compile": True},
    "cuda_graphs": {"cuda_graphs": True},
    "graphs_amp": {"cuda_graphs": True, "amp": "bf16"},
    "graphs_all": {"cuda_graphs": True, "amp": "bf16", "channels_last": True, "compile": True},
}
CUDA_ONLY = ("cuda_graphs", "graphs_amp", "graphs_all")  # on a CPU they would measure the eager fallback
GRAPH_WARMUP = 5  # ganlib captures after 3 eager steps; the capture step and one replay stay out of the timing
MNIST_TRAIN = 60_000


# ----------------------------------------------------------------------------------------------------
# The reference: pytorch/examples dcgan/main.py (nz=100, ngf=ndf=64), re-implemented as the baseline.
# At 28x28 the same design, edited by hand for that size as users of the reference do (4x4 -> 7 -> 14 -> 28).
# ----------------------------------------------------------------------------------------------------

def reference_networks(size: int, nc: int, nz: int, ngf: int, ndf: int):
    import torch.nn as nn

    class NetG(nn.Module):
        def __init__(self):
            super().__init__()
            if size == 64:
                self.main = nn.Sequential(
                    nn.ConvTranspose2d(nz, ngf * 8, 4, 1, 0, bias=False), nn.BatchNorm2d(ngf * 8), nn.ReLU(True),
                    nn.ConvTranspose2d(ngf * 8, ngf * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * 4), nn.ReLU(True),
                    nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * 2), nn.ReLU(True),
                    nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf), nn.ReLU(True),
                    nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False), nn.Tanh())
            elif size == 28:
                self.main = nn.Sequential(
                    nn.ConvTranspose2d(nz, ngf * 4, 4, 1, 0, bias=False), nn.BatchNorm2d(ngf * 4), nn.ReLU(True),
                    nn.ConvTranspose2d(ngf * 4, ngf * 2, 3, 2, 1, bias=False), nn.BatchNorm2d(ngf * 2), nn.ReLU(True),
                    nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf), nn.ReLU(True),
                    nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False), nn.Tanh())
            else:
                raise ValueError(f"the reference networks exist for 28 and 64 pixels, not {size}")

        def forward(self, x):
            return self.main(x)

    class NetD(nn.Module):
        def __init__(self):
            super().__init__()
            if size == 64:
                self.main = nn.Sequential(
                    nn.Conv2d(nc, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True),
                    nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 2), nn.LeakyReLU(0.2, inplace=True),
                    nn.Conv2d(ndf * 2, ndf * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 4),
                    nn.LeakyReLU(0.2, inplace=True),
                    nn.Conv2d(ndf * 4, ndf * 8, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 8),
                    nn.LeakyReLU(0.2, inplace=True),
                    nn.Conv2d(ndf * 8, 1, 4, 1, 0, bias=False), nn.Sigmoid())
            else:
                self.main = nn.Sequential(
                    nn.Conv2d(nc, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True),
                    nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 2), nn.LeakyReLU(0.2, inplace=True),
                    nn.Conv2d(ndf * 2, ndf * 4, 3, 2, 1, bias=False), nn.BatchNorm2d(ndf * 4),
                    nn.LeakyReLU(0.2, inplace=True),
                    nn.Conv2d(ndf * 4, 1, 4, 1, 0, bias=False), nn.Sigmoid())

        def forward(self, x):
            return self.main(x).view(-1, 1).squeeze(1)

    def weights_init(m):
        classname = m.__class__.__name__
        if classname.find("Conv") != -1:
            nn.init.normal_(m.weight, 0.0, 0.02)
        elif classname.find("BatchNorm") != -1:
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)

    netG = NetG()
    netG.apply(weights_init)
    netD = NetD()
    netD.apply(weights_init)
    return netG, netD


class ReferenceMNIST:
    """MNIST as the reference reads it: each image transformed when drawn (Resize, ToTensor, Normalize(0.5, 0.5))."""

    def __init__(self, images_uint8, labels, size: int):
        self.x, self.y, self.size = images_uint8, labels, size

    def __len__(self):
        return self.x.shape[0]

    def __getitem__(self, i):
        import torch.nn.functional as F

        img = self.x[i][None].float()                                     # (1, 28, 28), 0..255
        if self.size != img.shape[-1]:                                    # Resize (bilinear)
            img = F.interpolate(img[None], size=(self.size, self.size), mode="bilinear", align_corners=False,
                                antialias=True)[0].round().clamp(0, 255)
        img = img / 255.0                                                 # ToTensor
        return (img - 0.5) / 0.5, self.y[i]                               # Normalize((0.5,), (0.5,))


def reference_run(spec: dict, device, images, labels, on_step) -> None:
    import torch
    import torch.nn as nn

    torch.manual_seed(spec["seed"])
    nz = spec["latent_dim"]
    netG, netD = reference_networks(spec["size"], 1, nz, spec["width"], spec["width"])
    netG.to(device)
    netD.to(device)
    criterion = nn.BCELoss()
    optimizerD = torch.optim.Adam(netD.parameters(), lr=2e-4, betas=(0.5, 0.999))
    optimizerG = torch.optim.Adam(netG.parameters(), lr=2e-4, betas=(0.5, 0.999))
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    loader = torch.utils.data.DataLoader(ReferenceMNIST(images, labels, spec["size"]), batch_size=spec["batch_size"],
                                         shuffle=True, num_workers=spec["workers"])
    real_label, fake_label = 1.0, 0.0
    step, total = 0, spec["warmup"] + spec["steps"] + spec.get("profile_steps", 0)
    while step < total:
        for data in loader:
            # (1) Update D: maximize log(D(x)) + log(1 - D(G(z)))
            netD.zero_grad()
            real = data[0].to(device)
            b = real.size(0)
            label = torch.full((b,), real_label, dtype=real.dtype, device=device)
            output = netD(real)
            errD_real = criterion(output, label)
            errD_real.backward()
            D_x = output.mean().item()
            noise = torch.randn(b, nz, 1, 1, device=device)
            fake = netG(noise)
            label.fill_(fake_label)
            output = netD(fake.detach())
            errD_fake = criterion(output, label)
            errD_fake.backward()
            D_G_z1 = output.mean().item()
            errD = errD_real + errD_fake
            optimizerD.step()
            # (2) Update G: maximize log(D(G(z))), through D on the same fake batch
            netG.zero_grad()
            label.fill_(real_label)
            output = netD(fake)
            errG = criterion(output, label)
            errG.backward()
            D_G_z2 = output.mean().item()
            optimizerG.step()
            _ = (errD.item(), errG.item(), D_x, D_G_z1, D_G_z2)          # the reference's log line
            step += 1
            on_step(step, b)
            if step >= total:
                break


def ganlib_run(spec: dict, device, images, labels, on_step) -> None:
    import torch

    from ganlib import data, models, train

    torch.manual_seed(spec["seed"])
    G = models.dcgan_generator(spec["size"], 1, spec["latent_dim"], spec["width"])
    D = models.dcgan_discriminator(spec["size"], 1, spec["width"])
    on_device = device if device.type == "cuda" else None                # CUDA: the whole dataset on the GPU
    batches = data.Batches(images, spec["batch_size"], seed=spec["seed"], device=on_device)
    config = train.TrainConfig(steps=spec["warmup"] + spec["steps"] + spec.get("profile_steps", 0),
                               batch_size=spec["batch_size"],
                               device=str(device), seed=spec["seed"], **OPTIONS[spec["options"]])
    train.train_gan(G, D, batches, config, callbacks=[lambda step, G, D, h: on_step(step, spec["batch_size"])])


def _proc_status(field: str) -> float | None:
    """A memory figure of this process from /proc/self/status (Linux), in MiB; None elsewhere."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (Linux >= 4.0: write 5 to /proc/self/clear_refs)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return _proc_status("VmHWM") is not None
    except OSError:
        return False


def worker(spec: dict) -> dict:
    """One configuration, in this (fresh) process; returns the measurements."""
    import resource
    import warnings

    import torch

    if spec["threads"]:
        torch.set_num_threads(spec["threads"])
    device = torch.device(spec["device"])
    from ganlib import data

    t_load = time.perf_counter()
    if spec["impl"] == "reference":
        images, labels = data.load_mnist("train")                        # uint8 (N, 28, 28)
    else:
        images, labels = data.mnist_images("train", size=spec["size"])   # float32 (N, 1, S, S), resized once
    if spec["n_images"]:
        images, labels = images[: spec["n_images"]], labels[: spec["n_images"]]
    load_s = time.perf_counter() - t_load
    peak_load = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024        # MiB (Linux reports KiB)
    rss_after_load = _proc_status("VmRSS")
    hwm_reset = _reset_peak_rss()            # Linux: the peak below is then the training's own
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    stamps = []
    w, timed_end = spec["warmup"], spec["warmup"] + spec["steps"]
    profile_end = timed_end + spec.get("profile_steps", 0)
    prof = {}

    def on_step(step, batch):
        if device.type == "cuda" and step in (w, timed_end, profile_end):  # the only waits for the GPU
            torch.cuda.synchronize(device)
        if step <= timed_end:
            stamps.append((step, time.perf_counter(), batch, time.process_time()))
        if step == timed_end and profile_end > timed_end:
            prof["profiler"] = profiler_start()
            prof["t0"] = time.perf_counter()
        elif step == profile_end and "profiler" in prof:
            prof["wall_s"] = time.perf_counter() - prof["t0"]
            prof["profiler"].stop()

    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        (reference_run if spec["impl"] == "reference" else ganlib_run)(spec, device, images, labels, on_step)
    (_, t_first, _, cpu_first), (_, t_last, _, cpu_last) = stamps[w - 1], stamps[-1]
    images_timed = sum(s[2] for s in stamps[w:])
    rate = images_timed / (t_last - t_first)
    out = {"images_per_s": rate, "epoch_s": MNIST_TRAIN / rate, "step_s": (t_last - t_first) / (len(stamps) - w),
           "cpu_s_per_step": (cpu_last - cpu_first) / (len(stamps) - w),
           "warmup_s": t_first - t0, "load_s": load_s,
           "peak_rss_mib": _proc_status("VmHWM") if hwm_reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
           "peak_rss_during_load_mib": peak_load, "rss_after_load_mib": rss_after_load, "peak_is_training_only": hwm_reset,
           "warnings": sorted({str(c.message).splitlines()[0][:200] for c in caught})}
    if device.type == "cuda":
        out["peak_cuda_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
    if "wall_s" in prof:
        n = profile_end - timed_end
        kernel_s = gpu_time_s(prof["profiler"]) / n
        out.update(profile_steps=n, gpu_kernel_s_per_step=kernel_s, gpu_busy=min(1.0, kernel_s / out["step_s"]),
                   gpu_busy_while_profiled=min(1.0, kernel_s * n / prof["wall_s"]))
    return out


def profiler_start():
    """torch.profiler recording CPU and CUDA activity, started now."""
    from torch.profiler import ProfilerActivity, profile

    p = profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA])
    p.start()
    return p


def gpu_time_s(p) -> float:
    """Seconds the GPU spent in kernels, copies and fills during a profile (the union of their intervals,
    so work on overlapping streams is not counted twice)."""
    from torch.autograd import DeviceType

    spans = [(e.time_range.start, e.time_range.end) for e in p.events() if e.device_type == DeviceType.CUDA]
    return busy_union(spans) * 1e-6  # the profiler's times are in microseconds


def busy_union(spans: list[tuple[float, float]]) -> float:
    """Length of the union of the intervals ``(start, end)``: busy time, each moment counted once.

    >>> busy_union([(0, 2), (1, 3), (5, 6)])
    4
    """
    total, end = 0, float("-inf")
    for a, b in sorted(spans):
        if b > end:
            total += b - max(a, end)
            end = b
    return total


# ----------------------------------------------------------------------------------------------------
# The driver: one subprocess per configuration, a JSON file and a table.
# ----------------------------------------------------------------------------------------------------

def environment(device: str, threads: int | None) -> dict:
    import torch

    import ganlib

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    except OSError:
        pass
    env = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "device": device,
           "threads": threads or torch.get_num_threads(), "cpu": cpu, "cpu_count": os.cpu_count(),
           "python": platform.python_version(), "torch": torch.__version__, "ganlib": ganlib.__version__,
           "platform": platform.platform(), "cuda": torch.version.cuda,
           "load_average_start": os.getloadavg() if hasattr(os, "getloadavg") else None}
    if device == "cuda":
        env["gpu"] = torch.cuda.get_device_name(0)
    return env


def run_config(spec: dict, timeout: float | None, script: str = __file__, env: dict | None = None) -> dict:
    """One configuration in a fresh process (``script --worker SPEC``): its JSON result, or ``{"error": ...}``."""
    cmd = [sys.executable, os.path.abspath(script), "--worker", json.dumps(spec)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:g} s"}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        return {"error": f"exit code {proc.returncode}: {tail[0][:300]}"}
    return json.loads(lines[-1])


def table(rows: list[dict]) -> str:
    head = ["size", "implementation", "options", "images/s", "s/epoch", "CPU s/step", "peak MiB", "+train MiB",
            "vs reference", "GPU busy"]
    out = [head]
    for r in rows:
        m = r["result"]
        if "error" in m:
            out.append([str(r["size"]), r["impl"], r["options"], "error: " + m["error"], "", "", "", "", "", ""])
            continue
        mem = m.get("peak_cuda_mib")
        peak = f"{mem:.0f} (GPU)" if mem is not None else f"{m['peak_rss_mib']:.0f}"
        extra = "" if mem is not None or m.get("rss_after_load_mib") is None else \
            f"{m['peak_rss_mib'] - m['rss_after_load_mib']:.0f}"
        ratio = f"{r['ratio']:.2f}" if r.get("ratio") is not None else ("1.00" if r["impl"] == "reference" else "")
        busy = f"{100 * m['gpu_busy']:.0f} %" if m.get("gpu_busy") is not None else "n/a"
        epoch = f"{m['epoch_s']:.0f}" if m["epoch_s"] >= 100 else f"{m['epoch_s']:.2f}"
        out.append([str(r["size"]), r["impl"], r["options"], f"{m['images_per_s']:.0f}", epoch,
                    f"{m['cpu_s_per_step']:.4f}" if m["cpu_s_per_step"] < 0.1 else f"{m['cpu_s_per_step']:.2f}",
                    peak, extra, ratio, busy])
    widths = [max(len(row[i]) for row in out) for i in range(len(head))]
    lines = ["  ".join(c.rjust(w) if i >= 3 else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths)))
             for row in out]
    return "\n".join([lines[0], "  ".join("-" * w for w in widths), *lines[1:]])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[64, 28], choices=[28, 64])
    p.add_argument("--options", nargs="+", choices=list(OPTIONS),
                   help="ganlib configurations to measure (the reference is always measured); default: all, "
                   "without the CUDA-graph ones on a CPU")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--steps", type=int, default=10, help="timed steps per configuration")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first (compile: at least 3)")
    p.add_argument("--width-64", type=int, default=64, help="ngf = ndf at 64 px (the reference: 64)")
    p.add_argument("--width-28", type=int, default=32, help="ngf = ndf at 28 px (the course's MNIST DCGAN: 32)")
    p.add_argument("--latent-dim", type=int, default=100)
    p.add_argument("--workers", type=int, default=2, help="the reference's DataLoader workers (its default: 2)")
    p.add_argument("--threads", type=int, default=None, help="torch threads per run (default: torch's choice)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--images", type=int, default=0, help="use only the first N MNIST images (0: all 60,000)")
    p.add_argument("--quick", action="store_true", help="2 warm-up and 3 timed steps on 4,096 images")
    p.add_argument("--profile-steps", type=int, default=10,
                   help="CUDA: steps after the timed ones run under torch.profiler for the GPU busy fraction (0: none)")
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds allowed per configuration")
    p.add_argument("--json", default="dcgan_throughput.json", help="where to write the results")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return 0

    import torch

    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    if device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: no CUDA device is available")
    if args.quick:
        args.warmup, args.steps, args.images = 2, 3, args.images or 4096
    if args.options is None:
        args.options = [o for o in OPTIONS if device == "cuda" or o not in CUDA_ONLY]
    env = environment(device, args.threads)
    print(f"DCGAN throughput on {device} ({env.get('gpu', env['cpu'])}), {env['threads']} threads, torch "
          f"{env['torch']}, batch {args.batch_size}, {args.warmup} warm-up + {args.steps} timed steps; "
          f"load average {env['load_average_start']}", flush=True)
    rows, best = [], {}

    def write(done: bool) -> None:  # after every configuration: an interrupted run keeps what it measured
        env["load_average_end"] = os.getloadavg() if hasattr(os, "getloadavg") else None
        report = {"environment": env, "settings": {k: v for k, v in vars(args).items() if k != "worker"},
                  "complete": done, "runs": rows, "best": best}
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")

    for size in args.sizes:
        width = args.width_64 if size == 64 else args.width_28
        for impl, options in [("reference", "none")] + [("ganlib", o) for o in args.options]:
            warmup = max(args.warmup, 3) if "compile" in OPTIONS[options] else args.warmup
            if "cuda_graphs" in OPTIONS[options] and device == "cuda":
                warmup = max(warmup, GRAPH_WARMUP)
            spec = {"impl": impl, "options": options, "size": size, "width": width, "latent_dim": args.latent_dim,
                    "batch_size": args.batch_size, "steps": args.steps, "warmup": max(warmup, 1), "seed": 0,
                    "workers": args.workers, "threads": args.threads, "device": device, "n_images": args.images,
                    "profile_steps": args.profile_steps if device == "cuda" else 0}
            t = time.perf_counter()
            result = run_config(spec, args.timeout)
            rows.append({**{k: spec[k] for k in ("impl", "options", "size", "width")}, "result": result})
            status = result.get("error") or f"{result['images_per_s']:.0f} images/s" + (
                f", GPU busy {100 * result['gpu_busy']:.0f} %" if result.get("gpu_busy") is not None else "")
            print(f"  {size} px  {impl:9s} {options:13s} {status}  ({time.perf_counter() - t:.0f} s)", flush=True)
            write(done=False)
        ref = next((r["result"] for r in rows if r["size"] == size and r["impl"] == "reference"), {})
        for r in rows:
            if r["size"] == size and r["impl"] == "ganlib" and "error" not in r["result"] and "error" not in ref:
                r["ratio"] = r["result"]["images_per_s"] / ref["images_per_s"]
        measured = [r for r in rows if r["size"] == size and r["impl"] == "ganlib" and "error" not in r["result"]]
        if measured:
            top = max(measured, key=lambda r: r["result"]["images_per_s"])
            best[str(size)] = {"options": top["options"], "images_per_s": top["result"]["images_per_s"],
                               "epoch_s": top["result"]["epoch_s"], "ratio": top.get("ratio"),
                               "gpu_busy": top["result"].get("gpu_busy")}
    write(done=True)
    print()
    print(table(rows))
    for size, b in best.items():
        print(f"best at {size} px: ganlib {b['options']}, {b['images_per_s']:.0f} images/s (an MNIST epoch in "
              f"{b['epoch_s']:.2f} s)" + (f", {b['ratio']:.2f}x the reference" if b["ratio"] is not None else "")
              + (f", GPU busy {100 * b['gpu_busy']:.0f} %" if b["gpu_busy"] is not None else ""))
    print(f"\nimages/s: real images per second; s/epoch: 60,000 MNIST images at that rate; CPU s/step: processor "
          f"time of the training process per step, all threads (less sensitive to other load than wall-clock time; "
          f"the reference's DataLoader workers not included); peak MiB: the process's "
          f"peak resident memory while training (GPU: max_memory_allocated); +train: above the resident memory after "
          f"loading the data; GPU busy: CUDA kernel time per step (torch.profiler, {args.profile_steps} steps after "
          f"the timed ones) / wall time per step (n/a on a CPU).\n"
          f"Results written to {args.json}; load average at the end {env['load_average_end']}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
