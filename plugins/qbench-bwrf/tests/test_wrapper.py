"""BWRF's defining properties: frozen FP, the intended MP mixes, gradients through MP paths,
the loss it claims, and only the LP model evaluated."""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from qbench_bwrf import BWRFWrapper
from qbench_bwrf.wrapper import mp_configs
from torch import nn

from qbench.api import QuantLayer, kd_loss


def _setup(qmodel: nn.Module, fp: nn.Module, **params: object) -> BWRFWrapper:
    w = BWRFWrapper(**params)
    w.setup(qmodel, fp)
    return w


def test_configs_of_both_readings() -> None:
    assert mp_configs(3, "progressive") == [(True, False, False), (True, True, False)]
    assert mp_configs(3, "single") == [(True, False, False), (False, True, False), (False, False, True)]


@pytest.mark.parametrize("reading", ["progressive", "single"])
def test_mp_models_run_exactly_the_intended_blocks(resnet20, reading: str) -> None:
    qmodel, fp, x, _ = resnet20
    w = _setup(qmodel, fp, reading=reading)
    n = len(w.block_names)
    assert n == 9 and len(w.configs) == (n - 1 if reading == "progressive" else n)
    ran: list[tuple[str, int | str]] = []
    hooks = []
    for tag, model in (("F", fp), ("Q", qmodel)):
        for k, name in enumerate(w.block_names):
            hooks.append(model.get_submodule(name).register_forward_hook(
                lambda *_, tag=tag, k=k: ran.append((tag, k))))
        for part in ("conv1", "fc"):  # stem and head
            hooks.append(model.get_submodule(part).register_forward_hook(
                lambda *_, tag=tag, part=part: ran.append((tag, part))))
    try:
        for i, cfg in enumerate(w.configs):
            ran.clear()
            w.mp_logits(x, cfg)
            blocks = [r for r in ran if isinstance(r[1], int)]
            assert blocks == [("Q" if q else "F", k) for k, q in enumerate(cfg)]
            assert sorted(r for r in ran if isinstance(r[1], str)) == [("F", "conv1"), ("F", "fc")]
            if reading == "progressive":
                assert cfg == tuple(k <= i for k in range(n))
            else:
                assert cfg == tuple(k == i for k in range(n))
    finally:
        for h in hooks:
            h.remove()


def test_shared_prefix_computes_each_lp_block_once(resnet20) -> None:
    qmodel, fp, x, y = resnet20
    w = _setup(qmodel, fp, reading="progressive")
    counts = [0] * len(w.block_names)
    hooks = [qmodel.get_submodule(n).register_forward_hook(lambda *_, k=k: counts.__setitem__(k, counts[k] + 1))
             for k, n in enumerate(w.block_names)]
    w.loss(qmodel, x, y)
    for h in hooks:
        h.remove()
    # once in the LP forward, once for all MP models (the last block is in no progressive MP model)
    assert counts == [2] * (len(counts) - 1) + [1]


@pytest.mark.parametrize("reading", ["progressive", "single"])
def test_shared_prefix_gives_the_same_loss_and_gradients(resnet20, reading: str) -> None:
    qmodel, fp, x, y = resnet20
    results = []
    for share in (True, False):
        q = copy.deepcopy(qmodel)
        loss = _setup(q, copy.deepcopy(fp), reading=reading, share_prefix=share).loss(q, x, y)
        loss.backward()
        results.append((loss.detach(), {n: p.grad.clone() for n, p in q.named_parameters() if p.grad is not None}))
    (l1, g1), (l2, g2) = results
    torch.testing.assert_close(l1, l2)
    assert g1.keys() == g2.keys() and len(g1) > 0
    for name in g1:
        # float32 sums in another order (scalar step gradients add up thousands of terms)
        torch.testing.assert_close(g1[name], g2[name], rtol=1e-3, atol=1e-5)


def test_loss_is_the_documented_sum_of_terms(resnet20) -> None:
    qmodel, fp, x, y = resnet20
    wts = dict(w_ce_lp=0.3, w_kd_fp_lp=0.7, w_ce_mp=1.1, w_kd_fp_mp=0.5, w_kd_mp_lp=0.9)
    w = _setup(qmodel, fp, reading="single", temperature=2.0, mp_reduction="mean", **wts)
    got = w.loss(qmodel, x, y)
    with torch.no_grad():
        lp, teacher = qmodel(x), fp(x)  # the plain FP forward is the all-FP branch
        mps = [w.mp_logits(x, c) for c in w.configs]
    t = 2.0
    want = wts["w_ce_lp"] * F.cross_entropy(lp, y) + wts["w_kd_fp_lp"] * kd_loss(lp, teacher, t)
    want = want + sum(wts["w_ce_mp"] * F.cross_entropy(m, y) + wts["w_kd_fp_mp"] * kd_loss(m, teacher, t)
                      + wts["w_kd_mp_lp"] * kd_loss(lp, m, t) for m in mps) / len(mps)
    torch.testing.assert_close(got.detach(), want, rtol=1e-5, atol=1e-6)


def test_fp_model_and_its_bn_statistics_stay_frozen(resnet20) -> None:
    qmodel, fp, x, y = resnet20
    before = {k: v.clone() for k, v in fp.state_dict().items() if torch.is_tensor(v)}
    fp_modules = {n: id(m) for n, m in fp.named_modules()}
    q_before = {k: v.clone() for k, v in qmodel.state_dict().items() if torch.is_tensor(v)}
    w = _setup(qmodel, fp)
    opt = torch.optim.SGD(list(qmodel.parameters()) + list(fp.parameters()), lr=0.1, momentum=0.9)
    for _ in range(3):
        opt.zero_grad()
        w.loss(qmodel, x, y).backward()
        opt.step()
    assert not fp.training and all(not m.training for m in fp.modules())
    assert all(not p.requires_grad and p.grad is None for p in fp.parameters())
    after = fp.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # weights and BN buffers
    assert {n: id(m) for n, m in fp.named_modules()} == fp_modules  # blocks put back
    assert any(not torch.equal(v, qmodel.state_dict()[k]) for k, v in q_before.items())  # the LP model trained


@pytest.mark.parametrize("update", [False, True])
def test_bn_running_stats_of_lp_blocks_come_from_lp_forwards_by_default(resnet20, update: bool) -> None:
    qmodel, fp, x, y = resnet20
    alone = copy.deepcopy(qmodel)
    alone(x)  # the LP forward on its own
    _setup(qmodel, fp, mp_bn_update=update).loss(qmodel, x, y)
    bufs = [k for k in alone.state_dict() if "running_" in k or "num_batches" in k]
    same = [torch.equal(alone.state_dict()[k], qmodel.state_dict()[k]) for k in bufs]
    assert bufs and (all(same) if not update else not all(same))


@pytest.mark.parametrize("key", ["resnet20", "resnet18", "vit"])
@pytest.mark.parametrize("reading", ["progressive", "single"])
def test_gradients_reach_every_quantized_block_through_mp_paths(build_models, key: str, reading: str) -> None:
    qmodel, fp, x, y = build_models(key)
    # MP terms only: any gradient the LP model gets comes through an MP model
    w = _setup(qmodel, fp, reading=reading, w_ce_lp=0.0, w_kd_fp_lp=0.0, w_kd_mp_lp=0.0)
    w.loss(qmodel, x, y).backward()
    in_mp = [any(c[k] for c in w.configs) for k in range(len(w.block_names))]
    assert in_mp == ([True] * (len(in_mp) - 1) + [False] if reading == "progressive" else [True] * len(in_mp))
    block_layers = set()
    for k, name in enumerate(w.block_names):
        layers = [(n, m) for n, m in qmodel.get_submodule(name).named_modules() if isinstance(m, QuantLayer)]
        assert layers, f"{name} has no quantized layer"
        for n, m in layers:
            block_layers.add(id(m))
            grads = [m.weight.grad] + [p.grad for q in (m.wq, m.aq) if q is not None for p in q.parameters()]
            reached = all(g is not None and g.abs().sum() > 0 for g in grads)
            unreached = all(g is None or g.abs().sum() == 0 for g in grads)
            assert reached if in_mp[k] else unreached, f"{name}.{n}: in an MP model = {in_mp[k]}"
    # outside the blocks (stem, head) MP models use the frozen FP modules: no gradient to the LP ones
    for n, p in qmodel.named_parameters():
        if not any(n.startswith(b + ".") for b in w.block_names):
            assert p.grad is None or p.grad.abs().sum() == 0, n


def test_evaluated_model_is_the_pure_lp_model(resnet20) -> None:
    qmodel, fp, x, y = resnet20
    q_modules = {n: id(m) for n, m in qmodel.named_modules()}
    w = _setup(qmodel, fp)
    w.loss(qmodel, x, y).backward()
    ev = w.eval_model(qmodel)
    assert ev is qmodel
    assert {n: id(m) for n, m in ev.named_modules()} == q_modules
    assert not {id(m) for m in fp.modules()} & set(q_modules.values())  # no FP module inside
    # the 18 3x3 body convs and 2 shortcut convs of resnet20 (stem and classifier stay FP in this plan)
    assert sum(isinstance(m, QuantLayer) for m in ev.modules()) == 20


def test_num_mp_samples_a_reproducible_subset_each_step(resnet20) -> None:
    qmodel, fp, x, y = resnet20
    runs = []
    for _ in range(2):
        w = _setup(qmodel, fp, num_mp=3, seed=7)
        seen = []
        for _ in range(4):
            with torch.no_grad():
                w.loss(qmodel, x, y)
            assert len(w.last_configs) == 3 and all(c in w.configs for c in w.last_configs)
            assert len(set(w.last_configs)) == 3
            seen.append(tuple(w.last_configs))
        runs.append(seen)
    assert runs[0] == runs[1]
    assert len(set(runs[0])) > 1
