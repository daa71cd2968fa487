"""autoencoders_mnist.py and its pieces: each kind's loss is what spec 004 says (KL sparsity
penalty and VAE ELBO terms against hand computations on tiny batches), the reparameterisation
passes gradients to μ and log σ², the generalised dense autoencoder, the script end to end on
tiny settings (every output, resume) and its bad inputs."""
from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

import autoencoders_mnist as ae
import baselines
from cli import run
from feedforward import VAE, DenseAutoencoder, VAEOutput, kl_to_standard_normal, sparsity_penalty, vae_loss


def test_sparsity_penalty_by_hand():
    codes = torch.tensor([[0.1, 0.5], [0.3, 0.7]])             # ρ̂ = (0.2, 0.6)
    rho = 0.1
    expected = sum(rho * math.log(rho / r) + (1 - rho) * math.log((1 - rho) / (1 - r))
                   for r in (0.2, 0.6))
    penalty, rho_hat = sparsity_penalty(codes, rho)
    assert torch.allclose(rho_hat, torch.tensor([0.2, 0.6]))
    assert penalty.item() == pytest.approx(expected, rel=1e-6)
    # zero exactly at the target, finite when a unit is dead or saturated
    assert sparsity_penalty(torch.full((3, 4), 0.1), 0.1)[0].item() == pytest.approx(0.0, abs=1e-6)
    dead = sparsity_penalty(torch.tensor([[0.0, 1.0]]), 0.01)[0]
    assert math.isfinite(dead.item()) and dead.item() > 0


def test_sparse_step_adds_the_weighted_penalty():
    torch.manual_seed(0)
    model = DenseAutoencoder((6, 4, 3), activation="sigmoid")
    x = torch.rand(5, 6)
    loss, metrics = ae.sparse_step(0.05, 0.3)(model, (x,))
    codes = model.encode(x)
    penalty, rho_hat = sparsity_penalty(codes, 0.05)
    mse = F.mse_loss(model(x), x)
    assert loss.item() == pytest.approx(mse.item() + 0.3 * penalty.item(), rel=1e-6)
    assert metrics["mean_activation"] == pytest.approx(rho_hat.mean().item())
    # a training batch carries its epoch's warm-up weight instead
    warm, _ = ae.sparse_step(0.05, 0.3)(model, (x, torch.tensor(0.1)))
    assert warm.item() == pytest.approx(mse.item() + 0.1 * penalty.item(), rel=1e-6)


def test_sparsity_warmup_ramps_then_holds_and_batches_repeat_per_epoch():
    assert [ae.warmup_weight(0.01, 4, e) for e in (1, 2, 4, 5, 50)] == pytest.approx(
        [0.0025, 0.005, 0.01, 0.01, 0.01])
    assert ae.warmup_weight(0.01, 0, 1) == 0.01
    x = torch.arange(10.0)[:, None].expand(10, 3)
    stream = ae.sparse_batches(x, 4, 0.01, 4, seed=0)
    assert stream.steps_per_epoch == 3
    epoch_2 = list(stream.batches(2))
    assert [b[1].item() for b in epoch_2] == pytest.approx([0.005] * 3)
    assert torch.equal(torch.cat([b[0] for b in epoch_2]).sort(0).values, x)   # each image once
    again = list(stream.batches(2))                    # a resumed run sees the same epoch
    assert all(torch.equal(a[0], b[0]) for a, b in zip(epoch_2, again))
    assert not torch.equal(epoch_2[0][0], next(iter(stream.batches(3)))[0])


def test_vae_loss_terms_by_hand():
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    recon = torch.tensor([[0.8, 0.3], [0.4, 0.9]])
    mu = torch.tensor([[0.5], [-1.0]])
    logvar = torch.tensor([[0.0], [math.log(0.25)]])
    out = VAEOutput(recon, mu, logvar, mu)
    bce = [-(math.log(0.8) + math.log(0.7)), -(math.log(0.6) + math.log(0.9))]   # per image
    kl = [0.5 * (0.25 + 1 - 1 - 0), 0.5 * (1 + 0.25 - 1 - math.log(0.25))]
    # spec 004: mean pixel-wise BCE + 0.001 × KL (KL summed over latents, averaged over images)
    loss, m = vae_loss(out, x, kl_weight=0.001, reconstruction="mean")
    assert loss.item() == pytest.approx(sum(bce) / 4 + 0.001 * sum(kl) / 2, rel=1e-6)
    assert m["bce"] == pytest.approx(sum(bce) / 2, rel=1e-6)
    assert m["kl"] == pytest.approx(sum(kl) / 2, rel=1e-6)
    assert m["neg_elbo"] == pytest.approx((sum(bce) + sum(kl)) / 2, rel=1e-6)
    assert torch.allclose(kl_to_standard_normal(mu, logvar), torch.tensor(kl))
    # the step the script trains with is exactly this loss
    vae = VAE((2, 3), latent_dim=1)
    torch.manual_seed(0)
    a, _ = ae.vae_step(0.001)(vae, (x,))
    torch.manual_seed(0)
    b, _ = vae_loss(vae(x), x, kl_weight=0.001, reconstruction="mean")
    assert a.item() == pytest.approx(b.item())


def test_reparameterisation_passes_gradients_to_mean_and_log_variance():
    torch.manual_seed(0)
    vae = VAE((8, 6), latent_dim=2)
    x = torch.rand(4, 8)
    mu, logvar = vae.encode(x)
    mu.retain_grad()
    logvar.retain_grad()
    z = vae.reparameterize(mu, logvar)
    vae.decode(z).sum().backward()
    assert mu.grad.abs().sum() > 0 and logvar.grad.abs().sum() > 0
    assert vae.to_logvar.weight.grad.abs().sum() > 0
    vae.eval()                                                   # deterministic: z = μ
    assert torch.equal(vae.reparameterize(mu, logvar), mu)


def test_dense_autoencoder_activation_option():
    x = torch.rand(3, 784)
    spec = DenseAutoencoder((784, 128, 32), activation="sigmoid")
    acts = [type(m).__name__ for m in spec.modules() if not isinstance(m, (torch.nn.Sequential,
                                                                             torch.nn.Linear, DenseAutoencoder))]
    assert acts == ["Sigmoid"] * 4                              # every layer, code included
    codes = spec.encode(x)
    assert codes.shape == (3, 32) and ((codes > 0) & (codes < 1)).all()
    baseline = DenseAutoencoder((784, 128, 32))                 # the MNIST task's: ReLU hidden
    acts = [type(m).__name__ for m in baseline.modules() if isinstance(m, (torch.nn.ReLU, torch.nn.Sigmoid))]
    assert acts == ["ReLU", "ReLU", "ReLU", "Sigmoid"]
    with pytest.raises(ValueError, match="activation"):
        DenseAutoencoder(activation="tanh")


def test_denoising_step_noise_from_the_seeded_generator():
    model = DenseAutoencoder((6, 4, 3), activation="sigmoid")
    x = torch.rand(5, 6)
    clean, _ = ae.denoising_step(0.0)(model, (x,))
    assert clean.item() == pytest.approx(ae.compression_step(model, (x,))[0].item())
    torch.manual_seed(7)
    a, _ = ae.denoising_step(0.2)(model, (x,))
    torch.manual_seed(7)
    noisy = x + 0.2 * torch.randn_like(x)
    assert a.item() == pytest.approx(F.mse_loss(model(noisy), x).item())
    # validation / test pairs: (noisy, clean) used as given
    b, _ = ae.denoising_step(0.2)(model, (noisy, x))
    assert b.item() == pytest.approx(a.item())


TINY = ["--train-size", "256", "--epochs", "1", "--vae-epochs", "1", "--batch-size", "64",
        "--vae-batch-size", "64", "--threads", "1"]
OUTPUTS = ("reconstructions.png", "denoising.png", "sparse_codes.png", "vae_samples.png",
           "vae_samples_mixture.png", "vae_interpolation.png", "loss.png", "metrics.json")


def test_script_end_to_end_and_resume(mnist_root, tiny_judge, tmp_path):
    out = tmp_path / "ae"
    argv = ["--data-dir", str(mnist_root), "--out-dir", str(out), "--judge-file",
            str(tiny_judge[0]), *TINY]
    assert run(ae.main, argv) == 0
    for name in OUTPUTS:
        assert (out / name).stat().st_size > 0, name
    m = json.loads((out / "metrics.json").read_text())
    for kind in ae.KINDS:
        assert (out / kind / "checkpoint.pt").exists() and (out / kind / "history.csv").exists()
        assert m[kind]["test_mse"] > 0 and "mse_vs_pca" in m[kind]
    assert m["baselines"]["pca_32"]["components"] == 32 and m["baselines"]["pca_10"]["test_mse"] > 0
    assert m["baselines"]["noisy_input"]["test_mse"] == pytest.approx(0.04, rel=0.05)  # σ² = 0.04
    assert m["vae"]["test_neg_elbo"] == pytest.approx(m["vae"]["test_bce"] + m["vae"]["test_kl"])
    assert m["vae"]["test_bce"] != m["vae"]["test_bce_at_mean"]      # the ELBO samples z
    assert 0 <= m["sparse"]["code_mean_activation"] <= 1 and "targets" in m
    assert m["compression"]["model"]["activation"] == "sigmoid"
    # the digit judge reads real test digits more confidently, and closer to the other half of
    # the test set, than samples of the PCA Gaussian
    judged = m["vae"]["judge"]
    real, pca = judged["real_test_digits"], judged["pca_gaussian_samples"]
    assert real["confident_share"] > pca["confident_share"]
    assert real["frechet_to_real"] < pca["frechet_to_real"]
    assert judged["vae_prior_samples"]["n_images"] == ae.JUDGED_SAMPLES
    assert judged["vae_mixture_samples"]["n_images"] == ae.JUDGED_SAMPLES
    assert judged["vae_test_reconstructions"]["n_images"] == real["n_images"]
    assert sum(judged["vae_prior_samples"]["digit_shares"]) == pytest.approx(1)
    for key, judged_set in (("vae_samples_judged_confidently", "vae_prior_samples"),
                            ("vae_mixture_samples_judged_confidently", "vae_mixture_samples")):
        assert m["targets"][key] == (judged[judged_set]["confident_share"] >= ae.CONFIDENT_SHARE_TARGET)
    # --resume of the finished run: two more epochs continue the same history
    assert run(ae.main, [*argv, "--kind", "compression", "--epochs", "2", "--resume"]) == 0
    m2 = json.loads((out / "metrics.json").read_text())
    assert m2["compression"]["epochs_run"] == 2 and list(m2) [0] == "compression"


def test_pca_gaussian_samples_follow_the_component_variances():
    x = torch.rand(500, 784) * 0.2 + 0.4                            # stays inside [0, 1] after PCA
    pca = baselines.pca_fit(x, 3)
    samples = ae.pca_gaussian_samples(pca, 20_000, torch.Generator().manual_seed(0))
    codes = baselines.pca_encode(pca, samples)
    assert samples.shape == (20_000, 784) and 0 <= samples.min() and samples.max() <= 1
    assert torch.allclose(codes.var(0), pca.explained_variance, rtol=0.05)


def test_posterior_mixture_samples_where_the_training_codes_are():
    torch.manual_seed(0)
    vae = VAE((784, 16, 8), 2).eval()
    images = torch.rand(400, 784)
    mixture = ae.posterior_mixture(vae, images, components=3, seed=0)
    mu = vae.encode(images)[0].detach()
    z = mixture.sample((4000,))
    assert torch.allclose(z.mean(0).float(), mu.mean(0), atol=0.1 * mu.std(0).max().item())
    assert torch.allclose(z.std(0).float(), mu.std(0), rtol=0.15)
    a = ae.mixture_samples(vae, mixture, 5, seed=1)
    assert a.shape == (5, 784) and torch.equal(a, ae.mixture_samples(vae, mixture, 5, seed=1))


def _cli(argv, capsys):
    try:
        code = run(ae.main, argv)
    except SystemExit as exit_:
        code = exit_.code
    return code, capsys.readouterr().err


@pytest.mark.parametrize("argv, needle", [
    (["--noise-std", "-0.1"], "--noise-std"),
    (["--sparsity", "0"], "--sparsity"),
    (["--sparsity", "1"], "--sparsity"),
    (["--sparsity", "1.5"], "--sparsity"),
    (["--kind", "gan"], "--kind"),
    (["--lr", "0.1", "0.01"], "--lr"),
    (["--vae-lr", "0"], "--vae-lr"),
    (["--sparsity-warmup", "-1"], "--sparsity-warmup"),
    (["--mixture-components", "0"], "--mixture-components"),
])
def test_bad_input_one_line_exit_2_nothing_written(argv, needle, tmp_path, capsys):
    out = tmp_path / "o"
    code, err = _cli([*argv, "--data-dir", str(tmp_path), "--out-dir", str(out)], capsys)
    assert code == 2 and needle in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not out.exists()


def test_more_mixture_components_than_images_is_refused_before_training(mnist_root, tmp_path,
                                                                          capsys):
    out = tmp_path / "o"
    code, err = _cli(["--data-dir", str(mnist_root), "--out-dir", str(out), *TINY,
                      "--mixture-components", "300"], capsys)          # 256 training images
    assert code == 2 and "--mixture-components" in err and not out.exists()


def test_resume_without_a_checkpoint_is_refused(mnist_root, tmp_path, capsys):
    code, err = _cli(["--data-dir", str(mnist_root), "--out-dir", str(tmp_path / "o"),
                      "--resume", *TINY], capsys)
    assert code == 2 and "--resume" in err
