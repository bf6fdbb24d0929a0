#!/usr/bin/env bash
# CI guard for training-step cost: every installed method's QAT step / FP32 step ratio on
# timm resnet18 (32x32) and the quick suite's micro ViT, batch 64, 2 threads, median of 10
# interleaved rounds; exit 1 when a ratio exceeds benchmarks/baseline.json's by more than 20 % after
# one re-measurement (ratios, not seconds, so the baseline holds on any machine of the same kind).
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=2
python -m qbench.cli bench --threads 2 --rounds 10 --against benchmarks/baseline.json --max-regression 0.2 "$@"
