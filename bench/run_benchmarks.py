#!/usr/bin/env python3
"""Orchard's benchmark suite: throughput against the machine's sgemm peak and PyTorch, and
peak memory against collection size. Prints a table and writes every figure to a JSON file.

    .venv/bin/python bench/run_benchmarks.py --orchard build/orchard --json-out results.json
    .venv/bin/python bench/run_benchmarks.py --quick            # ~3 minutes, smaller sets

What it measures, in every round (docs/benchmarks.md has the targets and the analysis):
  sgemm     bench_sgemm (OpenBLAS cblas_sgemm, conv-like shapes, --threads): GFLOPS. A short
            one (one conv shape, ~0.5 s) also runs right before every throughput figure and
            is its "% of sgemm" denominator: shared machines drift within minutes.
  vgg16     `orchard run --model vgg16 --size S --pooling avg --threads T` on N fruit JPEGs,
            originals (~460 px on average) and a 100x100 resized copy, S in {100, 224}:
            images/s, effective GFLOPS = images/s x GFLOP/image at S, % of sgemm, peak RSS,
            and the inference-only rate from manifest.json (timings_seconds.extract).
  torch     torchvision vgg16().features (same architecture, random weights: speed only),
            batch 16, torch.set_num_threads(T), jit.freeze + optimize_for_inference when it
            works: forward-only and PIL decode + transforms + forward images/s; ratio
            orchard / torch in the same round.
  mobilenet the default model end to end on the same fruit folders.
  batch     vgg16 at 224 with --batch 1, 8, 16, 32.
And once:
  memory    peak RSS of `orchard run` (default model, avg pooling, --size 32,
            --pca-components 8) on synthetic collections of 10,000 and 100,000 JPEGs.

Every subprocess is timed from outside (wall clock) and its peak RSS comes from
/usr/bin/time -f %M (or getrusage(RUSAGE_CHILDREN) in a wrapper process when that is missing).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import io
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

REPO = Path(__file__).resolve().parents[1]
FRUITS_DEFAULT = Path("/work/shared/data/fruits-360-mini/Training")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# Runs a command and writes its peak RSS (KiB), user and system seconds to the file named by
# the first argument, like /usr/bin/time -f "%M %U %S": the fallback when that is missing.
RUSAGE_WRAPPER = (
    "import resource, subprocess, sys\n"
    "rc = subprocess.call(sys.argv[2:])\n"
    "u = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
    "open(sys.argv[1], 'w').write(f'{u.ru_maxrss} {u.ru_utime} {u.ru_stime}')\n"
    "sys.exit(rc)\n"
)


class BenchError(RuntimeError):
    """A precondition or a measured command failed; the message says what to do."""


@dataclasses.dataclass(frozen=True)
class Settings:
    orchard: Path
    bench_sgemm: Path
    python: Path
    models_dir: Path
    fruits: Path
    work_dir: Path
    threads: int
    images: int
    repeats: int
    sizes: tuple[int, ...]
    batches: tuple[int, ...]
    batch_images: int
    memory_sizes: tuple[int, ...]
    memory_size: int
    sgemm_reps: int
    quiet_wait: float
    orchard_env: tuple[tuple[str, str], ...]
    sections: frozenset[str]


@dataclasses.dataclass
class Measured:
    returncode: int
    wall_seconds: float
    peak_rss_kb: int
    cpu_seconds: float  # user + system time of the command and its children
    # CPU time that other processes used on this machine while the command ran, as a share of
    # all cores x wall time: the noise indicator (0 = the machine was ours).
    foreign_cpu_share: float
    stdout: str
    stderr: str


def busy_cpu_seconds() -> float:
    """Non-idle CPU time of the whole machine since boot, from /proc/stat (0 if unreadable)."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError, IndexError):
        return 0.0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def wait_until_quiet(max_wait: float, threshold: float = 0.10, window: float = 2.0) -> float:
    """Waits (up to max_wait s) until other processes use < threshold of the machine over a
    `window`-second sample; returns the seconds waited. Shared machines: see docs/benchmarks.md."""
    cores = os.cpu_count() or 1
    start = time.perf_counter()
    while True:
        before = busy_cpu_seconds()
        time.sleep(window)
        share = (busy_cpu_seconds() - before) / (cores * window)
        waited = time.perf_counter() - start
        if share < threshold or waited >= max_wait:
            return waited


def measure(cmd: Sequence[str], env: dict[str, str] | None = None) -> Measured:
    """Runs `cmd` to completion: wall time, CPU time, peak RSS and the machine's foreign load."""
    with tempfile.NamedTemporaryFile(prefix="orchard-bench-rss-", delete=False) as f:
        stats_file = Path(f.name)
    try:
        if Path("/usr/bin/time").exists():
            wrapped = ["/usr/bin/time", "-f", "%M %U %S", "-o", str(stats_file), *cmd]
        else:
            wrapped = [sys.executable, "-c", RUSAGE_WRAPPER, str(stats_file), *cmd]
        busy_before = busy_cpu_seconds()
        start = time.perf_counter()
        proc = subprocess.run(wrapped, capture_output=True, text=True, env=env, check=False)
        wall = time.perf_counter() - start
        busy = busy_cpu_seconds() - busy_before
        # /usr/bin/time prefixes "Command exited with non-zero status N" on failure.
        lines = stats_file.read_text().strip().splitlines()
        parts = lines[-1].split() if lines else []
        rss = int(parts[0]) if parts else 0
        cpu = float(parts[1]) + float(parts[2]) if len(parts) == 3 else 0.0
    finally:
        stats_file.unlink(missing_ok=True)
    foreign = max(0.0, busy - cpu) / ((os.cpu_count() or 1) * wall) if busy_before else float("nan")
    return Measured(proc.returncode, wall, rss, cpu, foreign, proc.stdout, proc.stderr)


def check_ok(m: Measured, what: str) -> None:
    if m.returncode != 0:
        tail = "\n".join(m.stderr.strip().splitlines()[-8:])
        signal = f" (killed by signal {m.returncode - 128})" if m.returncode > 128 else ""
        raise BenchError(f"{what} failed with exit code {m.returncode}{signal}:\n{tail}")


# ---------------------------------------------------------------------------------------------
# Preconditions and machine description


def check_prerequisites(s: Settings) -> None:
    problems = []
    if not (s.orchard.is_file() and os.access(s.orchard, os.X_OK)):
        problems.append(f"orchard binary {s.orchard} not found: run scripts/build (or pass --orchard)")
    if "sgemm" in s.sections and not (s.bench_sgemm.is_file() and os.access(s.bench_sgemm, os.X_OK)):
        problems.append(
            f"bench_sgemm {s.bench_sgemm} not found: run scripts/build, or "
            "cmake --build <build dir> --target bench_sgemm (or pass --bench-sgemm)"
        )
    needed = set()
    if s.sections & {"vgg16", "batch", "torch"}:
        needed.add("vgg16")
    if s.sections & {"mobilenet", "memory"}:
        needed.add("mobilenet_v2")
    for name in sorted(needed):
        for suffix in (".onnx", ".json"):
            path = s.models_dir / f"{name}{suffix}"
            if not path.is_file():
                hint = "run scripts/export-models" if name != "mobilenet_v2" else (
                    "it is committed: restore it from git, or run scripts/models/convert_tflite.py")
                problems.append(f"model file {path} missing: {hint}")
    if s.sections & {"vgg16", "torch", "mobilenet", "batch"} and not s.fruits.is_dir():
        problems.append(f"fruit images {s.fruits} not found (pass --fruits DIR)")
    if problems:
        raise BenchError("cannot run the benchmarks:\n  " + "\n  ".join(problems))


def machine_info() -> dict[str, Any]:
    info: dict[str, Any] = {"hostname": platform.node(), "kernel": platform.release()}
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        fields = dict(
            (k.strip(), v.strip()) for k, _, v in (line.partition(":") for line in lscpu.splitlines())
        )
        info["cpu_model"] = fields.get("Model name", "?")
        info["cpus"] = int(fields.get("CPU(s)", "0") or 0)
        flags = set(fields.get("Flags", "").split())
        info["avx2"] = "avx2" in flags
        info["avx512f"] = "avx512f" in flags
        info["fma"] = "fma" in flags
        info["hypervisor"] = fields.get("Hypervisor vendor", "")
    except (OSError, subprocess.CalledProcessError):
        info["cpu_model"] = platform.processor()
        info["cpus"] = os.cpu_count()
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                info["ram_gib"] = round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return info


def git_info(repo: Path) -> dict[str, Any]:
    def git(*args: str) -> str:
        out = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=False)
        return out.stdout.strip()

    status = git("status", "--porcelain", "--", "src", "include", "tools", "CMakeLists.txt")
    return {"commit": git("rev-parse", "--short", "HEAD"), "dirty_files": status.splitlines()}


def gflop_per_image(models_dir: Path, model: str, size: int) -> tuple[float, str]:
    """GFLOP of one forward pass at size x size, from the ONNX graph (Conv/Gemm/MatMul MACs x 2)."""
    sys.path.insert(0, str(REPO / "scripts" / "models"))
    try:
        import onnx
        from convert_tflite import onnx_gflops

        return onnx_gflops(onnx.load(str(models_dir / f"{model}.onnx")), size, size), "onnx_gflops"
    except Exception as e:  # noqa: BLE001  (any import or inference problem: use the sidecar)
        sidecar = json.loads((models_dir / f"{model}.json").read_text())
        approx = sidecar["gflops_224"] * (size / 224.0) ** 2
        return round(approx, 4), f"gflops_224 x (S/224)^2, approximate ({type(e).__name__}: {e})"
    finally:
        sys.path.pop(0)


# ---------------------------------------------------------------------------------------------
# Datasets


def list_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def make_fruit_folder(source: Path, dest: Path, count: int, resize: int | None) -> Path:
    """`count` fruit images in their class folders (names keep their spaces), taking the source
    files round-robin across classes (so that a small `count` has every class and the
    collection's mix of image sizes) and cycling when `count` exceeds them; resized to
    resize x resize (PIL Lanczos, JPEG q95) when given, like the 100x100 Fruits-360 standard
    set. Reused when already complete."""
    marker = dest.parent / (dest.name + ".json")
    spec = {"source": str(source), "count": count, "resize": resize, "version": 2}
    if marker.exists() and json.loads(marker.read_text()) == spec:
        return dest
    if dest.exists():
        shutil.rmtree(dest)
    by_class: dict[Path, list[Path]] = {}
    for f in list_images(source):
        by_class.setdefault(f.parent, []).append(f)
    columns = [by_class[c] for c in sorted(by_class)]
    files = [col[i] for i in range(max(map(len, columns), default=0)) for col in columns if i < len(col)]
    if not files:
        raise BenchError(f"no images under {source}")
    encoded: dict[Path, bytes] = {}
    for i in range(count):
        src = files[i % len(files)]
        out = dest / src.parent.name / f"{i // len(files):03d}_{src.name}"
        out.parent.mkdir(parents=True, exist_ok=True)
        if resize is None:
            shutil.copyfile(src, out)
            continue
        if src not in encoded:
            from PIL import Image

            buffer = io.BytesIO()
            Image.open(src).convert("RGB").resize((resize, resize), Image.LANCZOS).save(
                buffer, "JPEG", quality=95)
            encoded[src] = buffer.getvalue()
        out.write_bytes(encoded[src])
    marker.write_text(json.dumps(spec) + "\n")
    return dest


def make_synthetic(python: Path, dest: Path, count: int) -> Path:
    script = Path(__file__).resolve().parent / "make_synthetic_collection.py"
    cmd = [str(python), str(script), str(dest), "--images", str(count), "--classes", "100"]
    proc = subprocess.run(cmd, text=True, check=False)
    if proc.returncode != 0:
        raise BenchError(f"{' '.join(cmd)} failed with exit code {proc.returncode}")
    return dest


# ---------------------------------------------------------------------------------------------
# Measurements


def run_sgemm(s: Settings) -> dict[str, Any]:
    m, noise = measure_quietly(s, [str(s.bench_sgemm), "--threads", str(s.threads), "--reps", str(s.sgemm_reps)])
    check_ok(m, "bench_sgemm")
    result = json.loads(m.stdout)
    result.update(noise)
    return result


# The conv-like shape for the sgemm measured right before each throughput figure (~0.5 s).
ADJACENT_SGEMM_SHAPE = "512x3136x4608"


def measure_quietly(s: Settings, cmd: Sequence[str], env: dict[str, str] | None = None,
                    with_sgemm: bool = False) -> tuple[Measured, dict[str, float]]:
    """measure() after waiting (up to s.quiet_wait seconds) for the machine to calm down; with
    `with_sgemm`, a short sgemm right before it, so that the figure has a baseline taken under
    the same load (the round's own sgemm can be minutes away)."""
    waited = wait_until_quiet(s.quiet_wait) if s.quiet_wait > 0 else 0.0
    noise: dict[str, float] = {"waited_for_quiet_seconds": round(waited, 1)}
    if with_sgemm and "sgemm" in s.sections:
        g = measure([str(s.bench_sgemm), "--threads", str(s.threads), "--reps", "5",
                     "--shapes", ADJACENT_SGEMM_SHAPE])
        check_ok(g, "bench_sgemm")
        noise["sgemm_adjacent_gflops"] = json.loads(g.stdout)["gflops"]
    m = measure(cmd, env)
    noise["cpu_utilisation"] = m.cpu_seconds / m.wall_seconds if m.wall_seconds > 0 else 0.0
    noise["foreign_cpu_share"] = m.foreign_cpu_share
    return m, noise


def run_orchard(s: Settings, folder: Path, out: Path, model: str, size: int, batch: int = 16,
                extra: Sequence[str] = (), with_sgemm: bool = True) -> dict[str, Any]:
    """One `orchard run`; rates in images/s, times in seconds, RSS in MiB."""
    if out.exists():
        shutil.rmtree(out)
    # Preset names resolve through orchard's own search path; another --models-dir needs paths.
    model_arg = model if s.models_dir == (REPO / "models").resolve() else str(s.models_dir / f"{model}.onnx")
    cmd = [str(s.orchard), "run", "--input", str(folder), "--output", str(out), "--model", model_arg,
           "--size", str(size), "--pooling", "avg", "--threads", str(s.threads), "--batch", str(batch),
           "--work-dir", str(s.work_dir / "spill"), "--quiet", *extra]
    (s.work_dir / "spill").mkdir(parents=True, exist_ok=True)
    m, noise = measure_quietly(s, cmd, {**os.environ, **dict(s.orchard_env)} if s.orchard_env else None,
                               with_sgemm=with_sgemm)
    check_ok(m, "orchard run")
    manifest = json.loads((out / "manifest.json").read_text())
    t = manifest["timings_seconds"]
    n = manifest["counts"]["processed"]
    if manifest["counts"]["failed"]:
        raise BenchError(f"orchard run on {folder}: {manifest['counts']['failed']} images failed "
                         f"(see {out / 'errors.csv'})")
    steady = t["total"] - t["model_load"]
    return {
        "command": " ".join([*(f"{k}={v}" for k, v in s.orchard_env), *(f"'{c}'" if " " in c else c for c in cmd)]),
        "images": n,
        "wall_seconds": round(m.wall_seconds, 3),
        "images_per_second_wall": n / m.wall_seconds,
        # Steady state: the run without the one-off model load (torch's figures exclude it too).
        "images_per_second": n / steady if steady > 0 else 0.0,
        "images_per_second_inference": n / t["extract"] if t["extract"] > 0 else 0.0,
        "inference_share": t["extract"] / steady if steady > 0 else 0.0,
        "timings_seconds": t,
        "peak_rss_mib": m.peak_rss_kb / 1024.0,
        **noise,
    }


def run_torch(s: Settings, folder: Path, size: int, batch: int = 16) -> dict[str, Any]:
    """The PyTorch baseline in its own process (clean thread pools, its own peak RSS)."""
    cmd = [str(s.python), str(Path(__file__).resolve()), "--torch-worker", json.dumps(
        {"folder": str(folder), "size": size, "batch": batch, "threads": s.threads, "images": s.images})]
    m, noise = measure_quietly(s, cmd, with_sgemm=True)
    check_ok(m, "torch baseline")
    result = json.loads(m.stdout.strip().splitlines()[-1])
    result.update(peak_rss_mib=m.peak_rss_kb / 1024.0, **noise)
    return result


def torch_worker(spec: dict[str, Any]) -> dict[str, Any]:
    """Runs inside the worker process: vgg16().features on the folder's first `images` files."""
    import torch
    import torchvision
    from PIL import Image
    from torchvision import transforms as T

    torch.set_num_threads(spec["threads"])
    torch.manual_seed(0)
    size, batch = spec["size"], spec["batch"]
    model = torchvision.models.vgg16(weights=None).features.eval()
    example = torch.randn(batch, 3, size, size)
    mode, note = "eager", ""
    try:
        with torch.no_grad():
            frozen = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.script(model)))
            for _ in range(3):  # the profiling executor specialises on the first calls
                frozen(example)
        model, mode = frozen, "jit.freeze + optimize_for_inference"
    except Exception as e:  # noqa: BLE001  (any TorchScript failure: fall back to eager)
        note = f"jit failed, eager used: {type(e).__name__}: {e}"
    with torch.inference_mode():
        for _ in range(2):  # warm-up at the timed shape (oneDNN primitive and weight caches)
            model(example)

    # Same preprocessing as the vgg16 sidecar: shorter side to S / 0.875, centre crop S.
    transform = T.Compose([
        T.Resize(int(size / 0.875), interpolation=T.InterpolationMode.BILINEAR),
        T.CenterCrop(size), T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    files = list_images(Path(spec["folder"]))[: spec["images"]]
    decode_s = forward_s = 0.0
    for start in range(0, len(files), batch):
        t0 = time.perf_counter()
        x = torch.stack([transform(Image.open(f).convert("RGB")) for f in files[start:start + batch]])
        t1 = time.perf_counter()
        with torch.inference_mode():
            model(x).mean(dim=(2, 3))  # avg pooling, as `orchard run --pooling avg`
        t2 = time.perf_counter()
        decode_s += t1 - t0
        forward_s += t2 - t1
    n = len(files)
    return {
        "images": n, "size": size, "batch": batch, "threads": torch.get_num_threads(), "mode": mode,
        "note": note, "torch": torch.__version__, "torchvision": torchvision.__version__,
        "weights": "random (torchvision vgg16(weights=None), seed 0): speed only",
        "decode_seconds": decode_s, "forward_seconds": forward_s,
        "images_per_second_forward": n / forward_s,
        "images_per_second": n / (decode_s + forward_s),
    }


# ---------------------------------------------------------------------------------------------
# Suite


def suite(s: Settings) -> dict[str, Any]:
    check_prerequisites(s)
    s.work_dir.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "git": git_info(REPO),
        "settings": {k: (str(v) if isinstance(v, Path) else sorted(v) if isinstance(v, frozenset) else v)
                     for k, v in dataclasses.asdict(s).items()},
        "load_average_start": os.getloadavg(),
    }
    gflop = {}
    for model, sizes in (("vgg16", sorted({*s.sizes, 224})), ("mobilenet_v2", (224,))):
        if (s.models_dir / f"{model}.onnx").exists():
            for size in sizes:
                gflop[f"{model}@{size}"], how = gflop_per_image(s.models_dir, model, size)
                results.setdefault("gflop_method", how)
    results["gflop_per_image"] = gflop

    folders: dict[str, Path] = {}
    if s.sections & {"vgg16", "torch", "mobilenet"}:
        folders["fruits-orig"] = make_fruit_folder(s.fruits, s.work_dir / f"fruits-orig-{s.images}", s.images, None)
        folders["fruits-100px"] = make_fruit_folder(s.fruits, s.work_dir / f"fruits-100px-{s.images}", s.images, 100)
    batch_folder = None
    if "batch" in s.sections:
        batch_folder = make_fruit_folder(
            s.fruits, s.work_dir / f"fruits-orig-{s.batch_images}", s.batch_images, None)
    results["datasets"] = {**{k: str(v) for k, v in folders.items()},
                           **({"batch-sweep": str(batch_folder)} if batch_folder else {})}

    rounds = []
    for r in range(s.repeats):
        rnd: dict[str, Any] = {"round": r + 1}
        log(f"round {r + 1}/{s.repeats}")
        if "sgemm" in s.sections:
            rnd["sgemm"] = run_sgemm(s)
            log(f"  sgemm {rnd['sgemm']['gflops']:.1f} GFLOPS ({s.threads} threads)")
        for size in s.sizes:
            for name, folder in folders.items():
                key = f"{name}@{size}"
                if "vgg16" in s.sections:
                    o = run_orchard(s, folder, s.work_dir / "out" / f"vgg16-{key}", "vgg16", size)
                    o["gflops"] = o["images_per_second"] * gflop[f"vgg16@{size}"]
                    o["gflops_inference"] = o["images_per_second_inference"] * gflop[f"vgg16@{size}"]
                    rnd.setdefault("vgg16", {})[key] = o
                    log(f"  orchard vgg16 {key}: {o['images_per_second']:.2f} img/s, "
                        f"{o['gflops']:.1f} GFLOPS, inference {o['inference_share']:.0%} of time")
                if "torch" in s.sections:
                    t = run_torch(s, folder, size)
                    t["gflops"] = t["images_per_second"] * gflop[f"vgg16@{size}"]
                    t["gflops_forward"] = t["images_per_second_forward"] * gflop[f"vgg16@{size}"]
                    rnd.setdefault("torch", {})[key] = t
                    log(f"  torch  vgg16 {key}: {t['images_per_second']:.2f} img/s "
                        f"(forward {t['images_per_second_forward']:.2f}), {t['mode']}")
        if "mobilenet" in s.sections:
            for name, folder in folders.items():
                o = run_orchard(s, folder, s.work_dir / "out" / f"mobilenet-{name}", "mobilenet_v2", 224)
                o["gflops"] = o["images_per_second"] * gflop["mobilenet_v2@224"]
                o["gflops_inference"] = o["images_per_second_inference"] * gflop["mobilenet_v2@224"]
                rnd.setdefault("mobilenet_v2", {})[f"{name}@224"] = o
                log(f"  orchard mobilenet_v2 {name}@224: {o['images_per_second']:.1f} img/s")
        if batch_folder is not None:
            # In every round, like the rest: a sweep run once drifts with the machine's load.
            for b in s.batches:
                o = run_orchard(s, batch_folder, s.work_dir / "out" / f"vgg16-batch{b}", "vgg16", 224, batch=b)
                o["gflops"] = o["images_per_second"] * gflop["vgg16@224"]
                o["gflops_inference"] = o["images_per_second_inference"] * gflop["vgg16@224"]
                rnd.setdefault("vgg16_batch", {})[f"batch{b}@224"] = o
                log(f"  orchard vgg16 --batch {b}: {o['images_per_second']:.2f} img/s, "
                    f"inference {o['gflops_inference']:.1f} GFLOPS")
        annotate_round(rnd)
        rounds.append(rnd)
    results["rounds"] = rounds
    if rounds:
        results["best_of_rounds"] = best_of_rounds(rounds)

    if "memory" in s.sections:
        memory = {}
        for count in s.memory_sizes:
            folder = make_synthetic(s.python, s.work_dir / f"synthetic-{count}", count)
            o = run_orchard(s, folder, s.work_dir / "out" / f"memory-{count}", "mobilenet_v2", s.memory_size,
                            extra=["--pca-components", "8"], with_sgemm=False)
            memory[str(count)] = o
            log(f"  memory {count} images: peak RSS {o['peak_rss_mib']:.0f} MiB, "
                f"{o['wall_seconds']:.0f} s, {o['images_per_second']:.0f} img/s")
        results["memory"] = memory
    results["load_average_end"] = os.getloadavg()
    return results


def annotate_round(rnd: dict[str, Any]) -> None:
    """Adds % of sgemm (the one measured right before the figure, else the round's) and
    orchard / torch ratios (same round, same images)."""
    for family in ("vgg16", "mobilenet_v2", "torch", "vgg16_batch"):
        for o in rnd.get(family, {}).values():
            peak = o.get("sgemm_adjacent_gflops") or rnd.get("sgemm", {}).get("gflops")
            if peak:
                o["pct_of_sgemm"] = 100.0 * o["gflops"] / peak
                inference = o.get("gflops_inference", o.get("gflops_forward"))
                o["pct_of_sgemm_inference"] = 100.0 * inference / peak
    for key, o in rnd.get("vgg16", {}).items():
        t = rnd.get("torch", {}).get(key)
        if t:
            o["ratio_vs_torch"] = o["images_per_second"] / t["images_per_second"]
            o["ratio_vs_torch_inference"] = o["images_per_second_inference"] / t["images_per_second_forward"]


FAMILIES = (("vgg16", "orchard vgg16"), ("torch", "torch vgg16"), ("mobilenet_v2", "orchard mnv2"),
            ("vgg16_batch", "orchard vgg16"))


def best_of_rounds(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Per figure, the fastest round (noise only ever slows a run down), divided by the fastest
    sgemm and the fastest torch of the same invocation."""
    best: dict[str, Any] = {}
    sgemm = max([r["sgemm"]["gflops"] for r in rounds if "sgemm" in r] +
                [o["sgemm_adjacent_gflops"] for r in rounds for family, _ in FAMILIES
                 for o in r.get(family, {}).values() if "sgemm_adjacent_gflops" in o], default=None)
    best["sgemm_gflops"] = sgemm
    for family, _ in FAMILIES:
        for r in rounds:
            for key, o in r.get(family, {}).items():
                slot = best.setdefault(family, {}).setdefault(key, {})
                for field in ("images_per_second", "images_per_second_inference", "images_per_second_forward",
                              "gflops", "gflops_inference", "gflops_forward"):
                    if field in o:
                        slot[field] = max(slot.get(field, 0.0), o[field])
                slot["peak_rss_mib"] = max(slot.get("peak_rss_mib", 0.0), o["peak_rss_mib"])
                slot["least_foreign_cpu_share"] = min(slot.get("least_foreign_cpu_share", 1.0),
                                                      o["foreign_cpu_share"])
    for family, figures in best.items():
        if not isinstance(figures, dict):
            continue
        for key, o in figures.items():
            if sgemm:
                o["pct_of_sgemm"] = 100.0 * o["gflops"] / sgemm
                o["pct_of_sgemm_inference"] = 100.0 * o.get("gflops_inference", o.get("gflops_forward", 0)) / sgemm
            t = best.get("torch", {}).get(key) if family == "vgg16" else None
            if t:
                o["ratio_vs_torch"] = o["images_per_second"] / t["images_per_second"]
                o["ratio_vs_torch_inference"] = o["images_per_second_inference"] / t["images_per_second_forward"]
    return best


# ---------------------------------------------------------------------------------------------
# Report


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def fmt(value: Any, spec: str = ".1f") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return format(value, spec)


def figure_line(label: str, o: dict[str, Any], round_label: str) -> str:
    infer = o.get("images_per_second_inference", o.get("images_per_second_forward"))
    other = o.get("foreign_cpu_share", o.get("least_foreign_cpu_share"))
    return (f"{round_label:>5} {label:<34} {fmt(o['images_per_second'], '.2f'):>8} "
            f"{fmt(infer, '.2f'):>8} {fmt(o['gflops']):>7} {fmt(o.get('pct_of_sgemm')):>7} "
            f"{fmt(o.get('pct_of_sgemm_inference')):>7} {fmt(o.get('ratio_vs_torch'), '.2f'):>7} "
            f"{fmt(o.get('ratio_vs_torch_inference'), '.2f'):>7} {fmt(o['peak_rss_mib'], '.0f'):>8} "
            f"{fmt(None if other is None else 100 * other, '.0f'):>6} {fmt(o.get('sgemm_adjacent_gflops'), '.0f'):>6}")


def table(results: dict[str, Any]) -> str:
    lines = []
    m, g = results["machine"], results["git"]
    lines.append(f"{results['date']}  commit {g['commit']}{' (+uncommitted changes)' if g['dirty_files'] else ''}  "
                 f"{m.get('cpu_model')}, {m.get('cpus')} CPUs, avx2={m.get('avx2')} avx512f={m.get('avx512f')}, "
                 f"{m.get('ram_gib')} GiB")
    header = (f"{'round':>5} {'figure':<34} {'img/s':>8} {'infer':>8} {'GFLOPS':>7} {'%sgemm':>7} "
              f"{'%sg inf':>7} {'x torch':>7} {'x t.inf':>7} {'RSS MiB':>8} {'other%':>6} {'sgemm':>6}")
    lines += ["img/s: end to end without model load; infer: inference only (manifest extract / torch "
              "forward); %sgemm: against the sgemm GFLOPS measured right before (last column; best: "
              "the run's highest); x torch: same round; other%: CPU used by other processes during "
              "the run (best: the least)", header, "-" * len(header)]
    for rnd in results.get("rounds", []):
        r = str(rnd["round"])
        if "sgemm" in rnd:
            lines.append(f"{r:>5} {'sgemm (OpenBLAS ' + rnd['sgemm']['openblas_core'] + ')':<34} "
                         f"{'':>8} {'':>8} {fmt(rnd['sgemm']['gflops']):>7} {'':>7} {'':>7} {'':>7} {'':>7} "
                         f"{'':>8} {fmt(100 * rnd['sgemm']['foreign_cpu_share'], '.0f'):>6}")
        for family, label in FAMILIES:
            for key, o in rnd.get(family, {}).items():
                lines.append(figure_line(f"{label} {key}", o, r))
    best = results.get("best_of_rounds")
    if best and len(results.get("rounds", [])) > 1:
        lines.append("-" * len(header))
        lines.append(f"{'best':>5} {'sgemm':<34} {'':>8} {'':>8} {fmt(best.get('sgemm_gflops')):>7}")
        for family, label in FAMILIES:
            for key, o in best.get(family, {}).items():
                lines.append(figure_line(f"{label} {key}", o, "best"))
    if "memory" in results:
        mem = results["memory"]
        lines.append("")
        lines.append("memory (mobilenet_v2, avg pooling, --pca-components 8)")
        for count, o in mem.items():
            lines.append(f"  {int(count):>7} images: peak RSS {o['peak_rss_mib']:.0f} MiB, {o['wall_seconds']:.1f} s wall, "
                         f"{o['images_per_second']:.0f} img/s, other processes {100 * o['foreign_cpu_share']:.0f}%")
        sizes = sorted(mem, key=int)
        if len(sizes) >= 2:
            lo, hi = mem[sizes[0]]["peak_rss_mib"], mem[sizes[-1]]["peak_rss_mib"]
            lines.append(f"  RSS ratio {sizes[-1]} / {sizes[0]} images: {hi / lo:.2f}  (goal: flat, <= 1024 MiB)")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Command line


def parse_env(item: str) -> tuple[str, str]:
    name, sep, value = item.partition("=")
    if not sep or not name:
        raise BenchError(f"--orchard-env wants NAME=VALUE, got {item!r}")
    return name, value


def csv_ints(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(",") if x.strip())


ALL_SECTIONS = ("sgemm", "vgg16", "torch", "mobilenet", "batch", "memory")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--orchard", type=Path, default=REPO / "build" / "orchard", help="orchard binary")
    p.add_argument("--bench-sgemm", type=Path, help="bench_sgemm binary (default: beside --orchard)")
    p.add_argument("--python", type=Path, default=Path(sys.executable),
                   help="Python with torch/torchvision/PIL for the baseline (default: this one)")
    p.add_argument("--models-dir", type=Path, default=REPO / "models")
    p.add_argument("--fruits", type=Path, default=FRUITS_DEFAULT, help="folder of class folders of fruit JPEGs")
    p.add_argument("--work-dir", type=Path, default=Path(tempfile.gettempdir()) / "orchard-bench",
                   help="datasets, run outputs and spill files (reused between runs)")
    p.add_argument("--json-out", type=Path, help="where to write the results (default: WORK_DIR/results-<time>.json)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--images", type=int, help="fruit images per throughput run (default 64, quick 16)")
    p.add_argument("--repeats", type=int, help="rounds of the throughput figures (default 2, quick 1)")
    p.add_argument("--sizes", type=csv_ints, default=(100, 224), help="vgg16 input sizes (default 100,224)")
    p.add_argument("--batches", type=csv_ints, help="batch sweep (default 1,8,16,32; quick 1,16)")
    p.add_argument("--batch-images", type=int, help="images per batch-sweep run (default 32, quick 16)")
    p.add_argument("--memory-sizes", type=csv_ints, help="synthetic collection sizes (default 10000,100000; "
                   "quick 1000,10000)")
    p.add_argument("--memory-size", type=int, default=32, help="--size of the memory runs (default 32)")
    p.add_argument("--sgemm-reps", type=int, default=5)
    p.add_argument("--quiet-wait", type=float, default=6.0,
                   help="before each measurement, wait up to this many seconds for other processes "
                        "to use < 10%% of the machine (0: do not wait; default 6)")
    p.add_argument("--orchard-env", action="append", default=[], metavar="NAME=VALUE",
                   help="environment variable for the orchard runs only, e.g. OPENBLAS_NUM_THREADS=1 "
                        "(repeatable; recorded in the JSON)")
    p.add_argument("--only", help=f"comma-separated sections among {','.join(ALL_SECTIONS)}")
    p.add_argument("--skip", default="", help="comma-separated sections to leave out")
    p.add_argument("--quick", action="store_true", help="smaller sets and one round (~3 minutes)")
    p.add_argument("--torch-worker", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def settings_from(args: argparse.Namespace) -> Settings:
    quick = args.quick
    sections = set(args.only.split(",")) if args.only else set(ALL_SECTIONS)
    sections -= set(filter(None, args.skip.split(",")))
    unknown = sections - set(ALL_SECTIONS)
    if unknown:
        raise BenchError(f"unknown sections {sorted(unknown)}; valid: {', '.join(ALL_SECTIONS)}")
    orchard = args.orchard.resolve()
    return Settings(
        orchard=orchard,
        bench_sgemm=(args.bench_sgemm or orchard.parent / "bench_sgemm").resolve(),
        python=args.python,
        models_dir=args.models_dir.resolve(),
        fruits=args.fruits,
        work_dir=args.work_dir.resolve(),
        threads=args.threads,
        images=args.images or (16 if quick else 64),
        repeats=args.repeats or (1 if quick else 2),
        sizes=args.sizes,
        batches=args.batches or ((1, 16) if quick else (1, 8, 16, 32)),
        batch_images=args.batch_images or (16 if quick else 32),
        memory_sizes=args.memory_sizes or ((1000, 10000) if quick else (10000, 100000)),
        memory_size=args.memory_size,
        sgemm_reps=args.sgemm_reps,
        quiet_wait=args.quiet_wait,
        orchard_env=tuple(parse_env(item) for item in args.orchard_env),
        sections=frozenset(sections),
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.torch_worker:
        print(json.dumps(torch_worker(json.loads(args.torch_worker))))
        return 0
    try:
        s = settings_from(args)
        if "torch" in s.sections:
            probe = subprocess.run([str(s.python), "-c", "import torch, torchvision, PIL"],
                                   capture_output=True, text=True, check=False)
            if probe.returncode != 0:
                raise BenchError(f"{s.python} cannot import torch/torchvision/PIL: run with "
                                 f"{REPO / '.venv/bin/python'} (scripts/install-deps), or --skip torch")
        started = time.perf_counter()
        results = suite(s)
        results["benchmark_seconds"] = time.perf_counter() - started
    except BenchError as e:
        print(f"run_benchmarks: {e}", file=sys.stderr)
        return 1
    out = args.json_out or s.work_dir / f"results-{dt.datetime.now():%Y%m%d-%H%M%S}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))
    print(f"\n{results['benchmark_seconds'] / 60:.1f} min; results in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
