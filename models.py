"""Sequence autoencoders and the heads attached to them.

- ``LSTMAutoencoder``: the LSTM AE of the assignment (spec 000, §1, Fig. 1). The encoder LSTM reads
  x_1..x_T and z = h_T of its last layer; the decoder LSTM receives the same z at every step and
  x̃_t = σ(U h̃_t). Options cure the classic "an LSTM AE only predicts the average" failure
  (spec 001): an autoregressive decoder, a reversed target order, a bidirectional encoder, more
  layers, and a linear output for data outside [0, 1].
- ``ClassifierHead``: ỹ = U h̃_T, logits from the decoder's last hidden state (spec 000, §3.2).
- ``PredictorHead``: ỹ_t for x_{t+1} from the encoder's hidden state h_t, so it sees x_1..x_t only
  (spec 000, §3.3).
- ``AutoencoderWithHead``: an autoencoder plus one head, trained and saved as one module.
- ``DenseAutoencoder``: the fully connected 784-128-32-128-784 baseline (spec 004).

Every model takes and returns batch-first tensors. Shape letters: B batch, T time steps,
m values per step, H hidden size, D encoder directions, Z = D·H the size of z.

References: Srivastava et al. 2015, "Unsupervised Learning of Video Representations using LSTMs"
(reversed reconstruction target); Sutskever et al. 2014 (reversed order eases optimisation).
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
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 decoder: str = "repeat", reverse: bool = False, bidirectional: bool = False,
                 output: str = "sigmoid", teacher_forcing: float = 0.0, dropout: float = 0.0):
        super().__init__()
        if decoder not in ("repeat", "autoregressive"):
            raise ValueError(f"decoder must be 'repeat' or 'autoregressive', got {decoder!r}")
        if output not in ("sigmoid", "linear"):
            raise ValueError(f"output must be 'sigmoid' or 'linear', got {output!r}")
        self.config = dict(input_size=input_size, hidden_size=hidden_size, num_layers=num_layers,
                           decoder=decoder, reverse=reverse, bidirectional=bidirectional,
                           output=output, teacher_forcing=teacher_forcing, dropout=dropout)
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.decoder_kind, self.reverse, self.bidirectional = decoder, reverse, bidirectional
        self.output_kind, self.teacher_forcing = output, teacher_forcing
        self.z_size = hidden_size * (2 if bidirectional else 1)
        layer_dropout = dropout if num_layers > 1 else 0.0

        self.encoder = nn.LSTM(input_size, hidden_size, num_layers, batch_first=True,
                               bidirectional=bidirectional, dropout=layer_dropout)
        if decoder == "repeat":
            self.decoder = nn.LSTM(self.z_size, hidden_size, num_layers, batch_first=True,
                                   dropout=layer_dropout)
        else:
            self.decoder_cells = nn.ModuleList(
                nn.LSTMCell(input_size + self.z_size if layer == 0 else hidden_size, hidden_size)
                for layer in range(num_layers))
            self.initial_state = nn.Linear(self.z_size, num_layers * hidden_size)
        self.readout = nn.Linear(hidden_size, input_size)  # U

    # -- encoder ---------------------------------------------------------------------------
    def _encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x: (B, T, m) → z: (B, Z), encoder hidden states: (B, T, D·H)."""
        enc_hidden, (h_n, _) = self.encoder(x)              # h_n: (L·D, B, H)
        if self.bidirectional:
            z = torch.cat([h_n[-2], h_n[-1]], dim=-1)         # (B, 2H): forward h_T, backward h_1
        else:
            z = h_n[-1]                                       # (B, H)
        return z, enc_hidden

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, T, m) → z: (B, Z)."""
        return self._encode(x)[0]

    # -- decoder ---------------------------------------------------------------------------
    def _activate(self, y: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(y) if self.output_kind == "sigmoid" else y

    def decode(self, z: torch.Tensor, length: int,
               targets: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """z: (B, Z) → (reconstruction (B, T, m) in input order, decoder hidden (B, T, H)).

        ``targets`` (B, T, m), in input order, are used only for teacher forcing while training.
        """
        if self.decoder_kind == "repeat":
            steps = z.unsqueeze(1).expand(-1, length, -1)     # (B, T, Z): same z every step
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
        outputs, hiddens = [], []
        for t in range(length):
            inp = torch.cat([previous, z], dim=-1)            # (B, m + Z)
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


class DenseAutoencoder(nn.Module):
    """Fully connected autoencoder, e.g. 784-128-32-128-784 (ReLU, sigmoid output; spec 004).

    x: (B, ...) flattened to (B, sizes[0]) → reconstruction of the same shape as x.
    """

    def __init__(self, sizes: tuple[int, ...] = (784, 128, 32)):
        super().__init__()
        self.config = dict(sizes=list(sizes))
        enc, dec = [], []
        for a, b in zip(sizes[:-1], sizes[1:]):
            enc += [nn.Linear(a, b), nn.ReLU()]
        for a, b in zip(sizes[::-1][:-1], sizes[::-1][1:]):
            dec += [nn.Linear(a, b), nn.ReLU()]
        dec[-1] = nn.Sigmoid()
        self.encoder, self.decoder = nn.Sequential(*enc), nn.Sequential(*dec)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x.flatten(1))).view_as(x)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
