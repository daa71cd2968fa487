"""Tests for lstm_mnist_patches.py: patches, the next-patch loss, the closed-loop generation
(equations 3-7), the nearest-top-half baseline, the script end to end and on bad input."""
from __future__ import annotations

import json

import pytest
import torch

import lstm_mnist_patches as patches
from cli import run
from models import NextPatchLSTM


def test_patchify_round_trip_and_order():
    x = torch.rand(3, 28, 28)
    p = patches.patchify(x)
    assert p.shape == (3, 16, 49)
    assert torch.equal(patches.unpatchify(p), x)
    assert torch.equal(p[1, 0], x[1, :7, :7].flatten())           # top left first
    assert torch.equal(p[1, 1], x[1, :7, 7:14].flatten())         # then along the top row
    assert torch.equal(p[1, 4], x[1, 7:14, :7].flatten())         # second row of patches
    assert torch.equal(p[1, 15], x[1, 21:, 21:].flatten())        # bottom right last


def test_next_patch_loss_compares_y_t_with_x_t_plus_1():
    torch.manual_seed(0)
    model = NextPatchLSTM(49, 8, 2)
    x = torch.rand(4, 16, 49)
    loss, _ = patches.next_patch_step(model, (x,))
    y, _ = model(x[:, :15])
    assert loss.item() == pytest.approx(((y - x[:, 1:]) ** 2).mean().item())
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_closed_loop_feeds_its_own_predictions_back():
    torch.manual_seed(1)
    model = NextPatchLSTM(49, 8, 2).eval()
    x = torch.rand(5, 16, 49)
    images = patches.complete(model, x)                           # (5, 28, 28)
    other = x.clone()
    other[:, 8:] = torch.rand(5, 8, 49)                           # another true bottom half
    assert torch.equal(patches.complete(model, other), images)    # never read
    assert torch.equal(images[:, :14], patches.unpatchify(x)[:, :14])   # top half kept
    # the carried (h, c) loop equals re-running the whole sequence with the drawn patches fed in
    drawn = patches.patchify(images)[:, 8:]                       # Y_8..Y_15
    with torch.no_grad():
        for j in range(1, 8):
            sequence = torch.cat([x[:, :8], drawn[:, :j]], 1)
            y, _ = model(sequence)
            torch.testing.assert_close(y[:, -1], drawn[:, j], rtol=1e-5, atol=1e-6)


def test_overfits_one_batch():
    torch.manual_seed(2)
    model = NextPatchLSTM(49, 32, 1)
    x = torch.rand(8, 16, 49).round()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = None
    for _ in range(150):
        loss, _ = patches.next_patch_step(model, (x,))
        first = first or loss.item()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.3 * first


def test_nearest_top_half_matches_brute_force():
    torch.manual_seed(3)
    bank, query = torch.rand(50, 28, 28), torch.rand(7, 28, 28)
    expected = torch.cdist(query[:, :14].flatten(1), bank[:, :14].flatten(1)).argmin(1)
    assert torch.equal(patches.nearest_top_half(bank, query, chunk=3), expected)


TINY = ["--train-size", "300", "--test-size", "300", "--per-digit", "2", "--epochs", "1",
        "--hidden-size", "8", "--threads", "1"]


def test_script_end_to_end(mnist_root, tiny_judge, tmp_path):
    judge_file, _ = tiny_judge
    out = tmp_path / "patches"
    patches.main(["--data-dir", str(mnist_root), "--out-dir", str(out), "--judge-file",
                  str(judge_file), *TINY])
    for name in ("generated.png", "originals.png", "loss.png", "metrics.json", "confusion.csv",
                 "history.csv", "checkpoint.pt"):
        assert (out / name).stat().st_size > 0, name
    m = json.loads((out / "metrics.json").read_text())
    assert set(m["bottom_half_mse"]) == {"lstm", "blank_bottom", "mean_bottom", "nearest_top_half"}
    judge = m["judge"]
    assert judge["original"]["label_agreement"] > judge["blank_bottom"]["label_agreement"]
    assert judge["frechet_real_vs_real"] < judge["blank_bottom"]["frechet_to_real"]
    assert len(m["data"]["shown"]) == 10 and all(len(r) == 2 for r in m["data"]["shown"])


def _run_cli(argv, capsys):
    try:
        code = run(patches.main, argv)
    except SystemExit as exit_:
        code = exit_.code
    return code, capsys.readouterr().err


@pytest.mark.parametrize("argv, needle", [
    (["--hidden-size", "0"], "--hidden-size"),
    (["--num-layers", "-1"], "--num-layers"),
    (["--per-digit", "0"], "--per-digit"),
    (["--test-size", "20000"], "--test-size"),
    (["--train-size", "60000"], "--train-size"),
    (["--input-size", "7"], "--input-size"),                     # not a flag of this script
])
def test_bad_flags_give_one_line_and_exit_2(argv, needle, mnist_root, tmp_path, capsys):
    out = tmp_path / "o"
    code, err = _run_cli([*argv, "--data-dir", str(mnist_root), "--out-dir", str(out)], capsys)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and needle in err and "Traceback" not in err
    assert not out.exists()
