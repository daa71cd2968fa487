"""Feed-forward (non-recurrent) models: dense autoencoders, VAEs, GANs and the CNN digit judge.

The recurrent sequence models are in ``models.py``; this module holds the networks that see a
whole image at once.

- ``DenseAutoencoder``: a fully connected autoencoder, e.g. the 784-128-32-128-784 baseline of
  the MNIST task (spec 000) and the compression autoencoder of spec 004.

Shape letters: B batch, D = sizes[0] input values (784 for MNIST), Z = sizes[-1] code size.
"""
from __future__ import annotations

import torch
from torch import nn


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
