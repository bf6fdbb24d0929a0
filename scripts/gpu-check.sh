#!/usr/bin/env bash
# Every CUDA path of qbench in one command, for a GPU owner (at most about 8 minutes on one GPU):
# every installed method on ResNet-20 and the micro ViT with every tensor on the device and the host
# syncs per step counted; a suite of every method through the pool with audit, export and
# onnxruntime parity; a generated CIFAR-10 and a JPEG folder through the pool with DataLoader workers
# and pinned memory; a job killed during QAT resuming from its epoch; with 2+ GPUs, one pool job per
# GPU and Ray's one-GPU tasks. Exits non-zero on any failure, with a summary table (scripts/gpu_check.py).
#
#   bash scripts/gpu-check.sh                 # on cuda:0; says so and exits 0 without a GPU
#   bash scripts/gpu-check.sh --device cpu    # the stages a CPU can run (CI runs this)
set -euo pipefail
cd "$(dirname "$0")/.."
exec python scripts/gpu_check.py "$@"
