"""rnn_palindrome.py and its parts: the from-scratch RNN and LSTM (built from tensors only, equal
to nn.RNN / nn.LSTM on copied weights), the parameter formula, the palindrome generator, the
stream + stop hook of the shared loop, the script end to end and its bad inputs."""
from __future__ import annotations

import ast
import inspect
import textwrap
import json

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import data
import models
import rnn_palindrome
from bench.reference import ReferenceLSTMClassifier
from cli import run
from models import ScratchLSTM, ScratchRNN, count_parameters, scratch_parameter_count
from training import Stream, TrainSettings, fit

SCRATCH = (ScratchRNN, ScratchLSTM)


@pytest.mark.parametrize("cls", SCRATCH)
def test_shapes_and_gradients_reach_every_parameter(cls):
    torch.manual_seed(0)
    model = cls(10, 8, 7)
    x = torch.randn(4, 6, 10)
    out = model(x)
    assert out.logits.shape == (4, 7)
    assert len(out.hidden) == 6 and all(h.shape == (4, 8) for h in out.hidden)
    F.cross_entropy(out.logits, torch.tensor([0, 1, 2, 3])).backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


FORBIDDEN_NAMES = {"RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell", "Linear", "linear",
                   "_VF", "rnn_tanh", "lstm", "lstm_cell", "LSTMPointwise", "Conv1d"}


def names_used(code) -> set[str]:
    """Every name and attribute the code refers to (docstrings and comments do not count)."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(code)))
    return ({node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
            | {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)})


@pytest.mark.parametrize("cls", SCRATCH)
def test_built_from_parameters_and_tensor_arithmetic_only(cls, monkeypatch):
    """No high-level recurrent or linear block: no submodule at all, none of their names in
    the source, and a forward + backward pass with those functions made to fail still works."""
    model = cls(10, 8, 10)
    assert [m for m in model.modules() if m is not model] == []
    assert not any(isinstance(m, (nn.RNNBase, nn.RNNCellBase, nn.Linear)) for m in model.modules())
    assert all(isinstance(p, nn.Parameter) for p in model.parameters())
    for code in (cls, models._init_scratch_):
        assert not names_used(code) & FORBIDDEN_NAMES, code
    assert {"Parameter", "addmm", "tanh"} <= names_used(cls)         # the check sees the code

    def refuse(*args, **kwargs):
        raise AssertionError("a high-level block was called")

    for name in ("lstm", "rnn_tanh", "gru", "lstm_cell", "rnn_tanh_cell"):
        monkeypatch.setattr(torch._VF, name, refuse, raising=False)
    monkeypatch.setattr(F, "linear", refuse)
    monkeypatch.setattr(torch._C._nn, "linear", refuse)
    model(torch.randn(3, 5, 10)).logits.sum().backward()


def _loss(logits, hidden, probe_logits, probe_hidden):
    """A loss that reads every hidden state and the output, so every gradient path is tested."""
    return (logits * probe_logits).sum() + (hidden * probe_hidden).sum()


@pytest.mark.parametrize("init", ["orthogonal", "plain"])
def test_lstm_equals_nn_lstm_in_float64(init):
    torch.manual_seed(0)
    d, n, K = 5, 6, 4
    scratch = ScratchLSTM(d, n, K, init=init).double()
    with torch.no_grad():                        # non-zero biases everywhere, also for "orthogonal"
        scratch.b.add_(0.1 * torch.randn(4 * n, dtype=torch.float64))
    ref = ReferenceLSTMClassifier.from_scratch(scratch)     # gates reordered for nn.LSTM
    order = ReferenceLSTMClassifier.NN_LSTM_GATES
    assert isinstance(ref.lstm, nn.LSTM) and ref.lstm.weight_ih_l0.dtype == torch.float64
    x = torch.randn(3, 7, d, dtype=torch.float64)
    out = scratch(x)
    ref_out = ref(x)
    ref_logits, ref_hidden = ref_out.logits, torch.stack(ref_out.hidden, 1)   # (B, T, n)
    hidden = torch.stack(out.hidden, 1)
    assert torch.allclose(hidden, ref_hidden, atol=1e-12, rtol=0)
    assert torch.allclose(out.logits, ref_logits, atol=1e-12, rtol=0)

    probe_logits, probe_hidden = torch.randn_like(out.logits), torch.randn_like(hidden)
    _loss(out.logits, hidden, probe_logits, probe_hidden).backward()
    _loss(ref_logits, ref_hidden, probe_logits, probe_hidden).backward()
    lstm = ref.lstm
    for mine, theirs in ((scratch.W_x, lstm.weight_ih_l0), (scratch.W_h, lstm.weight_hh_l0),
                         (scratch.b, lstm.bias_ih_l0), (scratch.b, lstm.bias_hh_l0)):
        for k, g in enumerate(order):
            assert torch.allclose(scratch.gate(mine.grad, g), theirs.grad[k * n:(k + 1) * n],
                                  atol=1e-12, rtol=0), g
    assert torch.allclose(scratch.W_ph.grad, ref.readout.weight.grad, atol=1e-12, rtol=0)


@pytest.mark.parametrize("init", ["orthogonal", "plain"])
def test_rnn_equals_nn_rnn_tanh_in_float64(init):
    torch.manual_seed(1)
    d, n, K = 4, 5, 3
    scratch = ScratchRNN(d, n, K, init=init).double()
    with torch.no_grad():
        scratch.b_h.add_(0.1 * torch.randn(n, dtype=torch.float64))
    ref = nn.RNN(d, n, nonlinearity="tanh", batch_first=True).double()
    with torch.no_grad():
        ref.weight_ih_l0.copy_(scratch.W_hx)
        ref.weight_hh_l0.copy_(scratch.W_hh)
        ref.bias_ih_l0.copy_(scratch.b_h)
        ref.bias_hh_l0.zero_()
    x = torch.randn(2, 9, d, dtype=torch.float64)
    out = scratch(x)
    ref_hidden, _ = ref(x)
    ref_logits = ref_hidden[:, -1] @ scratch.W_ph.t() + scratch.b_p
    hidden = torch.stack(out.hidden, 1)
    assert torch.allclose(hidden, ref_hidden, atol=1e-12, rtol=0)
    probe_logits, probe_hidden = torch.randn_like(out.logits), torch.randn_like(hidden)
    _loss(out.logits, hidden, probe_logits, probe_hidden).backward()
    _loss(ref_logits, ref_hidden, probe_logits, probe_hidden).backward()
    for mine, theirs in ((scratch.W_hx, ref.weight_ih_l0), (scratch.W_hh, ref.weight_hh_l0),
                         (scratch.b_h, ref.bias_ih_l0), (scratch.b_h, ref.bias_hh_l0)):
        assert torch.allclose(mine.grad, theirs.grad, atol=1e-12, rtol=0)


@pytest.mark.parametrize("d, n, K", [(10, 128, 10), (1, 1, 1), (3, 7, 2), (10, 4, 10), (28, 64, 5)])
def test_parameter_formula_matches_the_modules(d, n, K):
    assert scratch_parameter_count("rnn", d, n, K) == count_parameters(ScratchRNN(d, n, K))
    assert scratch_parameter_count("lstm", d, n, K) == count_parameters(ScratchLSTM(d, n, K))


def test_parameter_formula_by_hand():
    # the report's figures: d = K = 10 (one-hot digits), n = 128
    assert scratch_parameter_count("lstm", 10, 128, 10) == 4 * (1280 + 16384 + 128) + 1280 + 10
    assert scratch_parameter_count("rnn", 10, 128, 10) == 1280 + 16384 + 128 + 1280 + 10
    with pytest.raises(ValueError):
        scratch_parameter_count("gru", 1, 1, 1)


def test_initialisations():
    n = 6
    lstm = ScratchLSTM(3, n, 4, init="orthogonal", forget_bias=1.0)
    for gate in ScratchLSTM.GATES:
        block = lstm.gate(lstm.W_h, gate)
        assert torch.allclose(block @ block.t(), torch.eye(n), atol=1e-5), gate
        assert torch.all(lstm.gate(lstm.b, gate) == (1.0 if gate == "f" else 0.0)), gate
    rnn = ScratchRNN(3, n, 4)
    assert torch.allclose(rnn.W_hh @ rnn.W_hh.t(), torch.eye(n), atol=1e-5)
    assert torch.all(rnn.b_h == 0)
    for model in (ScratchLSTM(3, n, 4, init="plain"), ScratchRNN(3, n, 4, init="plain")):
        for p in model.parameters():
            assert p.abs().max() <= n ** -0.5
    with pytest.raises(ValueError):
        ScratchRNN(3, n, 4, init="xavier")


# ---------------------------------------------------------------------------------------------
# data

@pytest.mark.parametrize("length", [3, 4, 5, 10, 11])
def test_palindromes_read_the_same_backwards_and_the_target_is_the_first_digit(length):
    digits = data.palindromes(500, length, data.palindrome_generator("train", length, 0, 1))
    assert digits.shape == (500, length) and digits.min() >= 0 and digits.max() <= 9
    assert torch.equal(digits, digits.flip(1))
    x, y = data.palindrome_examples(digits)
    assert x.shape == (500, length - 1, 10) and torch.all(x.sum(-1) == 1)
    assert torch.equal(y, digits[:, 0]) and torch.equal(x.argmax(-1), digits[:, :-1])


def test_palindrome_streams_are_seeded_and_apart():
    def batch(seed, epoch):
        return next(data.palindrome_batches(9, 64, 1, seed, epoch))[1]

    assert torch.equal(batch(0, 1), batch(0, 1))                      # reproducible
    assert not torch.equal(batch(0, 1), batch(0, 2))                  # fresh each epoch
    assert not torch.equal(batch(0, 1), batch(1, 1))                  # and each seed
    first = list(data.palindrome_batches(9, 64, 3, 0, 1))
    assert not torch.equal(first[0][1], first[1][1])                  # and each step
    test = data.palindrome_set("test", 64, 9)
    assert torch.equal(test[0], data.palindrome_set("test", 64, 9)[0])  # the fixed test set
    assert not torch.equal(test[0], data.palindrome_set("val", 64, 9)[0])
    assert not torch.equal(test[1], batch(0, 1))


def test_palindrome_counts():
    assert [data.palindrome_count(t) for t in (3, 4, 5, 7, 8, 9)] == [100, 100, 1000, 10 ** 4,
                                                                      10 ** 4, 10 ** 5]
    digits = data.palindromes(20_000, 4, torch.Generator().manual_seed(0))
    assert len(torch.unique(digits, dim=0)) == 100                     # all of them drawn
    assert data.expected_seen_fraction(5, 0) == 0
    assert data.expected_seen_fraction(5, 10 ** 6) == pytest.approx(1.0)
    assert data.expected_seen_fraction(9, 10 ** 5) == pytest.approx(1 - (1 - 1e-5) ** 1e5)


# ---------------------------------------------------------------------------------------------
# the shared loop on a stream, with the stop hook

def test_fit_on_a_stream_stops_when_the_hook_says_so(tmp_path):
    torch.manual_seed(0)
    model = ScratchRNN(10, 16, 10)
    calls = []
    stream = Stream(lambda epoch: calls.append(epoch) or data.palindrome_batches(4, 32, 20, 0, epoch),
                    steps_per_epoch=20)
    val = list(data.palindrome_set("val", 200, 4))
    result = fit(model, rnn_palindrome.classification_step, stream, val,
                 TrainSettings(optimizer="rmsprop", lr=1e-2, lr_schedule="constant", epochs=50),
                 run_dir=tmp_path, identity={}, device=torch.device("cpu"),
                 stop=rnn_palindrome.stop_when_perfect(2))
    history = result.history
    assert calls == list(range(1, len(history) + 1))        # one fresh batch source per epoch
    assert len(history) < 50 and history[-1]["train_accuracy"] == history[-2]["train_accuracy"] == 1
    if len(history) > 2:                                    # it would have stopped earlier
        assert history[-3]["train_accuracy"] < 1
    assert pd.read_csv(tmp_path / "history.csv")["epoch"].tolist() == list(range(1, len(history) + 1))


def test_stop_hook_and_gradient_length_choice():
    stop = rnn_palindrome.stop_when_perfect(2)
    assert not stop([{"train_accuracy": 1.0}])
    assert not stop([{"train_accuracy": 0.9}, {"train_accuracy": 1.0}])
    assert stop([{"train_accuracy": 0.9}, {"train_accuracy": 1.0}, {"train_accuracy": 1.0}])
    assert not rnn_palindrome.stop_when_perfect(0)([{"train_accuracy": 1.0}] * 3)
    at_chance, learning = {"val_accuracy": 0.11}, {"val_accuracy": 0.3}
    assert rnn_palindrome.hopeless([at_chance] * 3, 3)
    assert not rnn_palindrome.hopeless([at_chance] * 2, 3)          # not yet
    assert not rnn_palindrome.hopeless([at_chance] * 2 + [learning], 3)
    assert not rnn_palindrome.hopeless([at_chance] * 5, 0)          # never

    def summary(rnn, lstm):
        return {k: {"by_length": {t: {"median": a} for t, a in accs.items()}}
                for k, accs in (("rnn", rnn), ("lstm", lstm))}

    choose = rnn_palindrome.choose_gradient_length
    s = summary({5: 1, 10: 0.5, 20: 0.1, 30: 0.1}, {5: 1, 10: 1, 20: 1, 30: 0.5})
    assert choose(s, [5, 10, 20, 30]) == 20                 # RNN at chance, LSTM holds
    s = summary({5: 1, 10: 0.5, 20: 0.3}, {5: 1, 10: 1, 20: 0.5})
    assert choose(s, [5, 10, 20]) == 10                     # RNN below 99 %, LSTM holds
    s = summary({5: 1, 10: 0.5}, {5: 1, 10: 0.9})
    assert choose(s, [5, 10]) == 10                         # the largest gap


# ---------------------------------------------------------------------------------------------
# the script

def test_script_end_to_end_both_models_learn_t5(tmp_path):
    out = tmp_path / "run"
    assert run(rnn_palindrome.main, ["--length", "5", "6", "--seeds", "2", "--steps", "800",
                                     "--hidden-size", "32", "--lr", "3e-3", "--eval-every", "50",
                                     "--test-size", "2000", "--val-size", "500", "--threads", "1",
                                     "--out-dir", str(out)]) == 0
    for name in ("accuracy_vs_length.png", "gradient_norms.png", "results.csv", "metrics.json"):
        assert (out / name).stat().st_size > 0, name
    results = pd.read_csv(out / "results.csv")
    assert len(results) == 2 * 2 * 2 and set(results["model"]) == {"rnn", "lstm"}
    t5 = results[results["T"] == 5]
    assert (t5["test_accuracy"] >= 0.99).all(), t5          # both learn T = 5
    assert t5["stopped_early"].all()                        # and stop once perfect
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["summary"]["lstm"]["by_length"]["5"]["median"] >= 0.99
    assert metrics["palindromes"]["5"]["distinct"] == 1000
    assert metrics["palindromes"]["5"]["test_distinct"] <= 1000
    assert metrics["parameters"]["lstm"]["count"] == metrics["parameters"]["lstm"]["formula"]
    grads = metrics["gradient_norms"]
    assert grads["length"] in (5, 6)
    for kind in ("rnn", "lstm"):
        assert len(grads["norms"][kind]["init"]) == grads["length"] - 1
        assert all(v > 0 for v in grads["norms"][kind]["trained"])
    assert (out / "runs" / "lstm_T6_seed1" / "history.csv").exists()
    assert "torch_threads" in metrics or "device" in metrics


def test_worker_processes_give_the_same_results_and_skip_past_chance(tmp_path):
    tiny = ["--model", "rnn", "--length", "4", "40", "60", "--seeds", "2", "--steps", "20",
            "--eval-every", "10", "--hidden-size", "8", "--val-size", "100", "--test-size", "300",
            "--threads", "1"]
    assert run(rnn_palindrome.main, [*tiny, "--out-dir", str(tmp_path / "one")]) == 0
    assert run(rnn_palindrome.main, [*tiny, "--workers", "2", "--out-dir", str(tmp_path / "two")]) == 0
    one, two = (pd.read_csv(tmp_path / name / "results.csv") for name in ("one", "two"))
    assert one[["model", "T", "seed", "test_accuracy", "steps"]].equals(
        two[["model", "T", "seed", "test_accuracy", "steps"]])
    # 20 steps cannot carry a digit across 38 steps: at chance at T = 40, so T = 60 is not run
    assert sorted(set(one["T"])) == [4, 40]
    assert not one["gave_up"].any()                         # --give-up-after 300 > 20 steps
    assert json.loads((tmp_path / "two" / "metrics.json").read_text())["not_run_past_chance"] == \
        {"rnn": 40}


def test_a_run_at_chance_gives_up(tmp_path):
    assert run(rnn_palindrome.main, ["--model", "rnn", "--length", "60", "--seeds", "1",
                                     "--steps", "200", "--eval-every", "10", "--give-up-after",
                                     "20", "--hidden-size", "4", "--lr", "1e-5", "--val-size", "200",
                                     "--test-size", "200", "--threads", "1",
                                     "--out-dir", str(tmp_path)]) == 0
    (row,) = pd.read_csv(tmp_path / "results.csv").itertuples()
    assert row.gave_up and row.steps == 20 and row.test_accuracy < 0.15


@pytest.mark.parametrize("args, flag", [
    (["--length", "2"], "--length"),
    (["--length", "5", "100000"], "--length"),
    (["--seeds", "0"], "--seeds"),
    (["--model", "gru"], "--model"),
    (["--lr", "1e-3", "1e-2"], "--lr"),
    (["--length", "5", "--gradient-length", "7"], "--gradient-length"),
    (["--workers", "2", "--device", "cuda"], "--workers"),
])
def test_bad_input_is_one_line_exit_2_and_nothing_written(tmp_path, capsys, args, flag):
    out = tmp_path / "never"
    try:
        status = run(rnn_palindrome.main, [*args, "--out-dir", str(out)])
    except SystemExit as err:                                # argparse's own errors
        status = err.code
    assert status == 2
    err = capsys.readouterr().err.strip()
    assert flag in err and len(err.splitlines()) == 1
    assert not out.exists()
