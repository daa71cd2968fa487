"""tsne.py and tsne_mnist.py: P symmetric and normalised, perplexity hit by the calibration,
KL value and gradient (compiled, fused and autograd) against a direct formula and finite
differences, the compiled pass's half layout and its fallback where nothing compiles, the kNN
accuracy by hand, the script end to end and its bad inputs."""
from __future__ import annotations

import json
import math

import pytest
import torch

import tsne_mnist
from cli import run
import tsne
from tsne import (CompiledKL, circulant_half, embed, entropy_constant, joint_probabilities,
                  kl_terms, kl_terms_fused, knn_accuracy, squared_distances)


def _clusters(n=30, seed=0):
    g = torch.Generator().manual_seed(seed)
    centres = torch.tensor([[0.0] * 5, [4.0] * 5, [-4.0, 4.0, 0.0, 0.0, 0.0]])
    labels = torch.arange(n) % 3
    return centres[labels] + 0.5 * torch.randn(n, 5, generator=g), labels


def _compiled(P, Y):
    """The compiled pass built for this P (it must compile on this machine)."""
    compiled = CompiledKL.build(P, Y)
    assert compiled is not None, "torch.compile failed here (see stderr)"
    return compiled


def _compiled_terms(P, Y):
    """(A, log Z) by the compiled pass."""
    return _compiled(P, Y)(Y)[:2]


def _direct_kl(P, Y):
    """Σ_{i≠j} p_ij log(p_ij / q_ij) written out plainly, float64."""
    P, Y = P.double(), Y.double()
    w = 1 / (1 + torch.cdist(Y, Y).square())
    w.fill_diagonal_(0)
    Q = w / w.sum()
    mask = P > 0
    return (P[mask] * torch.log(P[mask] / Q[mask])).sum().item()


@pytest.mark.parametrize("how", [dict(sigma=2.0), dict(perplexity=5.0)])
def test_p_is_symmetric_sums_to_one_zero_diagonal(how):
    x, _ = _clusters()
    P = joint_probabilities(x, block=7, **how).P            # several row blocks
    assert P.dtype == torch.float64
    assert torch.allclose(P, P.T) and P.sum().item() == pytest.approx(1.0, abs=1e-12)
    assert (P.diagonal() == 0).all() and (P >= 0).all()


def test_fixed_sigma_p_by_hand():
    x = torch.tensor([[0.0], [1.0], [3.0]])
    sigma = 1.0
    e = lambda d2: math.exp(-d2 / (2 * sigma ** 2))       # noqa: E731
    cond = [[0, e(1) / (e(1) + e(9)), e(9) / (e(1) + e(9))],
            [e(1) / (e(1) + e(4)), 0, e(4) / (e(1) + e(4))],
            [e(9) / (e(9) + e(4)), e(4) / (e(9) + e(4)), 0]]
    cond = torch.tensor(cond, dtype=torch.float64)
    expected = (cond + cond.T) / 6
    assert torch.allclose(joint_probabilities(x, sigma=sigma).P, expected, atol=1e-15)


@pytest.mark.parametrize("perplexity", [2.0, 8.0, 38.0])     # 38: near the 39 other points
def test_calibration_hits_the_perplexity(perplexity):
    x, _ = _clusters(40)
    aff = joint_probabilities(x, perplexity=perplexity)
    assert torch.allclose(aff.perplexity, torch.full((40,), perplexity, dtype=torch.float64),
                          rtol=1e-4)
    assert (aff.sigma > 0).all() and aff.sigma.std() > 0      # one σ_i per point
    # a row's own check: entropy of exp(−β d²) over the other points is log perplexity
    d2 = squared_distances(x.double())
    d2.fill_diagonal_(math.inf)
    beta = 1 / (2 * aff.sigma[:3] ** 2)
    p = torch.softmax(-beta[:, None] * d2[:3], dim=1)
    entropy = -torch.special.xlogy(p, p).sum(1)
    assert torch.allclose(entropy, torch.full((3,), math.log(perplexity), dtype=torch.float64),
                          atol=1e-4)


@pytest.mark.parametrize("n", [12, 13])                      # even and odd N: the half layout
@pytest.mark.parametrize("terms", [kl_terms, lambda P, Y: kl_terms_fused(P, Y, block=4),
                                   _compiled_terms])
def test_kl_value_matches_the_direct_formula(terms, n):
    x, _ = _clusters(n)
    P = joint_probabilities(x, perplexity=3.0).P
    Y = torch.randn(n, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    attraction, log_z = terms(P, Y)
    kl = entropy_constant(P) + attraction.item() + log_z.item()
    assert kl == pytest.approx(_direct_kl(P, Y), rel=1e-10)


@pytest.mark.parametrize("gradient", ["compiled", "fused", "autograd"])
@pytest.mark.parametrize("alpha", [1.0, 4.0])
def test_kl_gradient_matches_finite_differences(gradient, alpha):
    """∂(α A + log Z)/∂y by autograd / the fused pass / the compiled pass vs central differences."""
    x, _ = _clusters(9)
    P = joint_probabilities(x, perplexity=3.0).P
    Y = torch.randn(9, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    terms = {"autograd": kl_terms, "fused": lambda P, Y: kl_terms_fused(P, Y, block=4),
             "compiled": _compiled_terms}[gradient]

    def objective(points):
        a, z = terms(P, points)
        return alpha * a + z

    if gradient == "compiled":                  # its own gradient, no autograd
        analytic = _compiled(P, Y)(Y, True, alpha)[2]
    else:
        Yg = Y.clone().requires_grad_()
        objective(Yg).backward()
        analytic = Yg.grad
    numeric = torch.zeros_like(Y)
    h = 1e-6
    for i in range(9):
        for d in range(2):
            up, down = Y.clone(), Y.clone()
            up[i, d] += h
            down[i, d] -= h
            numeric[i, d] = (objective(up).item() - objective(down).item()) / (2 * h)
    assert torch.allclose(analytic, numeric, atol=1e-7, rtol=1e-5)
    # and the paper's closed form: 4 Σ_j (α p_ij − q_ij) w_ij (y_i − y_j)
    w = 1 / (1 + torch.cdist(Y, Y).square())
    w.fill_diagonal_(0)
    q = w / w.sum()
    closed = 4 * (((alpha * P - q) * w)[:, :, None] * (Y[:, None] - Y[None])).sum(1)
    assert torch.allclose(analytic, closed, atol=1e-10)


@pytest.mark.parametrize("terms", [kl_terms_fused, _compiled_terms])
def test_float32_is_close_to_float64(terms):
    x, _ = _clusters(50)
    P = joint_probabilities(x, perplexity=10.0).P
    Y = 3 * torch.randn(50, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    a64, z64 = terms(P, Y)
    a32, z32 = terms(P.float(), Y.float())
    assert a32.item() == pytest.approx(a64.item(), rel=1e-5)
    assert z32.item() == pytest.approx(z64.item(), rel=1e-5)


@pytest.mark.parametrize("n", [2, 7, 8])
def test_circulant_half_holds_each_pair_once(n):
    """Σ P_half f = Σ_ij p_ij f_ij for a symmetric f, and each unordered pair is one entry."""
    g = torch.Generator().manual_seed(n)
    P = torch.rand(n, n, dtype=torch.float64, generator=g)
    P = (P + P.T).fill_diagonal_(0)
    f = torch.rand(n, n, dtype=torch.float64, generator=g)
    f = f + f.T
    half = circulant_half(P)
    k = n // 2
    partner = (torch.arange(n)[:, None] + torch.arange(1, k + 1)[None, :]) % n
    assert half.shape == (n, k)
    assert (half * f.gather(1, partner)).sum().item() == pytest.approx((P * f).sum().item(),
                                                                         rel=1e-12)
    pairs = {frozenset((i, int(j))) for i in range(n) for j in partner[i]}
    assert len(pairs) == n * (n - 1) // 2                  # every pair appears


def test_without_a_compiler_compiled_falls_back_to_fused_and_says_so(monkeypatch, capsys):
    """Where torch.compile fails, P and the map come out as the eager code makes them."""
    x, _ = _clusters(30)
    reference_p = joint_probabilities(x, perplexity=5.0).P
    reference = embed(reference_p, iterations=20, gradient="fused", record_every=5)

    def no_compiler(fn):
        raise RuntimeError("no C++ compiler (simulated)")

    monkeypatch.setattr(tsne, "_compiled", no_compiler)
    tsne._warn_once.cache_clear()
    P = joint_probabilities(x, perplexity=5.0).P
    assert torch.allclose(P, reference_p, atol=1e-12)
    run_ = embed(P, iterations=20, gradient="compiled", record_every=5)
    assert run_.settings["gradient"] == "fused" and run_.compile_seconds == 0
    assert torch.equal(run_.Y, reference.Y) and run_.kl == reference.kl
    err = capsys.readouterr().err
    assert "torch.compile unavailable for _row_moments" in err and "simulated" in err
    assert "torch.compile unavailable for _kl_pass" in err
    tsne._warn_once.cache_clear()


def test_compiled_map_matches_the_fused_map():
    x, _ = _clusters(40)
    P = joint_probabilities(x, perplexity=5.0).P
    a = embed(P, iterations=30, gradient="fused", record_every=10)
    b = embed(P, iterations=30, gradient="compiled", record_every=10)
    assert b.settings["gradient"] == "compiled" and b.compile_seconds > 0
    assert torch.allclose(a.Y, b.Y, atol=1e-4)
    assert [k for _, k in a.kl] == pytest.approx([k for _, k in b.kl], rel=1e-5)


def test_plain_sgd_is_the_spec_update_and_kl_decreases():
    x, labels = _clusters(30)
    P = joint_probabilities(x, perplexity=5.0).P
    one = embed(P, iterations=1, optimizer="sgd", lr=10.0, dtype=torch.float64, record_every=1)
    start = torch.randn(30, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    Y = start.clone().requires_grad_()
    a, z = kl_terms(P, Y)
    (a + z).backward()
    assert torch.allclose(one.Y, start - 10.0 * Y.grad, atol=1e-12)   # y ← y − lr ∇KL
    for optimizer, lr in (("sgd", 50.0), ("adam", 0.1)):
        run_ = embed(P, iterations=200, optimizer=optimizer, lr=lr, record_every=50)
        kls = [kl for _, kl in run_.kl]
        assert [it for it, _ in run_.kl] == [0, 50, 100, 150, 200]
        assert kls[-1] < 0.5 * kls[0], optimizer
        assert knn_accuracy(run_.Y, labels, k=5) > 0.9       # three clusters come apart


def test_knn_accuracy_by_hand():
    points = torch.tensor([[0.0, 0], [0.1, 0], [0.2, 0], [5.0, 0], [5.1, 0], [0.3, 0]])
    labels = torch.tensor([0, 0, 0, 1, 1, 1])
    # k = 2: points 0-2 see two label-0 neighbours; 3, 4 see each other and a far point (ties go
    # to the smaller label: 3 → {4: 1, 2 or 5}: point 5 (0.3) is nearer than 2? |5−0.3| < |5−0.2|)
    # point 3's neighbours: 4 (label 1) and 5 (label 1) → right; point 4: 3 and 5 → right;
    # point 5: 2 and 1 (label 0) → wrong
    assert knn_accuracy(points, labels, k=2) == pytest.approx(5 / 6)


# ---------------------------------------------------------------------------------------------
# the script

TINY = ["--n-images", "60", "--iterations", "20", "--perplexity", "5", "--threads", "1"]


def test_script_end_to_end_writes_every_output(mnist_root, tmp_path):
    out = tmp_path / "tsne"
    assert run(tsne_mnist.main, ["--data-dir", str(mnist_root), "--out-dir", str(out), *TINY]) == 0
    for name in ("kl.png", "maps.png", "metrics.json"):
        assert (out / name).stat().st_size > 0
    m = json.loads((out / "metrics.json").read_text())
    names = [r["name"] for r in m["maps"]]
    assert len(names) == 6 + 4                              # sgd: 6 settings, adam: 4
    assert names[0] == "sgd, fixed σ = 10 (spec)" and m["maps"][0]["lr"] == 10.0
    spec_adam = next(r for r in m["maps"] if r["name"] == "adam, fixed σ = 10 (spec)")
    assert spec_adam["lr"] == 0.1
    refs = [r["name"] for r in m["references"]]
    assert refs[0].startswith("scikit-learn") and refs[1] == "PCA, 2 components"
    for r in [*m["maps"], *m["references"]]:
        assert 0 <= r["trustworthiness"] <= 1 and 0 <= r["knn_accuracy"] <= 1
    assert m["affinities"]["perplexity"]["perplexity_median"] == pytest.approx(5.0, rel=1e-4)
    assert "met" in m["target"] and m["data"]["n_images"] == 60


def _cli(argv, capsys):
    try:
        code = run(tsne_mnist.main, argv)
    except SystemExit as exit_:
        code = exit_.code
    return code, capsys.readouterr().err


@pytest.mark.parametrize("argv, needle", [
    (["--n-images", "5"], "--n-images 5"),
    (["--n-images", "60001"], "--n-images 60001"),
    (["--sigma", "0"], "--sigma"),
    (["--sigma", "-1"], "--sigma"),
    (["--n-images", "20", "--perplexity", "20"], "--perplexity 20"),
    (["--lr", "3"], "--lr"),
    (["--momentum", "1.5"], "--momentum"),
])
def test_bad_input_one_line_exit_2_nothing_written(argv, needle, tmp_path, capsys):
    out = tmp_path / "o"
    code, err = _cli([*argv, "--data-dir", str(tmp_path), "--out-dir", str(out)], capsys)
    assert code == 2 and needle in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not out.exists()
