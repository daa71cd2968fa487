"""Sequence autoencoders and the heads attached to them.

- ``LSTMAutoencoder``: the LSTM AE of the assignment (spec 000, §1, Fig. 1). The encoder LSTM reads
  x_1..x_T and z = h_T of its last layer; the decoder LSTM receives the same z at every step and
  x̃_t = σ(U h̃_t). Options cure the classic "an LSTM AE only predicts the average" failure
  (spec 001): an autoregressive decoder, a reversed target order, a bidirectional encoder, more
  layers, and a linear output for data outside [0, 1]. ``code_size`` puts a linear map between
  h_T and a k-number z, so the code size is chosen apart from the hidden size (to compare with PCA
  and a dense autoencoder at the same k). ``decoder_input="z+time"`` also feeds the decoder an
  encoding of the step index (``StepEncoding``), so over long sequences (784 MNIST pixels) it knows
  where it is without having to count steps in its own state.
- ``ClassifierHead``: ỹ = U h̃_T, logits from the decoder's last hidden state (spec 000, §3.2).
- ``PredictorHead``: ỹ_t for x_{t+1} from the encoder's hidden state h_t, so it sees x_1..x_t only
  (spec 000, §3.3).
- ``AutoencoderWithHead``: an autoencoder plus one head, trained and saved as one module.
- ``NextPatchLSTM``: predicts the next 7×7 patch of an MNIST digit and draws the bottom half
  closed loop (spec 002, problem 1).

The non-recurrent models (dense autoencoders, VAEs, GANs, the CNN digit judge) are in
``feedforward.py``.

Every model takes and returns batch-first tensors. Shape letters: B batch, T time steps,
m values per step, H hidden size, D encoder directions, Z the size of z (D·H, or k with
``code_size``), E the size of a step encoding (``StepEncoding``).

References: Srivastava et al. 2015, "Unsupervised Learning of Video Representations using LSTMs"
(reversed reconstruction target); Sutskever et al. 2014 (reversed order eases optimisation);
Vaswani et al. 2017, "Attention Is All You Need" (sinusoidal position encoding); Tallec & Ollivier
2018, "Can recurrent neural networks warp time?" (chrono initialisation).
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn


class AEOutput(NamedTuple):
    recon: torch.Tensor        # (B, T, m) reconstruction, in the input's time order
    z: torch.Tensor            # (B, Z) the code: all the decoder ever sees of the input
    dec_hidden: torch.Tensor   # (B, T, H) decoder's last-layer hidden states in decoding order
    #                            (dec_hidden[:, -1] is h̃_T, the last state the decoder computed)
    enc_hidden: torch.Tensor   # (B, T, D·H) encoder's last-layer hidden states h_1..h_T


class LSTMAutoencoder(nn.Module):
    """LSTM autoencoder x → z = h_T → x̃ (spec 000, §1).

    Args:
        input_size: m, values per time step.
        hidden_size: H, hidden size of encoder and decoder.
        num_layers: stacked layers in encoder and decoder.
        decoder: "repeat" (the assignment: a fused ``nn.LSTM`` fed z at every step) or
            "autoregressive" (``nn.LSTMCell`` stack fed [x̃_{t-1}, z], initial state from z).
        reverse: decode x_T first (the target order is reversed); ``forward`` flips the output
            back, so ``recon`` is always in the input's order.
        bidirectional: encoder reads both directions; z = [forward h_T, backward h_1].
        output: "sigmoid" (x̃ ∈ (0, 1), the assignment) or "linear" (data not in [0, 1]).
        teacher_forcing: autoregressive only; probability, during training, of feeding the true
            previous value instead of the model's own. Never used in evaluation mode.
        dropout: between stacked layers.
        init: "orthogonal" (default: orthogonal recurrent weights, Xavier input weights, forget
            gate bias 1), "chrono" (the same, then the encoder's gate biases set by
            ``chrono_bias_`` with t_max = ``seq_len``, so it can remember over the whole sequence)
            or "torch" (PyTorch's uniform default). With PyTorch's default the repeat-z AE sits on
            the "predict the mean" plateau for dozens of epochs; see ``init_lstm_``.
        code_size: None (z = h_T, the assignment's definition, Z = D·H) or k: z = A h_T + a, a
            learned linear map to k numbers; the decoder then receives z (its input weights are
            the map from z back to what it reads). Only z reaches the decoder either way.
        decoder_input: "z" (the assignment: the decoder reads z at every step) or "z+time": it
            reads [z, e(s)], e(s) an encoding of the decoding step s = 0..T-1 (``StepEncoding``).
            e depends on s alone, never on x, so z is still all the decoder learns of the input.
        step_encoding: "z+time" only: "sinusoid" (fixed sin/cos features) or "learned" (a
            trained vector per step; needs ``seq_len``).
        step_encoding_size: E, numbers in e(s) (even for "sinusoid").
        seq_len: T, the steps the model is built for; needed by ``init="chrono"`` (t_max) and
            ``step_encoding="learned"`` (one vector per step), unused otherwise.
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 decoder: str = "repeat", reverse: bool = False, bidirectional: bool = False,
                 output: str = "sigmoid", teacher_forcing: float = 0.0, dropout: float = 0.0,
                 init: str = "orthogonal", code_size: int | None = None,
                 decoder_input: str = "z", step_encoding: str = "sinusoid",
                 step_encoding_size: int = 16, seq_len: int | None = None):
        super().__init__()
        if code_size is not None and code_size < 1:
            raise ValueError(f"code_size must be a positive whole number, got {code_size}")
        if decoder_input not in DECODER_INPUTS:
            raise ValueError(f"decoder_input must be one of {DECODER_INPUTS}, "
                             f"got {decoder_input!r}")
        if init not in LSTM_AE_INITS:
            raise ValueError(f"init must be one of {LSTM_AE_INITS}, got {init!r}")
        uses_length = init == "chrono" or (decoder_input == "z+time" and step_encoding == "learned")
        if uses_length and seq_len is None:
            raise ValueError("init='chrono' and step_encoding='learned' need seq_len")
        if decoder not in ("repeat", "autoregressive"):
            raise ValueError(f"decoder must be 'repeat' or 'autoregressive', got {decoder!r}")
        if output not in ("sigmoid", "linear"):
            raise ValueError(f"output must be 'sigmoid' or 'linear', got {output!r}")
        self.config = dict(input_size=input_size, hidden_size=hidden_size, num_layers=num_layers,
                           decoder=decoder, reverse=reverse, bidirectional=bidirectional,
                           output=output, teacher_forcing=teacher_forcing, dropout=dropout,
                           init=init, code_size=code_size)
        # the newer options enter the config only when used, so a model built without them keeps
        # the config it always had, and with it its checkpoints (--resume) and finished grid trials
        if decoder_input != "z":
            self.config.update(decoder_input=decoder_input, step_encoding=step_encoding,
                               step_encoding_size=step_encoding_size)
        if uses_length:
            self.config["seq_len"] = seq_len
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.decoder_kind, self.reverse, self.bidirectional = decoder, reverse, bidirectional
        self.output_kind, self.teacher_forcing = output, teacher_forcing
        state_size = hidden_size * (2 if bidirectional else 1)
        self.to_code = nn.Linear(state_size, code_size) if code_size else None
        self.z_size = code_size or state_size
        self.step_encoding = (StepEncoding(step_encoding, step_encoding_size, seq_len)
                              if decoder_input == "z+time" else None)
        # what the decoder reads besides its own previous output: z, or [z, e(s)]
        decoder_in = self.z_size + (step_encoding_size if self.step_encoding is not None else 0)
        layer_dropout = dropout if num_layers > 1 else 0.0

        self.encoder = nn.LSTM(input_size, hidden_size, num_layers, batch_first=True,
                               bidirectional=bidirectional, dropout=layer_dropout)
        if decoder == "repeat":
            self.decoder = nn.LSTM(decoder_in, hidden_size, num_layers, batch_first=True,
                                   dropout=layer_dropout)
        else:
            self.decoder_cells = nn.ModuleList(
                nn.LSTMCell(input_size + decoder_in if layer == 0 else hidden_size, hidden_size)
                for layer in range(num_layers))
            self.initial_state = nn.Linear(self.z_size, num_layers * hidden_size)
        self.readout = nn.Linear(hidden_size, input_size)  # U
        if init in ("orthogonal", "chrono"):
            init_lstm_(self)
            if self.to_code is not None:
                # norm-preserving: with PyTorch's default (uniform ±1/√(D·H)) z starts ~10× smaller
                # than h_T and the decoder, fed an almost constant input, sits on the mean
                nn.init.orthogonal_(self.to_code.weight)
                nn.init.zeros_(self.to_code.bias)
        if init == "chrono":
            # the encoder must carry the first steps to h_T; the decoder is told where it is
            # (z+time) or counts steps from z, and keeps the forget bias 1 of init_lstm_
            chrono_bias_(self.encoder, seq_len)

    # -- encoder ---------------------------------------------------------------------------
    def _encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x: (B, T, m) → z: (B, Z), encoder hidden states: (B, T, D·H)."""
        enc_hidden, (h_n, _) = self.encoder(x)              # h_n: (L·D, B, H)
        if self.bidirectional:
            z = torch.cat([h_n[-2], h_n[-1]], dim=-1)         # (B, 2H): forward h_T, backward h_1
        else:
            z = h_n[-1]                                       # (B, H)
        if self.to_code is not None:
            z = self.to_code(z)                               # (B, k)
        return z, enc_hidden

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, T, m) → z: (B, Z)."""
        return self._encode(x)[0]

    # -- decoder ---------------------------------------------------------------------------
    def _activate(self, y: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(y) if self.output_kind == "sigmoid" else y

    def _decoder_inputs(self, z: torch.Tensor, length: int) -> torch.Tensor:
        """z: (B, Z) → what the decoder reads at each step: (B, T, Z), or (B, T, Z + E) with
        e(s) of the decoding step s appended (z+time). Nothing here depends on x but z."""
        steps = z.unsqueeze(1).expand(-1, length, -1)         # (B, T, Z): same z every step
        if self.step_encoding is None:
            return steps
        time = self.step_encoding(length, like=z)             # (T, E), the same for every input
        return torch.cat([steps, time.unsqueeze(0).expand(z.shape[0], -1, -1)], dim=-1)

    def decode(self, z: torch.Tensor, length: int,
               targets: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """z: (B, Z) → (reconstruction (B, T, m) in input order, decoder hidden (B, T, H)).

        ``targets`` (B, T, m), in input order, are used only for teacher forcing while training.
        """
        if self.decoder_kind == "repeat":
            steps = self._decoder_inputs(z, length)           # (B, T, Z) or (B, T, Z + E)
            dec_hidden, _ = self.decoder(steps)               # (B, T, H)
            y = self._activate(self.readout(dec_hidden))      # (B, T, m)
        else:
            y, dec_hidden = self._decode_autoregressive(z, length, targets)
        if self.reverse:
            y = y.flip(1)
        return y, dec_hidden

    def _decode_autoregressive(self, z, length, targets):
        batch = z.shape[0]
        h0 = torch.tanh(self.initial_state(z)).view(batch, self.num_layers, self.hidden_size)
        state = [(h0[:, layer], torch.zeros_like(h0[:, layer])) for layer in range(self.num_layers)]
        forcing = self.training and self.teacher_forcing > 0 and targets is not None
        if forcing and self.reverse:
            targets = targets.flip(1)                         # decoding order
        previous = z.new_zeros(batch, self.input_size)        # start token
        step_inputs = self._decoder_inputs(z, length).unbind(1)   # T × (B, Z) or (B, Z + E)
        outputs, hiddens = [], []
        for t in range(length):
            inp = torch.cat([previous, step_inputs[t]], dim=-1)   # (B, m + Z) or (B, m + Z + E)
            for layer, cell in enumerate(self.decoder_cells):
                h, c = cell(inp, state[layer])
                state[layer] = (h, c)
                inp = h
            y_t = self._activate(self.readout(h))             # (B, m)
            outputs.append(y_t)
            hiddens.append(h)
            if forcing and torch.rand(()) < self.teacher_forcing:
                previous = targets[:, t]
            else:
                previous = y_t
        return torch.stack(outputs, 1), torch.stack(hiddens, 1)  # (B, T, m), (B, T, H)

    def forward(self, x: torch.Tensor) -> AEOutput:
        """x: (B, T, m) → AEOutput(recon (B, T, m), z (B, Z), dec_hidden (B, T, H),
        enc_hidden (B, T, D·H)). Only z reaches the decoder."""
        z, enc_hidden = self._encode(x)
        recon, dec_hidden = self.decode(z, x.shape[1], targets=x)
        return AEOutput(recon, z, dec_hidden, enc_hidden)


def init_lstm_(module: nn.Module) -> None:
    """Initialise every nn.LSTM / nn.LSTMCell in ``module`` the way Keras does by default.

    Per gate: orthogonal hidden-to-hidden weights (the recurrence neither explodes nor dies out,
    so a decoder fed a constant z keeps a rich trajectory instead of settling on a fixed point,
    i.e. on the mean), Xavier-uniform input weights, zero biases except the forget gate's 1
    (Jozefowicz et al. 2015), which carries the encoder's memory and gradients across the sequence.
    """
    for lstm in module.modules():
        if not isinstance(lstm, (nn.LSTM, nn.LSTMCell)):
            continue
        hidden = lstm.hidden_size
        for name, param in lstm.named_parameters():
            gates = param.data.view(4, hidden, -1) if param.dim() == 2 else param.data.view(4, hidden)
            if name.startswith("weight_hh"):
                for gate in gates:
                    nn.init.orthogonal_(gate)
            elif name.startswith("weight_ih"):
                for gate in gates:
                    nn.init.xavier_uniform_(gate)
            elif name.startswith("bias"):
                param.data.zero_()
                if name.startswith("bias_ih"):
                    gates[1].fill_(1.0)  # PyTorch gate order: input, forget, cell, output


DECODER_INPUTS = ("z", "z+time")
STEP_ENCODINGS = ("sinusoid", "learned")
LSTM_AE_INITS = ("orthogonal", "chrono", "torch")


class StepEncoding(nn.Module):
    """e(s): E numbers that say which step s = 0..T-1 a decoder is at; ``forward(T, like)`` →
    (T, E). It reads only the step index (and ``like``'s dtype and device), never an input, so a
    decoder fed [z, e(s)] still learns nothing of x but z.

    - "sinusoid": fixed [sin(s ω_k), cos(s ω_k)], ω_k = 10000^(-2k/E), k = 0..E/2-1 (Vaswani et
      al. 2017): periods from 2π steps to ~2π·10⁴, so neighbouring steps differ in the fast
      features and far-apart ones in the slow ones; no parameters, any T.
    - "learned": a trained vector per step (``nn.Embedding(max_steps, E)``), T ≤ ``max_steps``.
    """

    def __init__(self, kind: str = "sinusoid", size: int = 16, max_steps: int | None = None):
        super().__init__()
        if kind not in STEP_ENCODINGS:
            raise ValueError(f"step_encoding must be one of {STEP_ENCODINGS}, got {kind!r}")
        if size < 1 or (kind == "sinusoid" and size % 2):
            raise ValueError(f"step_encoding_size must be positive (and even for sinusoid), "
                             f"got {size}")
        if kind == "learned" and not max_steps:
            raise ValueError("a learned step encoding needs max_steps (the sequence length)")
        self.kind, self.size, self.max_steps = kind, size, max_steps
        self.table = nn.Embedding(max_steps, size) if kind == "learned" else None

    def forward(self, length: int, like: torch.Tensor) -> torch.Tensor:
        if self.table is not None:
            if length > self.max_steps:
                raise ValueError(f"learned step encoding has {self.max_steps} steps, "
                                 f"asked for {length}")
            return self.table.weight[:length].to(like.dtype)                   # (T, E)
        step = torch.arange(length, device=like.device, dtype=torch.float32)   # (T,)
        k = torch.arange(self.size // 2, device=like.device, dtype=torch.float32)
        angle = step[:, None] * 10000.0 ** (-2 * k / self.size)                # (T, E/2)
        return torch.cat([angle.sin(), angle.cos()], dim=-1).to(like.dtype)    # (T, E)


@torch.no_grad()
def chrono_bias_(lstm: nn.LSTM, t_max: int) -> None:
    """Chrono initialisation (Tallec & Ollivier 2018, "Can recurrent neural networks warp
    time?", ICLR): forget-gate bias b_f = log(u), u ~ U(1, t_max - 1) per unit, input-gate bias
    b_i = -b_f. A unit then forgets at rate ~1/u at the start of training, so the units' memory
    spans are spread over 1..t_max steps instead of all being ~2 steps (b_f = 1 gives σ(1) =
    0.73 per step: 0.73^784 ≈ 10^-107 of the first pixel would reach h_T in pixel mode).

    nn.LSTM adds two biases, b_ih + b_hh, gate order (i, f, g, o): the values go into b_ih and
    b_hh's i and f slices are zeroed. Every layer and direction; the g and o biases are kept.
    """
    if t_max <= 2:
        raise ValueError(f"chrono initialisation needs t_max > 2 (u ~ U(1, t_max - 1)), "
                         f"got {t_max}")
    hidden = lstm.hidden_size
    for name, param in lstm.named_parameters():
        if not name.startswith("bias_"):
            continue
        gates = param.view(4, hidden)                          # (4, H): i, f, g, o
        if name.startswith("bias_ih"):
            forget = torch.empty(hidden).uniform_(1, t_max - 1).log_().to(param)
            gates[1].copy_(forget)
            gates[0].copy_(-forget)
        else:
            gates[:2].zero_()


class ClassifierHead(nn.Module):
    """ỹ = U h̃_T: class logits from the decoder's last hidden state (spec 000, §3.2).

    Accepts decoder hidden states (B, T, ...) of any trailing shape (a ConvLSTM's (C, W) maps are
    flattened) and returns logits (B, n_classes).
    """

    def __init__(self, hidden_features: int, n_classes: int = 10):
        super().__init__()
        self.linear = nn.Linear(hidden_features, n_classes)

    def forward(self, dec_hidden: torch.Tensor) -> torch.Tensor:
        return self.linear(dec_hidden[:, -1].flatten(1))    # (B, n_classes)


class PredictorHead(nn.Module):
    """ỹ_t = V h_t + b: prediction of x_{t+1} from the encoder state at t (spec 000, §3.3).

    The encoder is a causal (forward) LSTM, so ỹ_t depends on x_1..x_t only. enc_hidden
    (B, T, H) → predictions (B, T, m).
    """

    def __init__(self, hidden_size: int, output_size: int):
        super().__init__()
        self.linear = nn.Linear(hidden_size, output_size)

    def forward(self, enc_hidden: torch.Tensor) -> torch.Tensor:
        return self.linear(enc_hidden)


class AutoencoderWithHead(nn.Module):
    """An autoencoder and one head; ``forward(x)`` → (AEOutput, head output).

    ``source`` says which hidden states the head reads: "decoder" (classification) or
    "encoder" (prediction; refused for a bidirectional encoder, whose backward half has read
    the future).
    """

    def __init__(self, autoencoder: nn.Module, head: nn.Module, source: str):
        super().__init__()
        if source not in ("decoder", "encoder"):
            raise ValueError(f"source must be 'decoder' or 'encoder', got {source!r}")
        if source == "encoder" and getattr(autoencoder, "bidirectional", False):
            raise ValueError("a prediction head cannot read a bidirectional encoder: its "
                             "backward direction has seen x_{t+1}")
        self.autoencoder, self.head, self.source = autoencoder, head, source

    def forward(self, x: torch.Tensor):
        out = self.autoencoder(x)
        hidden = out.dec_hidden if self.source == "decoder" else out.enc_hidden
        return out, self.head(hidden)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# ---------------------------------------------------------------------------------------------
# Convolutional LSTM autoencoder (spec 000, §3.2: F_conv)
#
# References: Shi et al. 2015, "Convolutional LSTM Network: A Machine Learning Approach for
# Precipitation Nowcasting" (the cell, here without the peephole terms W_c ∘ c, as in the
# reference code github.com/ndrplz/ConvLSTM_pytorch); the maps are 1-D: in row mode each step is
# one 28-pixel image row seen as a 1-channel signal of width W = 28.
# Shape letters: B batch, T steps, W width of a step (pixels), C channels of the hidden maps.

def _tanh(x: torch.Tensor) -> torch.Tensor:
    """tanh(x) = 2σ(2x) − 1, without autograd (see ``LSTMPointwise``)."""
    return torch.sigmoid(x * 2).mul_(2).sub_(1)


class LSTMPointwise(torch.autograd.Function):
    """The element-wise half of an LSTM step with a hand-written backward:
    gates (B, 4C, ...) ordered [i, f, o, g], c_{t-1} (B, C, ...) → (h_t, c_t), with
    c_t = σ(f) ⊙ c_{t-1} + σ(i) ⊙ tanh(g) and h_t = σ(o) ⊙ tanh(c_t).

    The ConvLSTM runs it once per step on small maps, where two measured costs dominate
    autograd's version of the same formula (bench/, MNIST rows F_conv):
    - this CPU build's ``torch.tanh`` took ~100 µs on a (128, 16, 28) map against ~15 µs for
      ``torch.sigmoid``; tanh is computed as 2σ(2x) − 1 instead (equal to rounding error).
    - autograd's backward of the gate slices allocates and zero-fills a full (B, 4C, W) gradient
      per slice and adds them; this backward writes each gate's gradient into one tensor.
    """

    @staticmethod
    def forward(ctx, gates: torch.Tensor, c_prev: torch.Tensor):
        n = gates.shape[1] // 4
        sig = torch.sigmoid(gates[:, :3 * n])                  # (B, 3C, ...): σ(i), σ(f), σ(o)
        i, f, o = sig.chunk(3, dim=1)
        g = _tanh(gates[:, 3 * n:])                            # (B, C, ...)
        c = torch.addcmul(f * c_prev, i, g)
        tanh_c = _tanh(c)
        ctx.save_for_backward(sig, g, tanh_c, c_prev)
        return o * tanh_c, c

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_h: torch.Tensor, grad_c: torch.Tensor):
        sig, g, tanh_c, c_prev = ctx.saved_tensors
        n = g.shape[1]
        i, f, o = sig.chunk(3, dim=1)
        grad_c = torch.ops.aten.tanh_backward(grad_h * o, tanh_c) + grad_c    # dL/dc_t in full
        grad_sig = torch.empty_like(sig)                       # dL/dσ(i), dL/dσ(f), dL/dσ(o)
        grad_i, grad_f, grad_o = grad_sig.chunk(3, dim=1)
        torch.mul(grad_c, g, out=grad_i)
        torch.mul(grad_c, c_prev, out=grad_f)
        torch.mul(grad_h, tanh_c, out=grad_o)
        grad_gates = sig.new_empty(sig.shape[0], 4 * n, *sig.shape[2:])
        torch.ops.aten.sigmoid_backward.grad_input(grad_sig, sig, grad_input=grad_gates[:, :3 * n])
        torch.ops.aten.tanh_backward.grad_input(grad_c * i, g, grad_input=grad_gates[:, 3 * n:])
        return grad_gates, grad_c * f


class ConvLSTMLayer(nn.Module):
    """One ConvLSTM layer over 1-D maps: x (B, T, C_in, W) → hidden maps (B, T, C, W), (h_T, c_T).

    Gates [i, f, o, g] = W_x * x_t + W_h * h_{t-1} + b, with * a 1-D convolution over the width
    (odd kernel, same padding); c_t = σ(f) ⊙ c_{t-1} + σ(i) ⊙ tanh(g), h_t = σ(o) ⊙ tanh(c_t);
    states h, c: (B, C, W).

    ``forward`` convolves cat([x_t, h_{t-1}]) with the concatenated kernel [W_x, W_h] at every
    step (one convolution per step, the formulation of most reference code). Measured on MNIST
    rows (F_conv: C = 14, k = 3, batch 128, bidirectional encoder; one training step, CPU): 10 %
    faster on one thread and 18 % on two than convolving all T inputs at once (one 1-channel
    convolution over B·T maps, slow in oneDNN and 22 MB of gates) and adding W_h * h_{t-1} per
    step. ``recur`` takes input gates already computed, for the decoder, whose input z is the same
    at every step: its convolution runs once. ``init="orthogonal"`` (default) initialises as
    ``init_lstm_`` does for F_fc (see ``reset_parameters``); "torch" keeps PyTorch's default
    convolution initialisation.
    """

    def __init__(self, in_channels: int, hidden_channels: int, kernel_size: int = 5,
                 forget_bias: float = 1.0, init: str = "orthogonal",
                 input_kernel_size: int | None = None):
        super().__init__()
        input_kernel_size = input_kernel_size or kernel_size
        for name, k in (("kernel_size", kernel_size), ("input_kernel_size", input_kernel_size)):
            if k < 1 or k % 2 == 0:
                raise ValueError(f"{name} must be odd (same padding), got {k}")
        if input_kernel_size < kernel_size:
            raise ValueError(f"input_kernel_size ({input_kernel_size}) must be at least "
                             f"kernel_size ({kernel_size})")
        self.in_channels, self.hidden_channels, self.kernel_size = in_channels, hidden_channels, kernel_size
        self.input_kernel_size = input_kernel_size
        self.input_conv = nn.Conv1d(in_channels, 4 * hidden_channels, input_kernel_size,
                                    padding=input_kernel_size // 2)
        self.hidden_conv = nn.Conv1d(hidden_channels, 4 * hidden_channels, kernel_size,
                                     padding=kernel_size // 2, bias=False)
        if init == "orthogonal":
            self.reset_parameters(forget_bias)
        elif init != "torch":
            raise ValueError(f"init must be 'orthogonal' or 'torch', got {init!r}")

    @torch.no_grad()
    def reset_parameters(self, forget_bias: float = 1.0) -> None:
        """Per gate, as ``init_lstm_`` does for F_fc: an orthogonal hidden-to-hidden kernel
        (viewed as a C × C·k matrix), so the decoder fed a constant z keeps a rich trajectory
        instead of contracting to a fixed point (a constant output, the mean pixel); Xavier-
        uniform input kernels; zero biases except the forget gate's ``forget_bias``. A wider input
        kernel (``input_kernel_size`` > ``kernel_size``) starts with only its centre
        ``kernel_size`` taps drawn, as the narrow kernel's, and the outer taps zero: the layer
        starts as the narrow one and learns how far to look."""
        c, k = self.hidden_channels, self.kernel_size
        centre = slice((self.input_kernel_size - k) // 2, (self.input_kernel_size + k) // 2)
        self.input_conv.weight.zero_()
        for gate in range(4):
            rows = slice(gate * c, (gate + 1) * c)
            nn.init.orthogonal_(self.hidden_conv.weight[rows].view(c, -1))
            narrow = torch.empty(c, self.in_channels, k)
            nn.init.xavier_uniform_(narrow.view(c, -1))
            self.input_conv.weight[rows, :, centre] = narrow
        self.input_conv.bias.zero_()
        self.input_conv.bias[c:2 * c] = forget_bias          # gate order i, f, o, g

    def _zeros(self, ref: torch.Tensor, batch: int, width: int):
        h = ref.new_zeros(batch, self.hidden_channels, width)
        return h, torch.zeros_like(h)

    def recur(self, gates_x, state=None):
        """The recurrence given the input gates of each step: a sequence of T tensors
        (B, 4C, W) (for the decoder, the same tensor T times: W_x * z + b) → (hidden (B, T, C, W),
        (h_T, c_T) each (B, C, W)).

        Steps are passed as separate tensors, not indexed out of one (B, T, ...) tensor: the
        backward of ``gates[:, t]`` would allocate a full-size zero gradient at every step."""
        batch, _, width = gates_x[0].shape
        h, c = state if state is not None else self._zeros(gates_x[0], batch, width)
        outputs = []
        for t, gates in enumerate(gates_x):
            if state is not None or t > 0:                     # W_h * h_0 = 0 for a zero state
                gates = gates + self.hidden_conv(h)
            h, c = LSTMPointwise.apply(gates, c)               # (B, C, W) each
            outputs.append(h)
        return torch.stack(outputs, 1), (h, c)

    def forward(self, x: torch.Tensor, state=None):
        """x: (B, T, C_in, W) → (hidden (B, T, C, W), (h_T, c_T)); see the class docstring."""
        batch, _, _, width = x.shape
        h, c = state if state is not None else self._zeros(x, batch, width)
        same_width = self.input_kernel_size == self.kernel_size
        if same_width:
            weight = torch.cat([self.input_conv.weight, self.hidden_conv.weight], dim=1)  # [W_x, W_h]
        outputs = []
        for x_t in x.unbind(1):
            if same_width:
                gates = nn.functional.conv1d(torch.cat([x_t, h], dim=1), weight,
                                             self.input_conv.bias, padding=self.kernel_size // 2)
            else:                                              # kernels of two widths
                gates = self.input_conv(x_t) + self.hidden_conv(h)
            h, c = LSTMPointwise.apply(gates, c)               # (B, C, W) each
            outputs.append(h)
        return torch.stack(outputs, 1), (h, c)


class ConvLSTMAutoencoder(nn.Module):
    """Convolutional LSTM autoencoder x → z = h_T → x̃ (F_conv of spec 000, §3.2).

    Each step's input x_t (W values, e.g. an image row) is a 1-channel 1-D signal. The encoder
    ConvLSTM reads x_1..x_T; z = h_T of its last layer, a (C, W) map (Z = C·W values; with
    ``bidirectional`` the backward encoder's h_1 is stacked on the channels: (2C, W)). The decoder
    ConvLSTM receives z at every step (its input convolution is computed once, since z does not
    change) and x̃_t = σ(1×1 conv(h̃_t)).

    Args:
        width: W, values per step (``--input-size``; at least 2, a convolution needs a signal).
        channels: C, hidden channels of encoder and decoder maps.
        kernel_size: odd convolution width.
        num_layers: stacked ConvLSTM layers in encoder and decoder.
        reverse: decode x_T first; ``forward`` flips the output back to the input's order.
        bidirectional: a second encoder reads the steps backwards; z = [h_T, backward h_1].
        init: "orthogonal" (orthogonal recurrent kernels, forget bias 1) or "torch".
        code_size: None (z = the h_T map) or k: z = A vec(h_T) + a, k numbers, and the decoder
            reads the map B z + b (both maps linear and learned).
        z_kernel_size: odd width of the convolution through which the decoder reads z (None:
            ``kernel_size``). z is constant over the steps, so this convolution runs once per
            sequence; 2W − 1 lets every decoder position see all of z (its outer taps start at
            zero, see ``ConvLSTMLayer.reset_parameters``).

    ``forward(x)`` returns the same ``AEOutput`` as ``LSTMAutoencoder``, with maps instead of
    vectors: recon (B, T, W), z (B, C_z, W) (or (B, k) with ``code_size``), dec_hidden (B, T, C, W) in decoding order,
    enc_hidden (B, T, C_z, W); ``ClassifierHead(C·W)`` reads dec_hidden[:, -1].
    """

    def __init__(self, width: int, channels: int = 16, kernel_size: int = 5, num_layers: int = 1,
                 reverse: bool = False, bidirectional: bool = False, init: str = "orthogonal",
                 code_size: int | None = None, z_kernel_size: int | None = None):
        super().__init__()
        if code_size is not None and code_size < 1:
            raise ValueError(f"code_size must be a positive whole number, got {code_size}")
        if width < 2:
            raise ValueError(f"a ConvLSTM needs at least 2 values per step to convolve, got {width}")
        self.config = dict(width=width, channels=channels, kernel_size=kernel_size,
                           num_layers=num_layers, reverse=reverse, bidirectional=bidirectional,
                           init=init, code_size=code_size, z_kernel_size=z_kernel_size)
        self.width, self.channels, self.num_layers = width, channels, num_layers
        self.reverse, self.bidirectional = reverse, bidirectional
        z_channels = channels * (2 if bidirectional else 1)
        self.z_shape = (z_channels, width)
        self.z_size = code_size or z_channels * width
        self.to_code = nn.Linear(z_channels * width, code_size) if code_size else None
        self.from_code = nn.Linear(code_size, z_channels * width) if code_size else None

        def stack(first_in, first_kernel=None):
            return nn.ModuleList(
                ConvLSTMLayer(first_in if layer == 0 else channels, channels, kernel_size, init=init,
                              input_kernel_size=first_kernel if layer == 0 else None)
                for layer in range(num_layers))

        self.encoder = stack(1)
        self.encoder_backward = stack(1) if bidirectional else None
        self.decoder = stack(z_channels, z_kernel_size)
        self.readout = nn.Conv1d(channels, 1, kernel_size=1)     # U: 1×1 convolution
        if code_size and init == "orthogonal":                    # norm-preserving code maps
            for linear in (self.to_code, self.from_code):
                nn.init.orthogonal_(linear.weight)
                nn.init.zeros_(linear.bias)

    @staticmethod
    def _run(layers: nn.ModuleList, maps: torch.Tensor):
        """maps: (B, T, C_in, W) through a stack → (last layer's hidden (B, T, C, W), its h_T)."""
        for layer in layers:
            maps, (h, _) = layer(maps)
        return maps, h

    def encode(self, x: torch.Tensor):
        """x: (B, T, W) → (z (B, C_z, W) or (B, k), encoder hidden (B, T, C_z, W))."""
        maps = x.unsqueeze(2)                                    # (B, T, 1, W)
        enc_hidden, z = self._run(self.encoder, maps)            # (B, T, C, W), (B, C, W)
        if self.bidirectional:
            back, z_back = self._run(self.encoder_backward, maps.flip(1))
            z = torch.cat([z, z_back], dim=1)                    # (B, 2C, W)
            enc_hidden = torch.cat([enc_hidden, back.flip(1)], dim=2)
        if self.to_code is not None:
            z = self.to_code(z.flatten(1))                       # (B, k)
        return z, enc_hidden

    def decode(self, z: torch.Tensor, length: int, per_step: bool = False):
        """z: (B, C_z, W) or (B, k) → (reconstruction (B, T, W) in input order, decoder hidden
        (B, T, C, W) in decoding order). ``per_step``: convolve z again at every step (the
        reference formulation, same numbers) instead of once."""
        if self.from_code is not None:
            z = self.from_code(z).view(-1, *self.z_shape)        # (B, C_z, W)
        first, rest = self.decoder[0], self.decoder[1:]
        if per_step:
            hidden, _ = first(z.unsqueeze(1).expand(-1, length, -1, -1))
        else:
            gates = first.input_conv(z)                          # (B, 4C, W), once
            hidden, _ = first.recur([gates] * length)
        for layer in rest:
            hidden, _ = layer(hidden)                            # (B, T, C, W)
        batch = hidden.shape[0]
        y = torch.sigmoid(self.readout(hidden.flatten(0, 1)))    # (B·T, 1, W)
        y = y.view(batch, length, -1)                            # (B, T, W)
        if self.reverse:
            y = y.flip(1)
        return y, hidden

    def forward(self, x: torch.Tensor, per_step: bool = False) -> AEOutput:
        """x: (B, T, W) → AEOutput(recon (B, T, W), z (B, C_z, W), dec_hidden (B, T, C, W),
        enc_hidden (B, T, C_z, W)). Only z reaches the decoder. ``per_step``: the decoder
        convolves z at every step, the reference formulation (same parameters, same result,
        slower)."""
        z, enc_hidden = self.encode(x)
        recon, dec_hidden = self.decode(z, x.shape[1], per_step)
        return AEOutput(recon, z, dec_hidden, enc_hidden)



# ---------------------------------------------------------------------------------------------
# Recurrent classifiers written from tensors (spec 003, tasks 2 and 3: palindromes)
#
# A vanilla RNN (equations 1–2) and an LSTM (equations 4–11) built only from nn.Parameter, tensor
# arithmetic and a Python loop over time: no nn.RNN / nn.LSTM / nn.GRU / nn.*Cell / nn.Linear /
# F.linear (tests/test_palindrome.py walks the modules and their source to check it). The input
# projection of all T steps does not depend on the recurrence, so it is one matrix product before
# the loop; the LSTM's four gates are stacked in one matrix ([g, i, f, o], the spec's order).
# Only the last step's output p^(T) is computed: the loss (spec eq. 3) reads nothing else.
# Shape letters: B batch, T steps, d input size, n hidden units, K classes.
#
# References: Elman 1990 (the vanilla RNN); Hochreiter & Schmidhuber 1997 and Gers et al. 2000
# (the LSTM with a forget gate); Saxe et al. 2014 (orthogonal initialisation); Jozefowicz et al.
# 2015 (forget-gate bias 1); Pascanu et al. 2013 (vanishing and exploding gradients).

SCRATCH_INITS = ("orthogonal", "plain")


class RecurrentOutput(NamedTuple):
    logits: torch.Tensor          # (B, K) p^(T), the output at the last step
    hidden: list[torch.Tensor]    # T tensors (B, n): h^(1)..h^(T), each a node of the graph,
    #                               so torch.autograd.grad(loss, hidden) gives ∂L/∂h^(t)


def _init_scratch_(module: nn.Module, recurrent: nn.Parameter, inputs: nn.Parameter,
                   init: str) -> None:
    """Initialise a scratch RNN/LSTM; ``recurrent`` and ``inputs`` hold one n-row block per gate.

    ``orthogonal``: each recurrent n × n block orthogonal (at the start, gradients through
    W_hh neither vanish nor explode), input blocks and the readout W_ph Xavier-uniform, biases
    zero. ``plain``: PyTorch's default for nn.RNN/nn.LSTM, every parameter U(−1/√n, 1/√n)."""
    if init not in SCRATCH_INITS:
        raise ValueError(f"init must be one of {SCRATCH_INITS}, got {init!r}")
    n = module.hidden_size
    with torch.no_grad():
        if init == "plain":
            for param in module.parameters():
                param.uniform_(-n ** -0.5, n ** -0.5)
            return
        for param in module.parameters():
            if param.dim() == 1:
                param.zero_()
        for block in recurrent.split(n):
            nn.init.orthogonal_(block)
        for block in inputs.split(n):
            nn.init.xavier_uniform_(block)
        nn.init.xavier_uniform_(module.W_ph)


class ScratchRNN(nn.Module):
    """Vanilla RNN classifier (spec 003, eq. 1–2), from tensors:

        h^(t) = tanh(W_hx x^(t) + W_hh h^(t−1) + b_h),   h^(0) = 0
        p^(T) = W_ph h^(T) + b_p

    x (B, T, d) → ``RecurrentOutput(logits (B, K), hidden [T × (B, n)])``.
    """

    def __init__(self, input_size: int, hidden_size: int, num_classes: int,
                 init: str = "orthogonal"):
        super().__init__()
        self.config = dict(kind="rnn", input_size=input_size, hidden_size=hidden_size,
                           num_classes=num_classes, init=init)
        self.hidden_size = hidden_size
        self.W_hx = nn.Parameter(torch.empty(hidden_size, input_size))
        self.W_hh = nn.Parameter(torch.empty(hidden_size, hidden_size))
        self.b_h = nn.Parameter(torch.empty(hidden_size))
        self.W_ph = nn.Parameter(torch.empty(num_classes, hidden_size))
        self.b_p = nn.Parameter(torch.empty(num_classes))
        _init_scratch_(self, self.W_hh, self.W_hx, init)

    def forward(self, x: torch.Tensor) -> RecurrentOutput:
        inputs = torch.matmul(x, self.W_hx.t()) + self.b_h   # (B, T, n): W_hx x^(t) + b_h, all t
        w_hh = self.W_hh.t()
        h = x.new_zeros(x.shape[0], self.hidden_size)       # (B, n) h^(0)
        hidden = []
        for step_input in inputs.unbind(1):
            h = torch.tanh(torch.addmm(step_input, h, w_hh))  # (B, n)
            hidden.append(h)
        return RecurrentOutput(torch.addmm(self.b_p, h, self.W_ph.t()), hidden)


class ScratchLSTM(nn.Module):
    """LSTM classifier (spec 003, eq. 4–11), from tensors:

        g = tanh(W_gx x + W_gh h + b_g)      i = σ(W_ix x + W_ih h + b_i)
        f = σ(W_fx x + W_fh h + b_f)         o = σ(W_ox x + W_oh h + b_o)
        c^(t) = g ⊙ i + c^(t−1) ⊙ f          h^(t) = tanh(c^(t)) ⊙ o
        p^(T) = W_ph h^(T) + b_p,            h^(0) = c^(0) = 0

    The four gates' matrices are stacked, in the order [g, i, f, o]: ``W_x`` (4n, d) holds
    W_gx, W_ix, W_fx, W_ox one under the other, ``W_h`` (4n, n) and ``b`` (4n) likewise (one
    bias per gate, as in the spec; nn.LSTM has two, b_ih + b_hh). ``init="orthogonal"`` also
    sets the forget-gate bias b_f to ``forget_bias`` (1: the cell keeps its content by default
    at the start of training), "plain" is PyTorch's default for nn.LSTM.

    x (B, T, d) → ``RecurrentOutput(logits (B, K), hidden [T × (B, n)])``.
    """

    GATES = ("g", "i", "f", "o")

    def __init__(self, input_size: int, hidden_size: int, num_classes: int,
                 init: str = "orthogonal", forget_bias: float = 1.0):
        super().__init__()
        self.config = dict(kind="lstm", input_size=input_size, hidden_size=hidden_size,
                           num_classes=num_classes, init=init, forget_bias=forget_bias)
        n = self.hidden_size = hidden_size
        self.W_x = nn.Parameter(torch.empty(4 * n, input_size))
        self.W_h = nn.Parameter(torch.empty(4 * n, n))
        self.b = nn.Parameter(torch.empty(4 * n))
        self.W_ph = nn.Parameter(torch.empty(num_classes, n))
        self.b_p = nn.Parameter(torch.empty(num_classes))
        _init_scratch_(self, self.W_h, self.W_x, init)
        if init == "orthogonal":
            with torch.no_grad():
                self.gate(self.b, "f").fill_(forget_bias)

    def gate(self, stacked: torch.Tensor, name: str) -> torch.Tensor:
        """The rows of gate ``name`` (g, i, f or o) in a stacked parameter: a view."""
        k = self.GATES.index(name)
        return stacked[k * self.hidden_size:(k + 1) * self.hidden_size]

    def forward(self, x: torch.Tensor) -> RecurrentOutput:
        n = self.hidden_size
        inputs = torch.matmul(x, self.W_x.t()) + self.b    # (B, T, 4n): W_·x x^(t) + b_·, all t
        w_h = self.W_h.t()
        h = x.new_zeros(x.shape[0], n)                      # (B, n) h^(0)
        c = torch.zeros_like(h)                             # (B, n) c^(0)
        hidden = []
        for step_input in inputs.unbind(1):
            gates = torch.addmm(step_input, h, w_h)         # (B, 4n) pre-activations [g, i, f, o]
            g = torch.tanh(gates[:, :n])
            i, f, o = torch.sigmoid(gates[:, n:]).chunk(3, dim=1)
            c = torch.addcmul(c * f, g, i)                  # c^(t) = g ⊙ i + c^(t−1) ⊙ f
            h = torch.tanh(c) * o                           # (B, n)
            hidden.append(h)
        return RecurrentOutput(torch.addmm(self.b_p, h, self.W_ph.t()), hidden)


def scratch_parameter_count(kind: str, d: int, n: int, K: int) -> int:
    """Trainable parameters of ``ScratchRNN``/``ScratchLSTM`` as a formula (spec 003, Q1.5(b)):

        RNN:  n·d + n·n + n + K·n + K        (W_hx, W_hh, b_h, W_ph, b_p)
        LSTM: 4·(n·d + n·n + n) + K·n + K    (four gates of W_·x, W_·h, b_·; then W_ph, b_p)

    The batch size m and the sequence length T do not enter: the same weights serve every
    sequence of the batch and every time step."""
    if kind == "rnn":
        return n * d + n * n + n + K * n + K
    if kind == "lstm":
        return 4 * (n * d + n * n + n) + K * n + K
    raise ValueError(f"kind must be 'rnn' or 'lstm', got {kind!r}")
# Next-patch LSTM (spec 002, problem 1): draws the bottom half of an MNIST digit patch by patch

class NextPatchLSTM(nn.Module):
    """(Y_t, C_{t+1}, H_{t+1}) = LSTM(X_t, C_t, H_t): predicts patch t+1 from patches 1..t
    (spec 002, problem 1, equation 1), an ``nn.LSTM`` stack + a dense layer to the patch size +
    sigmoid (pixels in [0, 1]).

    ``forward(x, state)``: patches x (B, T, P) and an optional (h, c) (each (L, B, H); zeros when
    None) → (predictions Y (B, T, P), the state after the last step).
    ``complete(given, n)``: the closed loop of equations (3)-(7), see its docstring.
    """

    def __init__(self, patch_size: int = 49, hidden_size: int = 64, num_layers: int = 2,
                 init: str = "orthogonal"):
        super().__init__()
        self.config = dict(patch_size=patch_size, hidden_size=hidden_size, num_layers=num_layers,
                           init=init)
        self.lstm = nn.LSTM(patch_size, hidden_size, num_layers, batch_first=True)
        self.out = nn.Linear(hidden_size, patch_size)
        if init == "orthogonal":
            init_lstm_(self)
        elif init != "torch":
            raise ValueError(f"init must be 'orthogonal' or 'torch', got {init!r}")

    def forward(self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None):
        hidden, state = self.lstm(x, state)                  # (B, T, H), ((L, B, H), (L, B, H))
        return torch.sigmoid(self.out(hidden)), state        # (B, T, P)

    def complete(self, given: torch.Tensor, n_steps: int) -> torch.Tensor:
        """Draw ``n_steps`` patches after the ``given`` ones (B, T0, P) → (B, n_steps, P).

        The given patches X_1..X_T0 go through once (teacher forcing: they are known); Y_T0 is the
        first drawn patch. Then, one step at a time, the last drawn patch is fed back as the next
        input with the carried (h, c): (Y_{t+1}, C_{t+2}, H_{t+2}) = LSTM(Y_t, C_{t+1}, H_{t+1}).
        Nothing after the given patches is ever read."""
        predictions, state = self(given)                     # (B, T0, P): Y_1..Y_T0
        patch = predictions[:, -1:]                          # (B, 1, P): Y_T0, patch T0+1
        drawn = [patch]
        for _ in range(n_steps - 1):
            patch, state = self(patch, state)                # one step from the carried (h, c)
            drawn.append(patch)
        return torch.cat(drawn, dim=1)                       # (B, n_steps, P)
