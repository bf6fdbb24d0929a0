"""Every CUDA path of qbench in one command (scripts/gpu-check.sh runs it): exits non-zero on any failure.

Stages, each printed as it ends and summarised in a table:

* placement: every installed method on ResNet-20 and the micro ViT (embedded digits), one QAT step
  on the device: every parameter and buffer of the quantized model, its FP teacher and the
  method's own parameters (allocator, wrapper) on the device; host syncs per step counted (reads
  of a device value into Python: ``bool``, ``item``, ``tolist``, ``float``, ``int``).
* suite: a tiny suite with every installed method on both models through the worker pool on the
  device: every row ok, on the device, with deploy parity fields (audit, export, onnxruntime).
* files: a generated CIFAR-10 (official python format) and a JPEG image folder through the pool
  with DataLoader workers (pinned memory on a GPU): rows ok.
* resume: a QAT job killed with SIGKILL after its first epoch, rerun: it resumes from that epoch.
* gpus: with 2+ GPUs, one pool job per GPU (rows on cuda:0 and cuda:1) and Ray's one-GPU tasks,
  including a ``--device cuda:1`` task computing on GPU 1 (its cuda:0 has GPU 1's UUID).

Without a GPU it says so and exits 0; ``--device cpu`` runs every stage that can run on a CPU
(CI does, so the script cannot rot).
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from qbench.testing.syncs import counted_reads

ROOT = Path(__file__).resolve().parents[1]


def off_device(modules: dict[str, object], device: torch.device) -> list[str]:
    """Names of tensors (parameters, buffers) not on ``device``."""
    bad = []
    for owner, obj in modules.items():
        named = []
        if isinstance(obj, torch.nn.Module):
            named = list(obj.named_parameters()) + list(obj.named_buffers())
        elif hasattr(obj, "parameters"):
            named = [(f"param{i}", p) for i, p in enumerate(obj.parameters())]  # type: ignore[attr-defined]
        bad += [f"{owner}.{n} on {t.device}" for n, t in named if t.device.type != device.type]
    return bad


def placement(device: torch.device) -> tuple[bool, str]:
    from qbench.contract.bits import BitTarget
    from qbench.testing import FAMILIES, fp_model, get_catalog, tiny_digits
    from qbench.train.qat import qat_parts

    catalog, data = get_catalog(), tiny_digits()
    x, y = data.train.tensors[0][:32].to(device), data.train.tensors[1][:32].to(device)
    problems, syncs = [], {}
    for method in sorted(m for m in catalog.methods.names() if not catalog.methods.get(m).reference):
        for family, _, _ in FAMILIES:
            label = f"{method}/{family}"
            try:
                parts = qat_parts(catalog.methods.get(method), catalog, fp_model(family).to(device), data,
                                  BitTarget(4, 4), "fp", 0, device)
                parts.qmodel.train()
                parts.loss_fn(x, y).backward()  # the first step initialises; the second is counted
                with counted_reads() as calls:  # the loop's own reads are once per window (tests/test_host_syncs.py)
                    loss = parts.loss_fn(x, y)
                    loss.backward()
                    parts.after_step(x, y, loss.detach(), 1, 0)
                syncs[label] = len(calls)
                wrapper = parts.wrapper if isinstance(parts.wrapper, torch.nn.Module) else None
                problems += [f"{label}: {b}" for b in off_device(
                    {"model": parts.qmodel, "teacher": parts.teacher, "allocator": parts.allocator,
                     **({"wrapper": wrapper} if wrapper is not None else {})}, device)]
            except Exception as exc:  # noqa: BLE001  (every method is checked, each failure named)
                problems.append(f"{label}: {type(exc).__name__}: {exc}")
    worst = max(syncs.items(), key=lambda kv: kv[1]) if syncs else ("-", 0)
    detail = (f"{len(syncs)} method x model pairs; host reads per step: median "
              f"{sorted(syncs.values())[len(syncs) // 2] if syncs else 0}, most {worst[1]} ({worst[0]})")
    print("  host reads per step: " + ", ".join(f"{k} {v}" for k, v in sorted(syncs.items())))
    return not problems, detail + ("".join(f"\n    {p}" for p in problems[:20]))


def qbench(*args: str, env: dict[str, str] | None = None, timeout: float = 1800) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "qbench.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


def rows(ws: Path, suite: str) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((ws / suite / "rows").glob("*.json"))]


def check_rows(found: list[dict], device: torch.device, expect: int, deploy: bool) -> list[str]:
    bad = [f"{r['method']}/{r['model']}: {r['status']} {r.get('reason', '')[:200]}" for r in found
           if r["status"] != "ok"]
    bad += [f"{r['method']}/{r['model']}: ran on {r.get('device')}" for r in found
            if not str(r.get("device", "")).startswith(device.type)]
    if deploy:
        bad += [f"{r['method']}/{r['model']}: no deploy parity" for r in found
                if r["status"] == "ok" and r["method"] != "fp32" and "deploy_top1" not in r]
    if len(found) != expect:
        bad.append(f"{len(found)} rows, expected {expect}")
    return bad


def suite_stage(device: torch.device, tmp: Path, workers: int) -> tuple[bool, str]:
    from qbench.testing import get_catalog, tiny_suite

    methods = tuple(sorted(get_catalog().methods.names()))
    text = tiny_suite(name="gpu-check", methods=methods, width=8).replace(
        '[fp]', '[[models]]\nname = "vit_tiny_patch16_224"\nalias = "vit-micro"\n'
        'kwargs = { img_size = 8, patch_size = 2, depth = 2, embed_dim = 32, num_heads = 2 }\n\n[fp]', 1)
    (tmp / "suite.toml").write_text(text)
    res = qbench("run", "--suite", str(tmp / "suite.toml"), "--all", "--device", str(device), "--workers",
                 str(workers), "--workspace", str(tmp / "ws"), "--no-progress")
    bad = check_rows(rows(tmp / "ws", "gpu-check"), device, 2 * len(methods), deploy=True)
    if res.returncode != 0:
        bad.insert(0, f"qbench run exited {res.returncode}: {res.stderr[-500:]}")
    return not bad, f"{2 * len(methods)} jobs through the pool x{workers}" + "".join(f"\n    {b}" for b in bad[:20])


def files_stage(device: torch.device, tmp: Path, workers: int) -> tuple[bool, str]:
    from qbench.testing import file_suite, write_cifar10, write_image_folder

    bad = []
    # generated files: CIFAR's official checksums cannot match them; the folder's images are 32 px
    for dataset, make, options in (("cifar10", write_cifar10, "verify_checksums = false"),
                                   ("image-folder", write_image_folder, "img_size = 32")):
        data = tmp / dataset
        make(data)
        (tmp / f"{dataset}.toml").write_text(file_suite(dataset, name=dataset, options=options))
        res = qbench("run", "--suite", str(tmp / f"{dataset}.toml"), "--device", str(device), "--workers",
                     str(workers), "--data-dir", str(data), "--workspace", str(tmp / f"ws-{dataset}"), "--no-progress")
        if res.returncode != 0:
            bad.append(f"{dataset}: qbench run exited {res.returncode}: {res.stderr[-500:]}")
        bad += [f"{dataset}: {b}" for b in check_rows(rows(tmp / f"ws-{dataset}", dataset), device, 2, deploy=False)]
    return not bad, "CIFAR-10 files and a JPEG folder, DataLoader workers" + "".join(f"\n    {b}" for b in bad)


def resume_stage(device: torch.device, tmp: Path) -> tuple[bool, str]:
    from qbench.testing import tiny_suite

    (tmp / "resume.toml").write_text(tiny_suite(name="resume", methods=("lsq",), qat_epochs=6, width=8))
    args = [sys.executable, "-m", "qbench.cli", "run", "--suite", str(tmp / "resume.toml"), "--method", "lsq",
            "--device", str(device), "--workers", "1", "--workspace", str(tmp / "ws"), "--no-progress"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 900
    while not list((tmp / "ws" / "epochs").glob("*.qat.pt")):
        if proc.poll() is not None or time.monotonic() > deadline:
            return False, "the job ended before its first QAT epoch checkpoint (too fast to kill: raise qat_epochs)"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    subprocess.run(args, capture_output=True, timeout=1800)
    found = [r for r in rows(tmp / "ws", "resume") if r["method"] == "lsq"]
    bad = check_rows(found, device, 1, deploy=False)
    if found and not found[0].get("resumed_from_epoch"):
        bad.append("the rerun did not resume from the epoch checkpoint")
    return not bad, (f"killed after epoch 1, resumed from epoch {found[0].get('resumed_from_epoch')}" if found else "")\
        + "".join(f"\n    {b}" for b in bad)


def gpus_stage(tmp: Path) -> tuple[bool, str]:
    n = torch.cuda.device_count()
    if n < 2:
        return True, f"skipped: {n} GPU (needs 2+)"
    from qbench.testing import tiny_suite

    (tmp / "two.toml").write_text(tiny_suite(name="two", methods=("fp32", "lsq"), seeds=(0, 1), width=8))
    qbench("run", "--suite", str(tmp / "two.toml"), "--all", "--device", "cuda", "--workspace", str(tmp / "ws"),
           "--no-progress")
    devices = {str(r.get("device", "")).split(" ")[0] for r in rows(tmp / "ws", "two")}
    bad = [] if len(devices) >= 2 else [f"every job ran on {devices}: expected one GPU per pool worker"]
    ray = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          str(ROOT / "plugins/qbench-ray/tests/test_ray_gpu_placement.py")], capture_output=True,
                         text=True)
    if ray.returncode != 0:
        bad.append("Ray placement: " + ray.stdout[-500:])
    return not bad, f"pool jobs on {sorted(devices)}; Ray one-GPU tasks" + "".join(f"\n    {b}" for b in bad)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda:0", help="cuda:N (default cuda:0), or cpu for the CPU-able stages")
    ap.add_argument("--workers", type=int, default=2, help="pool workers of the suite and file stages")
    ap.add_argument("--stages", default="placement,suite,files,resume,gpus")
    opts = ap.parse_args()
    device = torch.device(opts.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print(f"gpu-check: torch {torch.__version__} sees no CUDA device here: nothing GPU-only to check. "
              "`bash scripts/gpu-check.sh --device cpu` runs the stages a CPU can.")
        return 0
    stages = {"placement": lambda t: placement(device), "suite": lambda t: suite_stage(device, t, opts.workers),
              "files": lambda t: files_stage(device, t, opts.workers), "resume": lambda t: resume_stage(device, t),
              "gpus": lambda t: gpus_stage(t) if device.type == "cuda" else (True, "skipped: not a GPU run")}
    results = []
    for name in opts.stages.split(","):
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix=f"gpu-check-{name}-") as tmp:
            try:
                ok, detail = stages[name](Path(tmp))
            except Exception as exc:  # noqa: BLE001  (a stage that raises is a failed stage, named)
                ok, detail = False, f"{type(exc).__name__}: {exc}"
        results.append((name, ok, time.perf_counter() - t0, detail))
        print(f"gpu-check: {name}: {'ok' if ok else 'FAILED'} ({results[-1][2]:.0f} s) {detail}", flush=True)
    print("\n| stage | result | seconds | detail |\n|---|---|---|---|")
    for name, ok, secs, detail in results:
        print(f"| {name} | {'ok' if ok else 'FAILED'} | {secs:.0f} | {detail.splitlines()[0] if detail else ''} |")
    print(f"\ngpu-check on {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU'}), "
          f"torch {torch.__version__}")
    return 0 if all(ok for _, ok, _, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
