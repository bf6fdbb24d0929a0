"""How far N2UQ's thresholds move in one quick-suite QAT (digits, W=A bits, seed 0).

Usage: python plugins/qbench-n2uq/bench_thresholds.py FP_CHECKPOINT.safetensors resnet20|vit-micro BITS
       ["{'threshold_grad_scale': 'lsq'}"]
FP_CHECKPOINT is a digits checkpoint of that model from a qbench workspace (WS/fp/KEY.safetensors).
The last argument overrides ``n2uq`` activation params (a Python dict literal). Prints the test top-1
after 4 epochs of the quick recipe (SGD 0.9, lr 0.01, wd 5e-4, cosine, batch 128: 48 steps) and, per
layer, the largest relative change of a width a_i (median and max over layers), and t0's largest move.
"""
import ast
import sys

import torch
from safetensors.torch import load_file

from qbench.api import BitTarget, quant_layers
from qbench.testing import TrainRecipe, create_model, evaluate, get_catalog, load_digits, prepare, train

torch.set_num_threads(1)
fp_path, model, bits = sys.argv[1], sys.argv[2], int(sys.argv[3])
extra = ast.literal_eval(sys.argv[4]) if len(sys.argv) > 4 else {}
cat = get_catalog()
method = cat.methods.get("n2uq").compose("n2uq-x", params={"activation": extra})
kw = dict(img_size=8, patch_size=2, depth=4, embed_dim=64, num_heads=4) if model.startswith("vit") else {}
fp = create_model("vit_tiny_patch16_224" if model.startswith("vit") else model, 10, 1, **kw)
fp.load_state_dict(load_file(fp_path))
data = load_digits()
q, _, _ = prepare(method, cat, fp.eval(), data, BitTarget(bits, bits), "fp", 0)
aqs = [(n, l.aq) for n, l in quant_layers(q) if l.aq is not None]
w0 = [a.widths().detach().clone() for _, a in aqs]
t00 = [float(a.t0.detach()) for _, a in aqs]
recipe = TrainRecipe(epochs=4, batch_size=128, lr=0.01, momentum=0.9, weight_decay=5e-4, schedule="cosine")
train(q, lambda x, y: torch.nn.functional.cross_entropy(q(x), y), data, recipe, 0)
rel = [float(((a.widths().detach() - w) / w).abs().max()) for (_, a), w in zip(aqs, w0)]
print(extra, "top1", evaluate(q, data)["top1"],
      "max rel width change per layer: median %.4f max %.4f" % (sorted(rel)[len(rel) // 2], max(rel)))
print("t0 moves", max(abs(float(a.t0.detach()) - t) for (_, a), t in zip(aqs, t00)))
