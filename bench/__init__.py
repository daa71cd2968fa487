"""Benchmarks of the product models against reference implementations (``python -m bench``).

- ``bench.benchmark``: configurations, the timed training step, FLOP count, matmul peak, profiles,
  tables and report/performance.md.
- ``bench.reference``: the common hand-written LSTM AE (nn.LSTMCell loop) and the ndrplz-style
  ConvLSTM, which load the product's weights. Not part of the product.
- ``bench.accuracy``: time to 98 % test accuracy on row-mode MNIST (``--time-to-accuracy``).
"""
