"""Behaviour of the LSTM autoencoder and its heads: shapes, gradients, the bottleneck, overfitting."""
import itertools

import pytest
import torch
import torch.nn.functional as F

from conftest import assert_only_z_reaches_the_decoder, overfit
from feedforward import DenseAutoencoder
from models import AutoencoderWithHead, ClassifierHead, LSTMAutoencoder, PredictorHead

OPTIONS = [dict(decoder=d, reverse=r, bidirectional=b, num_layers=n)
           for d, r, b, n in itertools.product(("repeat", "autoregressive"), (False, True),
                                               (False, True), (1, 2))]


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items()))
def test_shapes_and_gradients_of_every_option(options):
    torch.manual_seed(0)
    model = LSTMAutoencoder(input_size=3, hidden_size=8, **options)
    x = torch.rand(4, 7, 3)
    out = model(x)
    directions = 2 if options["bidirectional"] else 1
    assert out.recon.shape == (4, 7, 3)
    assert out.z.shape == (4, 8 * directions)
    assert out.dec_hidden.shape == (4, 7, 8)
    assert out.enc_hidden.shape == (4, 7, 8 * directions)
    assert ((out.recon > 0) & (out.recon < 1)).all()          # sigmoid output
    F.mse_loss(out.recon, x).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, f"no gradient reaches {name}"


# what the decoder reads besides z: nothing, or an encoding of the step index (fixed or learned)
DECODER_INPUTS = [dict(), dict(decoder_input="z+time", step_encoding="sinusoid", step_encoding_size=4),
                  dict(decoder_input="z+time", step_encoding="learned", step_encoding_size=4, seq_len=5)]
DECODER_INPUT_IDS = ["z", "z+time-sinusoid", "z+time-learned"]


@pytest.mark.parametrize("decoder_input", DECODER_INPUTS, ids=DECODER_INPUT_IDS)
@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items()))
def test_only_z_reaches_the_decoder(options, decoder_input):
    """forward(x) == decode(encode(x)) in eval mode: the decoder cannot copy its input."""
    torch.manual_seed(0)
    model = LSTMAutoencoder(2, 6, teacher_forcing=1.0, **options, **decoder_input).eval()
    x = torch.rand(3, 5, 2)
    recon, hidden = model.decode(model.encode(x), 5)
    out = model(x)
    torch.testing.assert_close(out.recon, recon)
    torch.testing.assert_close(out.dec_hidden, hidden)


def test_linear_output_is_unbounded():
    model = LSTMAutoencoder(1, 4, output="linear")
    with torch.no_grad():
        model.readout.bias.fill_(5.0)
    assert (model(torch.rand(2, 5, 1)).recon > 1).all()


def test_teacher_forcing_only_while_training():
    torch.manual_seed(0)
    model = LSTMAutoencoder(1, 4, decoder="autoregressive", teacher_forcing=1.0)
    x = torch.rand(2, 6, 1)
    model.eval()
    a = model(x).recon
    b = model(torch.rand(2, 6, 1) * 0 + x).recon
    torch.testing.assert_close(a, b)
    model.train()
    # with forcing the decoder input at step t is x_{t-1}: changing x_1 changes step 2 directly
    z = model.encode(x)
    forced, _ = model.decode(z, 6, targets=x)
    forced2, _ = model.decode(z, 6, targets=x + 1)
    assert not torch.allclose(forced[:, 1:], forced2[:, 1:])
    torch.testing.assert_close(forced[:, 0], forced2[:, 0])


def test_reverse_decodes_last_step_first():
    """With --reverse the first decoder step produces x_T; recon is flipped back to input order."""
    torch.manual_seed(0)
    model = LSTMAutoencoder(1, 4, reverse=True).eval()
    x = torch.rand(2, 5, 1)
    out = model(x)
    first_step = torch.sigmoid(model.readout(out.dec_hidden[:, 0]))
    torch.testing.assert_close(out.recon[:, -1], first_step)


@pytest.mark.parametrize("options", [dict(), dict(decoder="autoregressive"), dict(reverse=True),
                                     dict(bidirectional=True), dict(num_layers=2)],
                         ids=["repeat", "autoregressive", "reverse", "bidirectional", "2-layers"])
def test_overfits_one_batch_far_below_the_mean(options):
    torch.manual_seed(0)
    x = torch.rand(8, 10, 1)
    x = 0.5 + (x - x.mean(1, keepdim=True)) / (2 * (x - x.mean(1, keepdim=True)).abs().amax(1, keepdim=True))
    baseline = F.mse_loss(x, torch.full_like(x, 0.5)).item()
    loss = overfit(LSTMAutoencoder(1, 32, **options), x, steps=500)
    assert loss < 0.1 * baseline, (loss, baseline)


def test_classifier_head_reads_the_decoders_last_hidden_state():
    torch.manual_seed(0)
    ae = LSTMAutoencoder(4, 6)
    model = AutoencoderWithHead(ae, ClassifierHead(6, 10), source="decoder")
    out, logits = model(torch.rand(3, 5, 4))
    assert logits.shape == (3, 10)
    torch.testing.assert_close(logits, model.head.linear(out.dec_hidden[:, -1]))


def test_predictor_head_is_causal():
    torch.manual_seed(0)
    model = AutoencoderWithHead(LSTMAutoencoder(1, 6), PredictorHead(6, 1), source="encoder").eval()
    x = torch.rand(2, 8, 1)
    changed = x.clone()
    changed[:, 5:] += 1.0
    _, y = model(x)
    _, y2 = model(changed)
    assert y.shape == (2, 8, 1)
    torch.testing.assert_close(y[:, :5], y2[:, :5])
    assert not torch.allclose(y[:, 5:], y2[:, 5:])
    with pytest.raises(ValueError, match="bidirectional"):
        AutoencoderWithHead(LSTMAutoencoder(1, 6, bidirectional=True), PredictorHead(12, 1), "encoder")


def test_dense_autoencoder_baseline_shapes():
    model = DenseAutoencoder((784, 128, 32))
    x = torch.rand(5, 28, 28)
    y = model(x)
    assert y.shape == x.shape and ((y > 0) & (y < 1)).all()
    assert [m.out_features for m in model.modules() if isinstance(m, torch.nn.Linear)] == [128, 32, 128, 784]


@pytest.mark.parametrize("decoder_input", DECODER_INPUTS, ids=DECODER_INPUT_IDS)
@pytest.mark.parametrize("options", [dict(), dict(decoder="autoregressive"), dict(bidirectional=True),
                                     dict(num_layers=2, reverse=True)],
                         ids=["repeat", "autoregressive", "bidirectional", "2-layers-reverse"])
def test_code_size_is_all_the_decoder_receives(options, decoder_input):
    """--code-size k: z has k numbers, forward(x) == decode(encode(x)), and gradients reach the map."""
    torch.manual_seed(0)
    model = LSTMAutoencoder(2, 6, code_size=3, **options, **decoder_input)
    x = torch.rand(4, 5, 2)
    out = model(x)
    assert out.z.shape == (4, 3) and model.z_size == 3 and model.config["code_size"] == 3
    F.mse_loss(out.recon, x).backward()
    assert model.to_code.weight.grad.abs().sum() > 0
    assert_only_z_reaches_the_decoder(model, x)


def test_code_size_must_be_positive():
    with pytest.raises(ValueError, match="code_size"):
        LSTMAutoencoder(2, 6, code_size=0)
