"""Reference implementations the benchmark compares the product models with (not the product).

These are the versions people usually write by hand, kept here only so that ``python -m bench``
can time them beside the product on the same data and the same weights:

- ``ReferenceLSTMAutoencoder``: the common hand-written LSTM autoencoder. Encoder and decoder are
  ``nn.LSTMCell`` stepped in a Python loop, the readout is applied at every step and the outputs
  are gathered with ``torch.cat``. Same math as ``models.LSTMAutoencoder`` with its default
  repeat-z decoder (z = h_T is fed at every decoder step, x̃_t = σ(U h̃_t)), so it can load the
  product's weights (``load_product``).
- ``ReferenceConvLSTMCell``: the ConvLSTM cell of github.com/ndrplz/ConvLSTM_pytorch, written here
  from its description (one convolution over cat([x_t, h_{t-1}]) along the channels gives the
  four gates, split as [i, f, o, g]; no peephole terms), with 1-D maps instead of 2-D ones.
- ``ReferenceLSTMClassifier``: ``nn.LSTM`` + ``nn.Linear`` on the last hidden state, loading the
  weights of ``models.ScratchLSTM`` (the palindrome task's LSTM written from tensors): here the
  reference is PyTorch's fused layer, the speed the from-scratch model is measured against.
- ``ReferenceConvLSTMAutoencoder``: that cell in the encoder/decoder layout of
  ``models.ConvLSTMAutoencoder`` (z = h_T fed at every decoder step, x̃_t = σ(1×1 conv(h̃_t))),
  loading the product's weights: the product's input and hidden kernels concatenated along the
  input channels are exactly the reference's single kernel.

Both return ``models.AEOutput`` so the product's heads (``ClassifierHead``, ``PredictorHead``) and
``AutoencoderWithHead`` work on them unchanged. Only the configuration the benchmark times is
supported: one layer, unidirectional encoder, repeat decoder, no reversal.

References: Hochreiter & Schmidhuber 1997; Shi et al. 2015, "Convolutional LSTM Network";
github.com/ndrplz/ConvLSTM_pytorch (convlstm.py, ``ConvLSTMCell``).
"""
from __future__ import annotations

import torch
from torch import nn

from models import AEOutput, ConvLSTMAutoencoder, LSTMAutoencoder, RecurrentOutput, ScratchLSTM


def _check_plain(config: dict, what: str) -> None:
    plain = {"num_layers": 1, "bidirectional": False, "reverse": False, "decoder": "repeat"}
    unsupported = {k: config[k] for k, v in plain.items() if k in config and config[k] != v}
    if unsupported:
        raise ValueError(f"the reference {what} covers one layer, a unidirectional encoder and the "
                         f"repeat decoder without reversal; got {unsupported}")


class ReferenceLSTMAutoencoder(nn.Module):
    """Hand-written LSTM AE: ``nn.LSTMCell`` in Python loops, outputs gathered with ``torch.cat``.

    x (B, T, m) → AEOutput(recon (B, T, m), z (B, H), dec_hidden (B, T, H), enc_hidden (B, T, H)).
    """

    def __init__(self, input_size: int, hidden_size: int, output: str = "sigmoid"):
        super().__init__()
        self.input_size, self.hidden_size, self.output = input_size, hidden_size, output
        self.bidirectional, self.z_size = False, hidden_size
        self.encoder_cell = nn.LSTMCell(input_size, hidden_size)
        self.decoder_cell = nn.LSTMCell(hidden_size, hidden_size)
        self.readout = nn.Linear(hidden_size, input_size)

    @classmethod
    def from_product(cls, product: LSTMAutoencoder) -> "ReferenceLSTMAutoencoder":
        """A reference with the product's configuration and weights."""
        _check_plain(product.config, "LSTM autoencoder")
        ref = cls(product.input_size, product.hidden_size, product.output_kind)
        ref.load_product(product)
        return ref.to(next(product.parameters()).device)

    @torch.no_grad()
    def load_product(self, product: LSTMAutoencoder) -> None:
        """Copy the weights of ``models.LSTMAutoencoder``: nn.LSTM's weight_ih_l0, weight_hh_l0,
        bias_ih_l0, bias_hh_l0 are nn.LSTMCell's weight_ih, weight_hh, bias_ih, bias_hh (same
        gate order i, f, g, o)."""
        for cell, lstm in ((self.encoder_cell, product.encoder),
                           (self.decoder_cell, product.decoder)):
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(cell, name).copy_(getattr(lstm, f"{name}_l0"))
        self.readout.load_state_dict(product.readout.state_dict())

    def forward(self, x: torch.Tensor) -> AEOutput:
        batch, length, _ = x.shape
        h = x.new_zeros(batch, self.hidden_size)
        c = x.new_zeros(batch, self.hidden_size)
        enc_hidden = []
        for t in range(length):
            h, c = self.encoder_cell(x[:, t, :], (h, c))
            enc_hidden.append(h.unsqueeze(1))
        z = h                                                   # (B, H)
        h = x.new_zeros(batch, self.hidden_size)
        c = x.new_zeros(batch, self.hidden_size)
        outputs, dec_hidden = [], []
        for t in range(length):
            h, c = self.decoder_cell(z, (h, c))
            y = self.readout(h)
            if self.output == "sigmoid":
                y = torch.sigmoid(y)
            outputs.append(y.unsqueeze(1))
            dec_hidden.append(h.unsqueeze(1))
        return AEOutput(torch.cat(outputs, dim=1), z, torch.cat(dec_hidden, dim=1),
                        torch.cat(enc_hidden, dim=1))


class ReferenceLSTMClassifier(nn.Module):
    """``nn.LSTM`` and an ``nn.Linear`` readout of h_T: x (B, T, d) → RecurrentOutput(logits
    (B, K), hidden [T × (B, n)]), what ``models.ScratchLSTM`` computes."""

    NN_LSTM_GATES = ("i", "f", "g", "o")    # nn.LSTM's order of the stacked gates

    def __init__(self, input_size: int, hidden_size: int, num_classes: int):
        super().__init__()
        self.lstm = nn.LSTM(input_size, hidden_size, batch_first=True)
        self.readout = nn.Linear(hidden_size, num_classes)

    @classmethod
    def from_scratch(cls, scratch: ScratchLSTM) -> "ReferenceLSTMClassifier":
        """A reference holding ``scratch``'s weights: its gates [g, i, f, o] reordered to
        nn.LSTM's [i, f, g, o]; its one bias per gate is bias_ih, and bias_hh is zero."""
        config = scratch.config
        ref = cls(config["input_size"], config["hidden_size"], config["num_classes"])
        ref.to(dtype=scratch.W_x.dtype, device=scratch.W_x.device)
        with torch.no_grad():
            for mine, theirs in ((scratch.W_x, ref.lstm.weight_ih_l0),
                                 (scratch.W_h, ref.lstm.weight_hh_l0),
                                 (scratch.b, ref.lstm.bias_ih_l0)):
                theirs.copy_(torch.cat([scratch.gate(mine, g) for g in cls.NN_LSTM_GATES]))
            ref.lstm.bias_hh_l0.zero_()
            ref.readout.weight.copy_(scratch.W_ph)
            ref.readout.bias.copy_(scratch.b_p)
        return ref

    def forward(self, x: torch.Tensor) -> RecurrentOutput:
        hidden, _ = self.lstm(x)                                # (B, T, n)
        return RecurrentOutput(self.readout(hidden[:, -1]), list(hidden.unbind(1)))


class ReferenceConvLSTMCell(nn.Module):
    """The ndrplz/ConvLSTM_pytorch cell on 1-D maps: one convolution of cat([x_t, h_{t-1}]).

    x_t (B, C_in, W), state (h, c) each (B, C, W) → (h_t, c_t).
    """

    def __init__(self, input_dim: int, hidden_dim: int, kernel_size: int, bias: bool = True):
        super().__init__()
        self.input_dim, self.hidden_dim = input_dim, hidden_dim
        self.conv = nn.Conv1d(input_dim + hidden_dim, 4 * hidden_dim, kernel_size,
                              padding=kernel_size // 2, bias=bias)

    def forward(self, input_tensor: torch.Tensor, cur_state):
        h_cur, c_cur = cur_state
        combined = torch.cat([input_tensor, h_cur], dim=1)     # (B, C_in + C, W)
        combined_conv = self.conv(combined)                    # (B, 4C, W)
        cc_i, cc_f, cc_o, cc_g = torch.split(combined_conv, self.hidden_dim, dim=1)
        i = torch.sigmoid(cc_i)
        f = torch.sigmoid(cc_f)
        o = torch.sigmoid(cc_o)
        g = torch.tanh(cc_g)
        c_next = f * c_cur + i * g
        h_next = o * torch.tanh(c_next)
        return h_next, c_next

    def init_hidden(self, batch_size: int, width: int, ref: torch.Tensor):
        zeros = ref.new_zeros(batch_size, self.hidden_dim, width)
        return zeros, zeros.clone()


class ReferenceConvLSTMAutoencoder(nn.Module):
    """ConvLSTM AE built from ``ReferenceConvLSTMCell``: outputs gathered with ``torch.stack``.

    x (B, T, W) → AEOutput(recon (B, T, W), z (B, C, W), dec_hidden (B, T, C, W),
    enc_hidden (B, T, C, W)), the layout of ``models.ConvLSTMAutoencoder``.
    """

    def __init__(self, width: int, channels: int, kernel_size: int):
        super().__init__()
        self.width, self.channels, self.bidirectional = width, channels, False
        self.z_size = channels * width
        self.encoder_cell = ReferenceConvLSTMCell(1, channels, kernel_size)
        self.decoder_cell = ReferenceConvLSTMCell(channels, channels, kernel_size)
        self.readout = nn.Conv1d(channels, 1, kernel_size=1)

    @classmethod
    def from_product(cls, product: ConvLSTMAutoencoder) -> "ReferenceConvLSTMAutoencoder":
        _check_plain(product.config, "ConvLSTM autoencoder")
        ref = cls(product.width, product.channels, product.config["kernel_size"])
        ref.load_product(product)
        return ref.to(next(product.parameters()).device)

    @torch.no_grad()
    def load_product(self, product: ConvLSTMAutoencoder) -> None:
        """The product's layer has W_x (``input_conv``, with the bias) and W_h (``hidden_conv``);
        the reference's one kernel over cat([x_t, h]) is [W_x, W_h] along the input channels."""
        for cell, layer in ((self.encoder_cell, product.encoder[0]),
                            (self.decoder_cell, product.decoder[0])):
            kernel = torch.cat([layer.input_conv.weight, layer.hidden_conv.weight], dim=1)
            cell.conv.weight.copy_(kernel)                     # (4C, C_in + C, k)
            cell.conv.bias.copy_(layer.input_conv.bias)
        self.readout.load_state_dict(product.readout.state_dict())

    def forward(self, x: torch.Tensor) -> AEOutput:
        batch, length, width = x.shape
        maps = x.unsqueeze(2)                                   # (B, T, 1, W)
        h, c = self.encoder_cell.init_hidden(batch, width, x)
        enc_hidden = []
        for t in range(length):
            h, c = self.encoder_cell(maps[:, t], (h, c))
            enc_hidden.append(h)
        z = h                                                   # (B, C, W)
        h, c = self.decoder_cell.init_hidden(batch, width, x)
        dec_hidden = []
        for t in range(length):
            h, c = self.decoder_cell(z, (h, c))
            dec_hidden.append(h)
        dec = torch.stack(dec_hidden, dim=1)                    # (B, T, C, W)
        recon = torch.sigmoid(self.readout(dec.flatten(0, 1))).view(batch, length, width)
        return AEOutput(recon, z, dec, torch.stack(enc_hidden, dim=1))
