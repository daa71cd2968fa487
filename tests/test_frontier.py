"""report.frontier_section on hand-made runs: the z-kernel ablation is its own series and its
bullet quotes the two runs' numbers (the quick report trains too few F_conv sizes to pair them)."""
import json

import report


def write_run(out, name, archs, seconds=60.0):
    run_dir = out / name
    run_dir.mkdir(parents=True)
    metrics = {arch: dict(values, mse_vs_dense_ae=values["test_mse"] / 0.008)
               for arch, values in archs.items()}
    metrics.update(config={"class_weight": 0.02, "epochs": 10, "input_size": 28},
                   data={"n_train": 54000, "n_test": 10000, "steps": 28},
                   baselines={"dense_ae": {"test_mse": 0.008}})
    (run_dir / "metrics.json").write_text(json.dumps(metrics))
    (run_dir / "run.json").write_text(json.dumps({"command": f"python lstm_ae_mnist.py ({name})",
                                                  "seconds": seconds}))


def conv(z_kernel, accuracy, mse, seconds, parameters):
    return {"model": {"width": 28, "channels": 14, "kernel_size": 3, "bidirectional": True,
                      "z_kernel_size": z_kernel},
            "test_accuracy": accuracy, "test_mse": mse, "seconds_per_epoch": seconds,
            "parameters": parameters, "z_size": 784}


def fc(hidden, accuracy, mse, seconds, parameters):
    return {"model": {"hidden_size": hidden}, "test_accuracy": accuracy, "test_mse": mse,
            "seconds_per_epoch": seconds, "parameters": parameters, "z_size": hidden}


def test_narrow_z_kernel_run_is_the_ablation_of_the_default_design(tmp_path):
    write_run(tmp_path, "mnist", {"F_fc": fc(256, 0.9923, 0.0056, 92.5, 828966),
                                  "F_conv": conv(55, 0.9861, 0.0049, 104.0, 97682)})
    write_run(tmp_path, "mnist/frontier/fc-32", {"F_fc": fc(32, 0.9643, 0.0389, 4.5, 17638)})
    write_run(tmp_path, "mnist/frontier/conv-14-k3-zk3",
              {"F_conv": conv(3, 0.9697, 0.00565, 98.0, 16209)})
    text = report.frontier_section(tmp_path)
    summary = json.loads((tmp_path / "mnist" / "frontier.json").read_text())
    series = {(r["series"], r["label"]) for r in summary["points"]}
    assert ("F_conv, narrow z kernel", "C=14 k=3") in series and ("F_conv", "C=14 k=3") in series
    assert summary["time_ratios"]["wide_vs_narrow_z_kernel"] == 104.0 / 98.0
    bullet = next(line for line in text.splitlines() if "how the decoder reads z" in line)
    for number in ("96.97 %", "98.61 %", "0.00565", "0.0049", "16,209", "97,682", "1.06",
                   "--z-kernel-size 55"):
        assert number in bullet, number
    assert "z convolution, most of its parameters" in text
    assert (tmp_path / "mnist" / "frontier.png").stat().st_size > 5000


def test_runs_without_a_z_kernel_read_as_the_narrow_decoder():
    assert report.narrow_z_kernel({"kernel_size": 3})
    assert report.narrow_z_kernel({"kernel_size": 3, "z_kernel_size": 3})
    assert not report.narrow_z_kernel({"kernel_size": 3, "z_kernel_size": 55})


def test_a_point_costs_its_fastest_epoch_and_keeps_the_mean_beside_it(tmp_path):
    """Other load only slows an epoch: the frontier times a run by the fastest epoch of its
    history.csv (a neighbour's burst moves neither it nor the ratio), the mean stays recorded."""
    write_run(tmp_path, "mnist", {"F_fc": fc(256, 0.9923, 0.0056, 120.0, 828966),
                                  "F_conv": conv(55, 0.9861, 0.0049, 150.0, 97682)})
    for cell, seconds in (("fc", [95.0, 180.0, 91.0, 114.0]), ("conv", [130.0, 115.0, 205.0, 150.0])):
        (tmp_path / "mnist" / cell).mkdir()
        (tmp_path / "mnist" / cell / "history.csv").write_text(
            "epoch,val_accuracy,seconds\n"
            + "".join(f"{i},0.98,{s}\n" for i, s in enumerate(seconds, 1)))
    write_run(tmp_path, "mnist/frontier/fc-32", {"F_fc": fc(32, 0.9643, 0.0389, 4.5, 17638)})
    report.frontier_section(tmp_path)
    points = {p["series"]: p for p in
              json.loads((tmp_path / "mnist" / "frontier.json").read_text())["points"]}
    assert points["F_fc"]["seconds_per_epoch"] == 91.0
    assert points["F_fc"]["mean_seconds_per_epoch"] == 120.0
    assert points["F_conv"]["seconds_per_epoch"] == 115.0
    assert points["F_conv"]["time_vs_fc_default"] == 115.0 / 91.0
