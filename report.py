"""Write ``report/README.md`` from the runs' own outputs (called by ``make_report.py``).

Every number in the written report is read here from a run's metrics.json, grid.csv or cv.csv;
none is typed. Each section names the command that produced it (from the run's run.json stamp).
"""
from __future__ import annotations

import json
import math
import platform
import time
from pathlib import Path

import matplotlib.pyplot as plt
import matplotlib.ticker
import pandas as pd

from data import SIGNALS
from hardware import cpu_model
from outputs import write_json, write_text
from plotting import COLORS, STYLE, figure, plot_code_size_curves, save_figure

SKIPPED = "skipped.json"   # written by make_report.py where this machine cannot run an experiment
CODE_VERSIONS = "code-versions.json"   # make_report.py: each experiment's current code hash


def skipped_reason(out_dir: Path, name: str) -> str | None:
    """Why make_report.py last skipped this experiment on this machine, or None."""
    path = out_dir / name / SKIPPED
    return json.loads(path.read_text())["reason"] if path.exists() else None


def load_run(out_dir: Path, name: str) -> dict | None:
    """metrics.json and run.json of one experiment, or None if it has not finished."""
    run_dir = out_dir / name
    if not (run_dir / "metrics.json").exists():
        return None
    run = {"dir": run_dir, "name": name, "metrics": json.loads((run_dir / "metrics.json").read_text())}
    stamp = run_dir / "run.json"
    run["stamp"] = json.loads(stamp.read_text()) if stamp.exists() else {}
    versions = out_dir / CODE_VERSIONS
    current = json.loads(versions.read_text()).get(name) if versions.exists() else None
    run["stale"] = bool(current and run["stamp"].get("code") not in (None, current))
    return run


def fmt(value, digits: int = 3) -> str:
    """Numbers for tables: 3 significant digits, no scientific notation for ordinary sizes."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if isinstance(value, int):
        return f"{value:,}"
    if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e5):
        return f"{value:.{digits - 1}e}"
    return f"{value:.{digits}g}"


def pct(value) -> str:
    return "–" if value is None else f"{100 * value:.2f} %"


def table(headers: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(c if isinstance(c, str) else fmt(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def image(run: dict, name: str, out_dir: Path, alt: str) -> str:
    path = run["dir"] / name
    if not path.exists():
        return ""
    return f"![{alt}]({path.relative_to(out_dir).as_posix()})"


def command(run: dict) -> str:
    cmd = run["stamp"].get("command", "(command unknown: run outside make_report.py)")
    seconds = run["stamp"].get("seconds")
    took = f" — {seconds / 60:.1f} min" if seconds else ""
    stale = (f" *(run by an earlier version of the code it imports; `python make_report.py "
             f"--only {run['name']}` reruns it)*" if run.get("stale") else "")
    return f"`{cmd}`{took}{stale}"


def pca_mse(pca: dict, key: str = "test_mse") -> str:
    """A PCA baseline's error for tables; "exact" where it is float round-off (baselines: the code
    reaches the data's linear rank), which a ratio or a log scale cannot show."""
    return "exact" if pca.get("exact") else fmt(pca[key])


def missing(name: str) -> str:
    return f"*`{name}` has not been run yet: `python make_report.py --only {name}`.*\n"


# ---------------------------------------------------------------------------------------------

def code_words(m: dict) -> str:
    """How the run's z is made, from its config."""
    k = m["config"].get("code_size")
    return (f"z = A h_T + a, a learned linear map to {k} numbers (`--code-size {k}`)" if k
            else "z = h_T (no code map)")


def pca_words(m: dict) -> str:
    """The toy run against PCA with its code size, and the signal's linear rank."""
    pca, rank = m.get("pca"), m.get("linear_rank")
    if not pca:
        return ""
    size = (f"PCA with {pca['components']} components (the model's code size"
            f"{'' if pca['components'] == pca['code_size'] else ', capped at the sequence length'}), "
            f"fitted on the training split,")
    if pca.get("exact"):
        text = (f"{size} reconstructs the test signals exactly (its error is float round-off): the "
                f"LSTM AE is **above** it.")
    else:
        verdict = "below" if m["test_mse"] < pca["test_mse"] else "**above**"
        text = (f"{size} scores {fmt(pca['test_mse'])} (original units "
                f"{fmt(pca['test_mse_original'])}): the LSTM AE is {verdict} it "
                f"({fmt(m['test_mse'] / pca['test_mse'])} × PCA's MSE).")
    if rank:
        text += (f" The training signals span a {rank['components']}-dimensional linear subspace "
                 f"(all but {rank['tolerance']:g} of their variance)"
                 + (": a code this large compresses nothing PCA cannot reproduce."
                    if m["z_size"] >= rank["components"] else "."))
    return text


def clip_finding(grid: pd.DataFrame) -> str:
    """What the grid's gradient-clip axis did: identical results with and without the clip mean
    it never acted, which the largest gradient norm seen under the clip confirms."""
    clips = sorted(grid["grad_clip"].unique())
    if len(clips) < 2 or 0 not in clips:
        return ""
    pairs = grid.pivot_table(index=["hidden_size", "lr"], columns="grad_clip", values="best_val_loss")
    same = bool((pairs.nunique(axis=1) == 1).all())
    clipped = grid[grid["grad_clip"] > 0]
    norm = (clipped["grad_norm_max"].max() if "grad_norm_max" in grid and clipped["grad_norm_max"].notna().any()
            else None)
    clip = min(c for c in clips if c > 0)
    evidence = (f"the largest gradient norm of any step in the clipped trials was {fmt(norm)}"
                + (f", below the clip of {clip:g}, so the clip never acted" if norm <= clip else
                   f", above the clip of {clip:g} in some steps") if norm is not None else "")
    if same:
        return (f"**The gradient-clip axis changes nothing.** Every trial with clipping ends at "
                f"exactly the validation MSE of the same trial without it"
                + (f": {evidence}" if evidence else "") + ". Adam scales each step by its own "
                "running gradient size, so these runs are stable without a clip; a clip that acts "
                "would have to sit below the gradient norms these runs reach.")
    better = pairs[clip] < pairs[0]
    verdict = ("lowers the best validation MSE of every hidden size and learning rate" if better.all()
               else "raises the best validation MSE of every hidden size and learning rate"
               if not better.any() else "lowers the best validation MSE of some hidden sizes and "
               "learning rates and raises it for others")
    return (f"**Gradient clipping** at {clip:g} {verdict} (table above)"
            + (f"; {evidence}" if evidence else "") + ".")


def toy_section(out_dir: Path) -> str:
    main = load_run(out_dir, "toy")
    if main is None:
        return "## 1. Synthetic signals (spec §3.1)\n\n" + missing("toy")
    m = main["metrics"]
    parts = ["## 1. Synthetic signals (spec §3.1)", ""]
    parts.append(
        f"**Setup.** {m['config']['n_seqs']:,} sequences of length {m['config']['seq_len']} "
        f"(signal `{m['config']['signal']}`: {SIGNALS[m['config']['signal']]}), each normalised to "
        f"[0, 1] with mean ½ (`data.normalize`), split 60/20/20. LSTM AE with "
        f"the assignment's decoder (z fed at every step, x̃_t = σ(U h̃_t)), "
        f"{code_words(m)}, "
        f"{m['config']['optimizer']} with a {m['config']['lr_schedule']} learning rate, batch "
        f"{m['config']['batch_size']}, {m['config']['epochs']} epochs, grid over hidden size × learning "
        f"rate × gradient clip, best trial by validation MSE. Command: {command(main)}.")
    parts += ["", image(main, "examples.png", out_dir, "three synthetic sequences"), ""]
    if (main["dir"] / "grid.csv").exists():
        grid = pd.read_csv(main["dir"] / "grid.csv").sort_values(["grad_clip", "hidden_size", "lr"])
        has_norms = "grad_norm_max" in grid
        parts += ["**Grid search** (validation MSE, normalised units; the mean predictor scores "
                  f"{fmt(m['baseline_mse'])} on the test set"
                  + ("; with a clip, the largest gradient norm of any training step before clipping "
                     "and the share of steps the clip acted on" if has_norms else "") + "):", "",
                  table(["hidden", "learning rate", "grad clip", "best val MSE", "best epoch", "seconds",
                         *(["largest grad norm", "steps clipped"] if has_norms else [])],
                        [[int(r.hidden_size), f"{r.lr:g}", f"{r.grad_clip:g}", r.best_val_loss,
                          int(r.best_epoch), r.seconds,
                          *([r.grad_norm_max, pct(r.clipped_fraction) if r.grad_clip else "–"]
                            if has_norms else [])] for r in grid.itertuples()]),
                  "", image(main, "grid.png", out_dir, "grid search heat map"), ""]
        parts += [clip_finding(grid), ""]
    bp = m["best_params"]
    parts.append(
        f"**Result.** The best trial (hidden {bp['hidden_size']}, lr {bp['lr']:g}, clip "
        f"{bp['grad_clip']:g}; z has {m['z_size']} numbers for {m['config']['seq_len']} values) reaches a "
        f"test MSE of {fmt(m['test_mse'])} in normalised units against {fmt(m['baseline_mse'])} for "
        f"predicting each sequence's own mean: relative MSE **{fmt(m['relative_mse'])}** "
        f"(in the signal's original units {fmt(m['test_mse_original'])} vs {fmt(m['baseline_mse_original'])}). "
        + pca_words(m))
    parts += ["", image(main, "reconstructions.png", out_dir, "two test reconstructions"), "",
              image(main, "loss.png", out_dir, "loss curves"), ""]

    rows = []
    for name, what in (("toy", "default (orthogonal init, forget bias 1)"),
                       ("toy/plateau", "PyTorch's default init"),
                       ("toy/plateau-reverse", "PyTorch's default init + reversed target"),
                       ("toy/sines", "the low-frequency sines signal, same code size"),
                       ("toy/dip", "dip signal, 10 values a step, hidden 128, reversed"),
                       ("toy/dip-z32", "dip signal, 10 values a step, hidden 32 (z smaller than the sequence)"),
                       ("toy/uniform", "uniform signal, 10 values a step, hidden 128, reversed")):
        run = load_run(out_dir, name)
        if run is None:
            rows.append([f"`{name}`", what, "not run", *[""] * 7])
            continue
        rm = run["metrics"]
        pca = rm.get("pca")
        rows.append([f"`{name}`", what, rm["config"]["signal"], rm["z_size"], rm["test_mse"],
                     rm["baseline_mse"], rm["relative_mse"],
                     f"PCA-{pca['components']}: {pca_mse(pca)}" if pca else "–",
                     rm["test_mse_original"], rm["baseline_mse_original"]])
    parts += ["**The \"it only predicts the average\" failure and its cures** (spec 001). Every row is "
              "a separate run; relative MSE = test MSE ÷ MSE of each sequence's own mean, so 1.0 means "
              "the model learned nothing but the mean; PCA with the same code size, fitted on the "
              "training split, is the linear reference:", "",
              table(["run", "what changes", "signal", "z", "test MSE", "mean predictor", "relative",
                     "PCA, same z", "test MSE (orig.)", "mean (orig.)"], rows), ""]
    plateau = load_run(out_dir, "toy/plateau")
    if plateau:
        pm = plateau["metrics"]
        verdict = ("stays on the mean-predictor plateau" if pm["relative_mse"] > 0.9 else
                   "leaves the plateau in this run")
        parts.append(
            f"With PyTorch's default LSTM initialisation the same model and settings {verdict} "
            f"(relative MSE {fmt(pm['relative_mse'])} after {pm['epochs_run']} epochs), while orthogonal "
            f"recurrent weights with forget-gate bias 1 (`--init orthogonal`, the default) reach "
            f"{fmt(m['relative_mse'])}. A decoder fed the same z at every step must create the "
            f"time variation from its own recurrence; with small uniform recurrent weights its state "
            f"settles on a fixed point within a few steps and the output is the mean.")
    reverse = load_run(out_dir, "toy/plateau-reverse")
    if plateau and reverse:
        rr = reverse["metrics"]["relative_mse"]
        parts.append(
            f"Reversing the target order (`--reverse`, decoding x_T first) with PyTorch's default "
            f"initialisation {'also leaves the plateau' if rr < 0.5 else 'does not leave the plateau'} "
            f"(relative MSE {fmt(rr)}): the first outputs the decoder must produce are the inputs the "
            f"encoder read last, a short path for the gradient.")
    for name, label in (("toy/plateau", "plateau"), ("toy/plateau-reverse", "reverse")):
        run = load_run(out_dir, name)
        if run:
            parts.append(f"Command ({label}): {command(run)}.")
    for name in ("toy/sines", "toy/dip", "toy/dip-z32", "toy/uniform"):
        run = load_run(out_dir, name)
        if run:
            rm = run["metrics"]
            parts += ["", f"**`{name}` (`{rm['config']['signal']}` signal).** Test MSE "
                      f"{fmt(rm['test_mse_original'])} "
                      f"in original units against {fmt(rm['baseline_mse_original'])} for the sequence mean "
                      f"(relative {fmt(rm['relative_mse_original'])}), with z of {rm['z_size']} numbers "
                      f"for {rm['config']['seq_len']} values and input size {rm['config']['input_size']}. "
                      + pca_words(rm) + f" Command: {command(run)}.", "",
                      image(run, "reconstructions.png", out_dir, f"{name} reconstructions")]
    return "\n".join(parts) + "\n"


def mnist_section(out_dir: Path) -> str:
    title = "## 2. MNIST (spec §3.2)"
    run = load_run(out_dir, "mnist")
    if run is None:
        return f"{title}\n\n" + missing("mnist")
    m = run["metrics"]
    c, base = m["config"], m["baselines"]
    archs = [name for name in ("F_fc", "F_conv") if name in m]
    parts = [title, "", (
        f"**Setup.** {m['data']['n_train']:,} training images and {m['data']['n_val']:,} validation images "
        f"(a seeded part of MNIST's training set); the {m['data']['n_test']:,} test images only for the "
        f"numbers below. Each image is read as "
        f"{m['data']['steps']} steps of {c['input_size']} pixels; pixel values in [0, 1] "
        f"({'each image normalised to mean ½' if c.get('normalize') else 'not renormalised'}; MSE in "
        f"{m['mse_units']}). Loss = reconstruction MSE + w × cross-entropy of ỹ = U h̃_T ("
        + ", ".join(f"w = {class_weight(m, a):g} for {a}" for a in archs) + f"). {c['epochs']} epochs, {c['optimizer']} with a {c['lr_schedule']} learning rate. "
        f"Baselines in the same run: the training-set mean image, and a fully connected "
        f"{'-'.join(str(v) for v in base['dense_ae']['sizes'])} autoencoder trained for the same epochs. "
        f"Command: {command(run)}."), ""]
    def pca_cell(r):
        return f"PCA-{r['pca']['components']}: {pca_mse(r['pca'])}" if "pca" in r else "–"

    dense = base["dense_ae"]
    rows = [[f"{name} ({r['model'].get('hidden_size', r['model'].get('channels'))} "
             f"{'hidden' if name == 'F_fc' else 'channels'}, z = {r['z_size']})",
             r["test_mse"], pca_cell(r), pct(r["test_accuracy"]), r["parameters"],
             r["seconds_per_epoch"]]
            for name, r in ((n, m[n]) for n in archs)]
    rows += [["mean training image", base["mean_image"]["test_mse"], "–", "–", "–", "–"],
             [f"dense AE {'-'.join(str(v) for v in dense['sizes'])}", dense["test_mse"],
              pca_cell(dense), "–", dense["parameters"], dense["seconds_per_epoch"]]]
    parts += [table(["model", "test MSE", "PCA, same code size", "test accuracy", "parameters",
                     "s / epoch"], rows), ""]
    for name in archs:
        r = m[name]
        acc_ok = r["test_accuracy"] >= 0.99
        mse_ok = r["test_mse"] <= base["dense_ae"]["test_mse"]
        parts.append(
            f"- {name}: accuracy {pct(r['test_accuracy'])} ({'meets' if acc_ok else 'misses'} the 99.0 % "
            f"target) and reconstruction MSE {fmt(r['test_mse'])}, {fmt(r['mse_vs_dense_ae'])} × the dense "
            f"AE's and {fmt(r['mse_vs_mean_image'])} × the mean image's "
            f"({'at or below' if mse_ok else 'above'} the dense AE"
            + (f"; but its code has {r['z_size']} numbers, as many as the image's pixels or "
               f"more, against the dense AE's "
               f"{dense.get('z_size', dense['sizes'][len(dense['sizes']) // 2])}: PCA with "
               f"{r['pca']['components']} components reconstructs the test images exactly"
               if "pca" in r and r["pca"].get("exact") else
               f"; but its code has {r['z_size']} numbers against the dense AE's "
               f"{dense.get('z_size', dense['sizes'][len(dense['sizes']) // 2])}, and PCA with "
               f"{r['z_size']} components reconstructs better, at {pca_mse(r['pca'])}: the "
               f"LSTM AE's MSE is {fmt(r['mse_vs_pca'])} × PCA's"
               if "pca" in r and r["mse_vs_pca"] > 1 else
               f"; PCA with the same {r['z_size']}-number code: {pca_mse(r['pca'])}"
               if "pca" in r else "")
            + "). The comparison at equal code size is in the code-size section below.")
    parts += ["", image(run, "digits.png", out_dir, "three test digits and their reconstructions"), "",
              image(run, "loss.png", out_dir, "loss vs epoch"), "",
              image(run, "accuracy.png", out_dir, "accuracy vs epoch"), ""]
    bf16 = load_run(out_dir, "mnist/bf16")
    bf16_skipped = skipped_reason(out_dir, "mnist/bf16")
    if bf16_skipped:
        parts += [f"**bf16 autocast** (`--precision bf16`) was not run on this machine: "
                  f"{bf16_skipped}. "
                  + ("The numbers below are from its last run on a CPU that supports it."
                     if bf16 else "fp32 (the default) is unaffected."), ""]
    if bf16 and "F_fc" in m:
        b, f = bf16["metrics"]["F_fc"], m["F_fc"]
        parts += [
            f"**bf16 autocast** (`--precision bf16`: training forward passes in bfloat16 on "
            f"{'that' if bf16_skipped else 'this'} "
            f"CPU's bf16 instructions; weights, optimizer and the test numbers stay fp32): F_fc "
            f"reaches {pct(b['test_accuracy'])} test accuracy and reconstruction MSE "
            f"{fmt(b['test_mse'])} at {fmt(b['seconds_per_epoch'])} s per epoch, against "
            f"{pct(f['test_accuracy'])}, {fmt(f['test_mse'])} and {fmt(f['seconds_per_epoch'])} s "
            f"per epoch in fp32 above (same settings and seed, separate runs, so the times are only "
            f"roughly comparable: report/performance.md times both in one process; dense AE, "
            f"also trained under bf16, "
            f"{fmt(bf16['metrics']['baselines']['dense_ae']['test_mse'])}). "
            f"Command: {command(bf16)}.", ""]
    pixel = load_run(out_dir, "mnist/pixel")
    if pixel:
        pm = pixel["metrics"]
        r, pc = pm["F_fc"], pm["config"]
        decoder_input = pc.get("decoder_input", "z")      # runs before the flag fed z alone
        steps_told = (f"z and a {pc.get('step_encoding', 'sinusoid')} encoding of the step index "
                      f"(`--decoder-input z+time`)" if decoder_input == "z+time" else
                      "z alone (`--decoder-input z`)")
        parts += [
            f"**Pixel by pixel** ({pm['data']['steps']} steps of one pixel, the assignment's original "
            f"setting): F_fc with hidden size {r['model']['hidden_size']}, `--init {pc['init']}`, "
            f"its decoder fed {steps_told} at every step, batch {pc['batch_size']}, peak learning "
            f"rate {fmt(r['best_params'].get('lr', pc['lr'][0]))}. "
            f"One epoch over {pm['data']['n_train']:,} training images costs "
            f"{fmt(r['seconds_per_epoch'])} s on this CPU; after {r['epochs_run']} "
            f"epoch{'' if r['epochs_run'] == 1 else 's'} F_fc reaches "
            f"{pct(r['test_accuracy'])} test accuracy (chance: 10 %) and reconstruction MSE "
            f"{fmt(r['test_mse'])} "
            f"(mean image {fmt(pm['baselines']['mean_image']['test_mse'])}, dense AE "
            f"{fmt(pm['baselines']['dense_ae']['test_mse'])} with the same images and epochs"
            + (f", PCA-{r['pca']['components']} {fmt(r['pca']['test_mse'])}" if "pca" in r else "")
            + "). "
            f"Command: {command(pixel)}.", "",
            image(pixel, "digits.png", out_dir, "pixel-mode reconstructions"), ""]
    return "\n".join(parts) + "\n"


def snp500_section(out_dir: Path) -> str:
    title = "## 3. S&P 500 prices (spec §3.3)"
    run = load_run(out_dir, "snp500")
    if run is None:
        return f"{title}\n\n" + missing("snp500")
    m = run["metrics"]
    d, rec, pred = m["data"], m["reconstruction"], m["prediction"]
    rt, rh = rec["test"], rec["test_held_out_symbols"]
    pca = rec.get("pca", {})
    pca_k = pca.get("components", "k")
    z = rec.get("z_size")
    pca_sentence = (
        f"PCA with the model's code size ({z} numbers for windows of {m['config']['seq_len']} "
        f"values{', capped at the window length' if z and z > m['config']['seq_len'] else ''}), "
        f"fitted on the chosen fold's training windows, is the linear reference: "
        + ("it reconstructs the test windows exactly (float round-off), so the LSTM AE is "
           "**above** it; the code-size section compares them at codes smaller than a window."
           if pca.get("exact") else
           f"the LSTM AE's MSE is {'below' if rt['mse'] < pca['test_mse'] else '**above**'} PCA's.")
        if pca else "")
    parts = [title, "", (
        f"**Setup.** Daily `{'`, `'.join(d['features'])}` of {d['symbols']} symbols over {d['trading_days']} "
        f"trading days ({d['first_date']} to {d['last_date']}; {len(d['skipped_short_symbols'])} symbols too "
        f"short for one window skipped, {d['filled_cells']} empty cells filled from the previous day). "
        f"Windows of {m['config']['seq_len']} days. Out-of-time test set: every date from {d['test_start']} on, "
        f"held out of every fold; {len(d['held_out_symbols'])} symbols held out of training altogether; the "
        f"remaining symbols form {len(rec['folds'])} random folds grouped by symbol (no stock in both training "
        f"and validation). Command: {command(run)}."), "",
        image(run, "amzn_googl.png", out_dir, "AMZN and GOOGL daily high"), "",
        "**Reconstruction, cross-validated** (each window normalised to [0, 1] with mean ½ by its own "
        "statistics; dollars through the inverse):", "",
        table(["fold", "validation symbols", "train windows", "best epoch", "val MSE (normalised)", "val MSE ($²)"],
              [[f["fold"], f["val_symbols"], f["train_windows"], f["best_epoch"], f["val_mse"],
                f["val_mse_dollars"]] for f in rec["folds"]]), "",
        f"Fold {rec['chosen_fold']} has the lowest validation MSE and is evaluated:", "",
        table(["test set", "windows", "MSE (normalised)", f"PCA-{pca_k}", "window's own mean",
               "relative", "MSE ($²)", f"PCA-{pca_k} ($²)", "window mean ($²)", "relative ($)"],
              [[name, t["windows"], t["mse"], pca_mse(pca, f"test_mse{key}") if pca else "–",
                t["mean_baseline_mse"], t["relative_mse"], t["mse_dollars"],
                pca_mse(pca, f"test_mse{key}_dollars") if pca else "–",
                t["mean_baseline_mse_dollars"], t["relative_mse_dollars"]]
               for name, t, key in (("out-of-time, all symbols", rt, ""),
                                    ("out-of-time, held-out symbols", rh, "_held_out_symbols"))
               if t]), "",
        pca_sentence, "",
        image(run, "reconstructions.png", out_dir, "three reconstructed test stocks"), ""]
    rows = []
    for name, key in (("validation", "validation"), ("out-of-time test", "test"),
                      ("held-out symbols", "test_held_out_symbols")):
        p = pred.get(key)
        if p:
            rows.append([name, p["targets"], p["lstm_mse_dollars"], p["persistence_mse_dollars"],
                         p["linear_mse_dollars"], fmt(p["lstm_vs_persistence"], 4),
                         fmt(p["linear_vs_persistence"], 4)])
    lb = pred["linear_baseline"]
    beats = "beats" if pred["beats_persistence"] else "does **not** beat"
    parts += [
        f"**Next-day prediction.** A head on the encoder state h_t predicts x_{{t+1}} (so it sees days 1..t "
        f"only; windows scaled with statistics of the days before them). Baselines on the same days: "
        f"persistence (tomorrow's high = today's) and a pooled linear AR({lb['order']}) on log-returns "
        f"fitted on the training period.", "",
        table(["split", "predicted days", "LSTM MSE ($²)", "persistence ($²)", f"AR({lb['order']}) ($²)",
               "LSTM ÷ persistence", f"AR({lb['order']}) ÷ persistence"], rows), "",
        f"On the out-of-time test set the LSTM {beats} persistence in dollars "
        f"({fmt(pred['test']['lstm_vs_persistence'], 4)} × persistence MSE) and "
        f"{'beats' if pred['beats_linear'] else 'does not beat'} the linear baseline "
        f"({fmt(pred['test']['linear_vs_persistence'], 4)}). Measured with each error divided by the last "
        f"price, the ratios are {fmt(pred['test']['lstm_vs_persistence_relative_errors'], 4)} (LSTM) and "
        f"{fmt(pred['test']['linear_vs_persistence_relative_errors'], 4)} (linear): dollar errors weigh "
        f"expensive stocks most, and a day's high is close to a random walk, so any gain over persistence "
        f"is small.", "",
        image(run, "losses.png", out_dir, "training and prediction loss"), "",
        image(run, "prediction.png", out_dir, "next-day prediction of one test stock"), ""]
    return "\n".join(parts) + "\n"


def palindrome_section(out_dir: Path) -> str:
    title = "## Palindromes: how far a vanilla RNN and an LSTM remember (spec 003, tasks 2–3)"
    run = load_run(out_dir, "palindrome")
    if run is None:
        return f"{title}\n\n" + missing("palindrome")
    m, c = run["metrics"], run["metrics"]["config"]
    summary, labels = m["summary"], {"rnn": "vanilla RNN", "lstm": "LSTM"}
    kinds = [k for k in ("rnn", "lstm") if k in summary]
    n, lengths = c["hidden_size"], c["length"]
    params = m["parameters"]
    parts = [title, "", (
        f"**Setup.** `rnn_palindrome.py`: a palindrome of length T over the ten digits is read one "
        f"one-hot digit a step (the first T − 1 digits); the output after the last step must be the "
        f"last digit, which equals the first, so one digit has to be carried across T − 2 steps. "
        f"Both networks are written from tensors (`models.ScratchRNN`, the spec's RNN equations; "
        f"`models.ScratchLSTM`, its LSTM equations; tests check them against `nn.RNN` and `nn.LSTM` "
        f"with copied weights to float64 precision), n = {n} hidden units, h⁽⁰⁾ = c⁽⁰⁾ = 0, "
        f"`--init {c['init']}`"
        + (" (orthogonal recurrent weights per gate, Xavier input weights, zero biases except "
           "the LSTM's forget-gate bias 1)" if c["init"] == "orthogonal" else
           " (PyTorch's default, every parameter `U(−1/√n, 1/√n)`)")
        + f". Training: {c['optimizer']} at a {c['lr_schedule']} learning rate {c['lr'][0]:g}, "
        f"gradient norm clipped to {c['grad_clip'][0]:g}, batches of {c['batch_size']} fresh "
        f"palindromes generated on the fly, at most {c['steps']:,} steps; a run stops once its "
        f"training accuracy has been perfect over {c['stop_after']} consecutive "
        f"period(s) of {c['eval_every']} batches"
        + (f" or gives up when its validation accuracy is still at chance after "
           f"{c['give_up_after']:,} steps" if c.get("give_up_after") else "")
        + f", and keeps the weights with the best loss on "
        f"{c['val_size']:,} fixed validation palindromes. Each point is scored on "
        f"{c['test_size']:,} fixed test palindromes of its length, generated apart from the "
        f"training stream, for {c['seeds']} seeds. Chance is {pct(m['chance_accuracy'])}. "
        f"Command: {command(run)}. " + _palindrome_run_time(m)), ""]

    rows = []
    for t in lengths:
        row = [str(t)]
        for kind in kinds:
            s = summary[kind]["by_length"].get(str(t))
            row += ([pct(s["median"]), f"{pct(s['min'])} – {pct(s['max'])}",
                     f"{s['median_steps']:,.0f}", f"{s['median_seconds']:.0f}"]
                    if s else ["not run", "", "", ""])
        rows.append(row)
    headers = ["T"]
    for kind in kinds:
        headers += [f"{labels[kind]}: median test accuracy", "min – max", "median steps", "median s"]
    parts += ["**Test accuracy of the last digit** (median over seeds; steps until the early stop "
              "or the cap):", "", table(headers, rows), "",
              image(run, "accuracy_vs_length.png", out_dir, "test accuracy vs palindrome length"),
              ""]
    verdicts = []
    for kind in kinds:
        s = summary[kind]
        verdicts.append(
            f"the {labels[kind]} holds a median test accuracy of at least {pct(m['solved_accuracy'])} "
            f"at every length up to T = {s['holds_99_up_to'] or '–'} (longest such length: "
            f"{s['longest_length_99'] or '–'})"
            + (f" and is at chance (within 5 points of it) from T = {s['first_length_at_chance']}"
               if s["first_length_at_chance"] else ", and is above chance at every length run"))
    parts += ["**Result.** With the same budget, " + "; ".join(verdicts) + ". (The spec's anchor: "
              "vanilla RNNs fail beyond about 10 steps.)", ""]

    plain = load_run(out_dir, "palindrome/plain-rnn")
    if plain and "rnn" in plain["metrics"]["summary"]:
        p = plain["metrics"]["summary"]["rnn"]
        parts += [
            f"**The initialisation matters as much as the architecture.** The same vanilla RNN "
            f"with PyTorch's default initialisation (`--init plain`: every weight "
            f"`U(−1/√n, 1/√n)`, so W_hh is far from orthogonal) holds "
            f"{pct(plain['metrics']['solved_accuracy'])} up to T = {p['holds_99_up_to'] or '–'}"
            + (f" and is at chance from T = {p['first_length_at_chance']}"
               if p["first_length_at_chance"] else "")
            + (f", against T = {summary['rnn']['holds_99_up_to'] or '–'} with orthogonal "
               f"recurrent weights above" if "rnn" in summary else "")
            + f". Command: {command(plain)}.", "",
            image(plain, "accuracy_vs_length.png", out_dir,
                  "vanilla RNN with PyTorch's default initialisation"), ""]

    pal = m["palindromes"]
    small = [t for t in lengths if pal[str(t)]["test_distinct"] is not None]
    if small:
        parts += ["**How many palindromes there are.** `10^⌈T/2⌉` (the first `⌈T/2⌉` digits are "
                  "free, the rest mirror them), so for short T the training stream draws nearly all of "
                  "them and the test set overlaps training (the spec ignores this, and so do the "
                  "numbers above):", "",
                  table(["T", "distinct palindromes", "distinct in the test set",
                         "expected share of test palindromes seen in training (longest run)"],
                        [[str(t), f"{pal[str(t)]['distinct']:,}", f"{pal[str(t)]['test_distinct']:,}",
                          pct(pal[str(t)]["test_seen_in_training"])] for t in small]), ""]

    grad = m.get("gradient_norms")
    if grad:
        t_g = grad["length"]
        ratios = grad["first_over_last"]
        accs = {kind: summary[kind]["by_length"][str(t_g)]["median"] for kind in grad["norms"]}
        measured = "; ".join(
            f"{labels[k]} (median test accuracy {pct(accs[k])}): ‖∂L/∂h⁽¹⁾‖ / "
            f"‖∂L/∂h⁽{grad['last_step']}⁾‖ = "
            f"{fmt(r['init'])} at initialisation, {fmt(r['trained'])} after training"
            for k, r in ratios.items())
        parts += [
            "### Question 1.1: gradients through time", "",
            "With p = W_ph h⁽ᵀ⁾ + b_p and softmax "
            "cross-entropy, ∂L/∂W_ph = (ŷ − y) h⁽ᵀ⁾ᵀ: it reads the last state only. For the "
            "recurrent matrix, ∂L/∂W_hh = Σₖ₌₁ᵀ diag(1 − h⁽ᵏ⁾²) ∂L/∂h⁽ᵏ⁾ h⁽ᵏ⁻¹⁾ᵀ with "
            "∂L/∂h⁽ᵏ⁾ = [∏ⱼ₌ₖ₊₁ᵀ W_hhᵀ diag(1 − h⁽ʲ⁾²)] W_phᵀ (ŷ − y): a sum over every earlier "
            "step, where step k's term carries a product of T − k Jacobians. Their norms multiply, "
            "so the contribution of early inputs shrinks (|tanh′| ≤ 1 and ‖W_hh‖ ≤ 1) or grows "
            "(‖W_hh‖ > 1) exponentially with the distance T − k: vanishing or exploding gradients, "
            "and the first digit, the only one that matters here, is the farthest. Measured at "
            f"T = {t_g} on {grad['examples']:,} validation palindromes: {measured}. The figure "
            "shows the whole profile over t (log scale); a ratio far below 1 means the first "
            "digit's state hardly receives any gradient.", "",
            image(run, "gradient_norms.png", out_dir, "gradient norm of the loss w.r.t. each hidden state"),
            ""]

    parts += [
        "### Question 1.4: momentum and adaptive learning rates", "",
        "Plain SGD moves every weight by "
        "the same multiple of its current gradient. Momentum keeps a running (exponentially "
        "decaying) average of past gradients and steps along it: directions in which the "
        "gradient keeps its sign accumulate speed, directions in which it flips cancel out, so "
        "the path through narrow, curved valleys oscillates less and plateaus are crossed "
        "faster. An adaptive learning rate (RMSprop, and Adam, which adds momentum to it) divides "
        "each weight's step by a running root-mean-square of that weight's own gradients: "
        "weights whose gradients are tiny, like the recurrent weights that only receive the "
        "vanished gradient of distant steps, still move at a useful rate, and weights with large "
        "or exploding gradients are damped; one learning rate then suits parameters whose "
        "gradient scales differ by orders of magnitude. Every run above uses RMSprop (the "
        f"spec's choice) at lr {c['lr'][0]:g}"
        + (f" with the gradient norm clipped to {c['grad_clip'][0]:g} as a second guard "
           "against explosions" if c["grad_clip"][0] else "") + ".", ""]

    lstm_stats = summary.get("lstm")
    if lstm_stats and grad and "lstm" in grad["norms"]:
        parts += [
            "### Question 1.5(a): the gates", "",
            "g⁽ᵗ⁾ (input modulation, tanh) is the candidate "
            "content: tanh makes it signed and bounded in `(−1, 1)`, zero-centred, so the cell can "
            "be moved up or down without drifting. i⁽ᵗ⁾ (input gate, σ), f⁽ᵗ⁾ (forget gate, σ) and "
            "o⁽ᵗ⁾ (output gate, σ) are soft switches: σ lies in `(0, 1)`, so each multiplies a "
            "signal by a learned, differentiable fraction — how much of g to write, how much of "
            "the old cell to keep, how much of the cell to show in h. Because c⁽ᵗ⁾ = g ⊙ i + "
            "c⁽ᵗ⁻¹⁾ ⊙ f is additive, ∂c⁽ᵗ⁾/∂c⁽ᵗ⁻¹⁾ = diag(f): with f near one (a forget bias of "
            "one starts it at σ(1), about three quarters, and training can raise it) the gradient reaches the first "
            "digit without passing through a squashing nonlinearity and W_hh at every step. "
            + _gate_evidence(summary, grad, m["solved_accuracy"]), ""]

    parts += [
        "### Question 1.5(b): parameters", "",
        "W_gx, W_ix, W_fx, W_ox are n × d, W_gh, W_ih, W_fh, W_oh are n × n, four biases of n, "
        "then W_ph (K × n) and b_p (K): `4(n·d + n² + n) + K·n + K` parameters, independent of "
        "the batch size m and the length T (the same weights serve every sequence and step); the "
        "vanilla RNN has `n·d + n² + n + K·n + K`. Here d = K = 10 and "
        f"n = {n}: "
        + ", ".join(f"{labels[kind]} {params[kind]['formula']:,} (the module counts "
                    f"{params[kind]['count']:,})" for kind in kinds)
        + " (`models.scratch_parameter_count`, tested against the modules).", ""]
    return "\n".join(parts) + "\n"


def _palindrome_run_time(m: dict) -> str:
    """Wall time on a shared machine says little: the CPU time per worker is the time on idle
    cores."""
    workers = m["config"]["workers"]
    load = (m.get("load_average") or {}).get("start")
    if "cpu_seconds" not in m:                 # a run from before CPU time was recorded
        return ""
    return (f"Run time {m['run_seconds'] / 60:.1f} min wall on a machine shared with other jobs"
            + (f" (load average {fmt(load)} at the start)" if load is not None else "")
            + f"; {m['cpu_seconds'] / 60:.1f} min of CPU time over {workers} worker "
            f"process(es), so on {workers} idle core(s) at least "
            f"{m['cpu_seconds_per_worker'] / 60:.1f} min (CPU time ÷ workers; more where a "
            f"worker waits for the other).")


def _gate_evidence(summary: dict, grad: dict, solved: float) -> str:
    """What the measurements say about the LSTM's gates, beside the vanilla RNN."""
    lstm = summary["lstm"]["holds_99_up_to"] or 0
    rnn = (summary["rnn"]["holds_99_up_to"] or 0) if "rnn" in summary else None
    if rnn is None:
        return ""
    ratio = {k: v["trained"] for k, v in grad["first_over_last"].items()}
    verdict = "consistent with this" if lstm > rnn else "not borne out here"
    return (f"Measured: the LSTM holds {pct(solved)} to T = {lstm or '–'}, the vanilla RNN to "
            f"T = {rnn or '–'}, and after training the first step's gradient norm is "
            f"{fmt(ratio['lstm'])} × the last step's for the LSTM against {fmt(ratio['rnn'])} × "
            f"for the RNN at T = {grad['length']}: {verdict}.")


# ---------------------------------------------------------------------------------------------
# spec 002: the digit judge, the next-patch LSTM, the VAE on sevens

def judge_section(out_dir: Path) -> str:
    title = "## Spec 002 · The digit judge (scores generated digits)"
    run = load_run(out_dir, "judge")
    if run is None:
        return f"{title}\n\n" + missing("judge")
    m = run["metrics"]
    t = m["training"]
    trained = (f"trained in {fmt(m['train_seconds'])} s in this run" if m["trained_now"] else
               f"reused from an earlier run of the same code and settings, which trained it in "
               f"{fmt(m['train_seconds'])} s")
    return "\n".join([
        title, "",
        f"A LeNet-style CNN (`feedforward.DigitJudge`, {m['parameters']:,} parameters: two "
        f"convolution + max-pool stages of {m['model']['channels'][0]} and "
        f"{m['model']['channels'][1]} channels, a dense layer of {m['model']['features']} features, "
        f"then the class logits) trained with the shared loop for {m['epochs_run']} epochs on "
        f"{t['n_train']:,} training images ({t['n_val']:,} for validation), cached as `judge.pt` and "
        f"retrained only when its code changes; {trained} on {m['torch_threads']} thread(s) of a "
        f"{m['cores']}-core machine shared with other jobs. Command: {command(run)}.", "",
        table(["test accuracy", "Fréchet, real vs real (floor)", "Fréchet, all-black images vs real",
               "images per side"],
              [[pct(m["test_accuracy"]), m["frechet_real_vs_real"], m["frechet_blank_vs_real"],
                m["frechet_n_per_side"]]]), "",
        "Scores used by the generative experiments: **label agreement** (share of generated images "
        "the judge assigns to the intended class) and the **Fréchet distance** between Gaussians "
        "fitted to the judge's penultimate-layer features of generated and of real test images "
        "(the MNIST analogue of FID), beside the real-vs-real floor: two disjoint halves of the "
        "test set.", ""]) + "\n"


def patches_section(out_dir: Path) -> str:
    title = "## Spec 002 · Problem 1: an LSTM draws the bottom half of a digit"
    run = load_run(out_dir, "patches")
    if run is None:
        return f"{title}\n\n" + missing("patches")
    m = run["metrics"]
    mse, j, d, goal = m["bottom_half_mse"], m["judge"], m["data"], m["targets"]
    names = {"lstm": "LSTM completion (closed loop)", "original": "original test image",
             "nearest_top_half": "bottom of the nearest training image by top half",
             "mean_bottom": "mean training bottom half", "blank_bottom": "blank bottom half"}
    rows = [[names[k], "–" if k == "original" else fmt(mse[k]), pct(j[k]["label_agreement"]),
             fmt(j[k]["frechet_to_real"])] for k in names]
    agree_ok = j["lstm"]["label_agreement"] >= goal["min_lstm_agreement"]
    mse_ok = mse["lstm"] < min(mse["mean_bottom"], mse["nearest_top_half"])
    minutes = m["train_seconds"] / 60
    time_ok = minutes <= goal["max_train_minutes"]
    changes = table(["true digit", "judged as after completion", "images", "share of the class"],
                    [[c["true"], c["becomes"], c["count"], pct(c["share_of_class"])]
                     for c in m["changes"]])
    side = d["patch_side"]
    return "\n".join([
        title, "",
        f"Each image → {d['n_patches']} patches of {side}×{side} pixels (row-major) → a sequence of "
        f"{d['n_patches']} vectors of {m['model']['patch_size']}. `NextPatchLSTM` "
        f"({m['model']['num_layers']} × {m['model']['hidden_size']} LSTM + dense + sigmoid, "
        f"{m['parameters']:,} parameters) predicts patch t+1 from patches 1..t (MSE); early stopping "
        f"on {d['n_val']:,} validation images split from the training images (the spec validates on "
        f"the test set; the test images are kept for these numbers). Best epoch {m['best_epoch']} of "
        f"{m['epochs_run']}, {minutes:.1f} min of training ({fmt(m['seconds_per_epoch'])} s/epoch, "
        f"{m['torch_threads']} thread(s), machine shared with other jobs). Generation: the top "
        f"{d['given_patches']} patches given, then {d['closed_loop_steps']} steps closed loop with "
        f"the carried (h, c) (the spec's equations (3)–(7)). All {d['n_test']:,} test images, judge "
        f"accuracy {pct(j['judge_test_accuracy'])}; Fréchet distances compare the first half's "
        f"images with the real second half ({j['frechet_n_per_side']:,} each; floor, real vs real: "
        f"{fmt(j['frechet_real_vs_real'])}). Command: {command(run)}.", "",
        table(["bottom half from", "bottom-half MSE", "judge agreement with the true label",
               "Fréchet to real"], rows), "",
        f"Targets: judge agreement ≥ {pct(goal['min_lstm_agreement'])} — "
        f"{pct(j['lstm']['label_agreement'])}, {'met' if agree_ok else '**missed**'}; bottom-half "
        f"MSE below both baselines — {fmt(mse['lstm'])} vs {fmt(mse['mean_bottom'])} (mean) and "
        f"{fmt(mse['nearest_top_half'])} (nearest neighbour), {'met' if mse_ok else '**missed**'}; "
        f"training ≤ {goal['max_train_minutes']} min — {minutes:.1f} min, "
        f"{'met' if time_ok else '**missed** (on a machine shared with other jobs)'}. The LSTM's "
        f"bottom halves are blurred averages of the plausible strokes, so their Fréchet distance is "
        f"larger than the nearest neighbour's real strokes even where the digit is right.", "",
        "Digits the completion changes most often (among test images whose original the judge "
        "reads correctly; full table in `patches/confusion.csv`):", "", changes, "",
        image(run, "generated.png", out_dir, "completions, one row per digit"), "",
        image(run, "originals.png", out_dir, "the originals"), "",
        image(run, "loss.png", out_dir, "next-patch loss"), ""]) + "\n"


def sevens_objective(config: dict) -> str:
    """The loss a sevens run trained on, in words (runs before --objective were β-VAEs)."""
    if config.get("objective", "beta-vae") == "beta-tcvae":
        return (f"summed BCE + KL + (β − 1) · TC, a β-TCVAE with β = {config['tc_weight']:g} "
                f"(TC: the code's total correlation, minibatch-weighted estimate)")
    return f"summed BCE + β · KL, a β-VAE with β = {config['kl_weight']:g}"


def restarts_cell(m: dict) -> str:
    """'seed 1; 2 of 3' for a run with restarts: the kept initialisation and how many of them
    meet the target on their own."""
    restarts = m.get("restarts") or []
    if len(restarts) < 2:
        return "–"
    meeting = sum(r.get("meets_target", False) for r in restarts)
    return f"seed {m['kept_seed']}; {meeting} of {len(restarts)}"


def sevens_verdict(m: dict) -> str:
    """The target cell; an effect that is already a main direction of plain sevens' variation is
    outside the issue's menu, and said so beside its miss."""
    if m["meets_target"]:
        return "met"
    if m.get("main_variation"):
        return "missed (outside the menu: a main direction of plain sevens)"
    return "**missed**"


def sevens_section(out_dir: Path) -> str:
    from vae_sevens import EFFECTS

    title = "## Spec 002 · Problem 2: a VAE finds the effect hidden in the sevens"
    runs = [(effect, load_run(out_dir, f"sevens/{effect}")) for effect in EFFECTS]
    done = [(effect, run) for effect, run in runs if run]
    if not done:
        return f"{title}\n\n" + missing(f"sevens/{EFFECTS[0]}")
    first = done[0][1]["metrics"]
    goal = first["targets"]
    rows = []
    for effect, run in done:
        m = run["metrics"]
        r = m["pearson_r"]
        rows.append([f"`{effect}`", m["latent_dim"],
                     ", ".join(f"{'+' if v >= 0 else ''}{fmt(v)}" for v in r),
                     f"z{m['named_dimension']}", fmt(m["named_abs_r"]), fmt(m["max_other_abs_r"]),
                     sevens_verdict(m), fmt(m["pca_best_abs_r"]),
                     fmt(m.get("all_dims_r")), fmt(m.get("probe_r")),
                     pct(m["plain_variation_share"]) if "plain_variation_share" in m else "–",
                     fmt(m.get("effect_direction_r")), restarts_cell(m),
                     fmt(m["test_neg_elbo"]), f"{m['train_seconds'] / 60:.1f}"])
    parts = [
        title, "",
        f"The spec's `tr7.pkl`/`te7.pkl` are not public, so the task is recreated: MNIST's "
        f"{first['n_sevens_train']:,} training and {first['n_test']:,} test sevens get a "
        f"hidden effect of a random strength s, uniform between none and full, per image (saved in "
        f"`strengths.csv`). A VAE (`feedforward.VAE`, encoder "
        f"{' → '.join(str(v) for v in first['model']['sizes'])} → K, mirrored decoder; loss = "
        f"{sevens_objective(first['config'])}) is trained with the shared loop from "
        f"{first['config'].get('restarts', 1)} initialisations, and the one with the lowest "
        f"validation objective is kept (no strength used to choose); the script names the latent "
        f"dimension whose posterior mean correlates most with s on the test sevens. Target: |r| ≥ {fmt(goal['min_named_abs_r'])} for the named dimension and no "
        f"other above {fmt(goal['max_other_abs_r'])}, ≤ {goal['max_train_minutes']} min per effect "
        f"(times on a machine shared with other jobs). Baseline: the best |r| of the first K "
        f"principal components (linear, same code size). Two more columns say where a miss comes "
        f"from: r of s with the least-squares combination of all K posterior means (fitted on the "
        f"training sevens; where it is high and \\|r\\| named is low, the code holds the effect "
        f"on a slant across its axes), and with a small CNN regressor trained on the training sevens' "
        f"known strengths (supervised: how much of s the images carry). One seed each; the README "
        f"shows how much the named \\|r\\| moves between seeds.", "",
        f"**Which effects the issue's menu holds.** It asks for effects that are not already a "
        f"main direction of variation in plain sevens. Measured per effect: the share of its "
        f"pixel change (at full strength, over the plain training sevens) that lies in the plain "
        f"sevens' first K principal directions (a random direction: K/784 of it; above "
        f"{100 * goal.get('max_plain_variation_share', 0.15):g} % it counts as one of them), and the "
        f"\\|r\\| of s with the test sevens' projection on the effect's mean pixel change — one "
        f"fixed axis chosen knowing the answer: where even it stays below the target, the sevens' "
        f"own variation along that axis drowns s.", "",
        table(["effect", "K", "Pearson r per dimension", "named", "\\|r\\| named",
               "largest other \\|r\\|", "target", "PCA best \\|r\\|", "all K dims, linear r",
               "supervised CNN r", "change in plain sevens' first K directions",
               "effect's own direction \\|r\\|", "restarts: kept seed, how many meet the target",
               "test −ELBO (nats)", "train min (all restarts)"], rows), ""]
    measured = [(effect, run["metrics"]) for effect, run in done if "main_variation" in run["metrics"]]
    menu = [(effect, m) for effect, m in measured if not m["main_variation"]]
    outside = [effect for effect, m in measured if m["main_variation"]]
    if measured:
        parts += [
            f"The menu (effects outside plain sevens' main directions): "
            f"{', '.join(f'`{e}`' for e, _ in menu) or 'none'} — "
            f"{sum(m['meets_target'] for _, m in menu)} of {len(menu)} meet the target. "
            + (f"Outside it, kept as harder options: {', '.join(f'`{e}`' for e in outside)} "
               f"(they change the strokes the way sevens already differ; the VAE's {first['latent_dim']}-number code "
               f"spends itself on the sevens' own variation)." if outside else ""), ""]
    for effect, run in done:
        parts += [f"**`{effect}`** — command: {command(run)}.", "",
                  image(run, "effect.png", out_dir, f"the {effect} effect"), "",
                  image(run, "traversals.png", out_dir, f"traversals, {effect}"), "",
                  image(run, "correlation.png", out_dir, f"latent means vs strength, {effect}"), ""]
    return "\n".join(parts) + "\n"


def autoencoders_section(out_dir: Path) -> str:
    title = "## Autoencoders and a VAE on MNIST (spec 004, tasks 1–2)"
    run = load_run(out_dir, "autoencoders")
    if run is None:
        return f"{title}\n\n" + missing("autoencoders")
    m = run["metrics"]
    c, base, d = m["config"], m["baselines"], m["data"]
    kinds = [k for k in ("compression", "denoising", "sparse", "vae") if k in m]
    z = c["code_size"]
    parts = [title, "", (
        f"**Setup.** {d['n_train']:,} training and {d['n_val']:,} validation images (the MNIST "
        f"task's split), {d['n_test']:,} test images for the numbers below; pixels in [0, 1]. "
        f"Autoencoders 784-128-{z}-128-784, sigmoid on every layer, MSE, {c['optimizer']} lr "
        f"{c['lr'][0]:g} ({c['lr_schedule']}), {c['epochs']} epochs, batch {c['batch_size']}; "
        f"denoising input x + N(0, {c['noise_std']:g}²); sparse: + {c['sparsity_weight']:g} × "
        f"Σ KL(ρ ‖ ρ̂_j), ρ = {c['sparsity']:g}"
        f"{warmup_text(c.get('sparsity_warmup', 0))}. VAE 784-128-64-({c['latent_dim']} μ, "
        f"{c['latent_dim']} log σ²), ReLU, sigmoid output, loss = mean pixel BCE + "
        f"{c['kl_weight']:g} × KL, lr {c['vae_lr']:g}, {c['vae_epochs']} epochs, batch "
        f"{c['vae_batch_size']}. Every model is tested from its best-validation checkpoint. "
        f"Baselines fitted on the training images: the mean image and PCA with the same code "
        f"size. Command: {command(run)}."), ""]
    rows = []
    for kind in kinds:
        r = m[kind]
        pca = base[f"pca_{c['latent_dim'] if kind == 'vae' else z}"]
        note = {"denoising": "from noisy input",
                "vae": f"decoded μ; −ELBO {fmt(r.get('test_neg_elbo'))} nats/image",
                "sparse": f"code mean activation {fmt(r.get('code_mean_activation'))}",
                "compression": f"code mean activation {fmt(r.get('code_mean_activation'))}"}[kind]
        rows.append([kind, r["test_mse"], f"PCA-{pca['components']}: {pca_mse(pca)}",
                     fmt(r["mse_vs_pca"]), fmt(r["mse_vs_mean_image"]), note,
                     fmt(r["seconds_per_epoch"]), r["epochs_run"]])
    rows.append(["mean training image", base["mean_image"]["test_mse"], "–", "–", "1", "", "–", "–"])
    if "denoising" in kinds:
        rows.append(["noisy input itself", base["noisy_input"]["test_mse"], "–", "–", "–",
                     f"PCA-{z} of the noisy input: {fmt(base['pca_denoising']['test_mse'])}",
                     "–", "–"])
    parts += [table(["model", "test MSE", "PCA, same code size", "÷ PCA", "÷ mean image",
                     "", "s / epoch", "epochs"], rows), ""]
    t = m["targets"]
    lines = []
    if "denoising" in kinds:
        ratio = m["denoising"]["test_mse"] / base["noisy_input"]["test_mse"]
        lines.append(f"- Denoising: output MSE {fmt(ratio)} × the noisy input's (target ≤ ⅓: "
                     f"{'met' if t['denoised_mse_at_most_third_of_noisy'] else 'missed'}).")
    if "sparse" in kinds:
        s_ = m["sparse"]
        line = (f"- Sparse: code mean activation {fmt(s_['code_mean_activation'])} for ρ = "
                f"{c['sparsity']:g} (target within 2×: "
                f"{'met' if t['sparse_activation_within_2x_of_rho'] else 'missed'}); "
                f"{pct(s_['code_fraction_below_0.05'])} of code activations below 0.05")
        if "compression" in kinds:
            line += (f" (compression AE: {pct(m['compression']['code_fraction_below_0.05'])}); "
                     f"MSE {fmt(s_['test_mse'] / m['compression']['test_mse'])} × the "
                     f"compression AE's (target ≤ 1.5: "
                     f"{'met' if t['sparse_mse_within_1.5x_of_compression'] else 'missed'})")
        lines.append(line + ".")
    if "vae" in kinds:
        v = m["vae"]
        lines.append(f"- VAE: test negative ELBO {fmt(v['test_neg_elbo'])} nats per image "
                     f"(reconstruction {fmt(v['test_bce'])} + KL {fmt(v['test_kl'])}, one "
                     f"sample z ~ q(z|x) per image); the mean image as a Bernoulli model scores "
                     f"{fmt(base['mean_image']['test_bce'])} nats per image.")
        if "judge" in v:
            lines.append(vae_judge_text(v["judge"], c["latent_dim"],
                                        t.get("vae_samples_judged_confidently"),
                                        t.get("vae_mixture_samples_judged_confidently")))
    total = sum(m[k]["train_seconds"] for k in kinds)
    lines.append(f"- Training time of the {len(kinds)} kinds: {total / 60:.1f} min (the epochs' "
                 f"times in history.csv; torch threads: {m['torch_threads']}, {m['cpu']}, "
                 f"{m['cores']} cores shared with other jobs; target ≤ 15 min on 2 cores: "
                 f"{'met' if total <= 900 else 'missed'}).")
    parts += lines + [""]
    for name, alt in (("reconstructions.png", "test digits and each kind's reconstruction"),
                      ("denoising.png", "denoising"), ("sparse_codes.png", "code activations"),
                      ("vae_samples.png", "VAE samples"),
                      ("vae_samples_mixture.png", "VAE samples from the posterior mixture"),
                      ("vae_interpolation.png", "latent vs pixel interpolation"),
                      ("loss.png", "training curves")):
        parts += [image(run, name, out_dir, alt), ""]
    return "\n".join(parts) + "\n"


def warmup_text(epochs: int) -> str:
    return (f", the weight ramped up linearly over the first {epochs} epochs" if epochs else
            ", the weight constant from the first epoch")


def vae_judge_text(judged: dict, latent_dim: int, met: bool | None,
                   mixture_met: bool | None = None) -> str:
    """The digit judge's reading of the VAE's samples (from the prior and from the mixture over
    μ(x)) beside the PCA Gaussian and real digits: a sentence and a small table."""
    names = {"vae_prior_samples": f"VAE samples, z ~ N(0, I) ({latent_dim} dimensions; the spec's)",
             "vae_mixture_samples": f"VAE samples, z from a {judged.get('mixture_components')}-"
                                    f"component Gaussian mixture fitted to the training images' μ(x)",
             "vae_test_reconstructions": "VAE reconstructions of the real test digits below "
                                         "(decoded μ: the best its decoder draws)",
             "pca_gaussian_samples": f"PCA-{latent_dim} Gaussian samples (coefficients ~ N(0, "
                                     f"training variance))",
             "real_test_digits": "real test digits (one half; its distance is the floor)"}
    rows = []
    for key, name in names.items():
        if key not in judged:
            continue
        r = judged[key]
        shares = r["digit_shares"]
        rows.append([name, f"{r['n_images']:,}", pct(r["confident_share"]),
                     fmt(r["mean_top_probability"]), fmt(r["frechet_to_real"]),
                     f"{pct(min(shares))} ({shares.index(min(shares))}) – "
                     f"{pct(max(shares))} ({shares.index(max(shares))})"])
    goal = judged.get("confident_share_target")

    def verdict(flag):
        return "" if flag is None or goal is None else f" (target ≥ {pct(goal)}: {'met' if flag else 'missed'})"

    mixture = ""
    if "vae_mixture_samples" in judged:
        mixture = (f", and {pct(judged['vae_mixture_samples']['confident_share'])} of the samples "
                   f"from the {judged.get('mixture_components')}-component mixture over the "
                   f"training images' μ(x){verdict(mixture_met)}")
    return (f"- VAE samples as the digit judge ({pct(judged['judge_test_accuracy'])} test "
            f"accuracy) reads them: {pct(judged['vae_prior_samples']['confident_share'])} of the "
            f"prior samples get a top class probability ≥ {judged['confident_threshold']:g}"
            f"{verdict(met)}{mixture}. Fréchet distances in the judge's feature space, each against the same "
            f"{judged['real_test_digits']['n_images']:,} other real test digits:\n\n"
            + table(["images", "n", f"judge p ≥ {judged['confident_threshold']:g}",
                     "mean top p", "Fréchet to real", "rarest – commonest judged digit"], rows)
            + "\n")


def gradient_note(m: dict) -> str:
    """Which gradient the maps ran, and torch.compile's one-off time where it compiled."""
    used = {r.get("gradient", m["config"]["gradient"]) for r in m["maps"]}
    compiled = m.get("compile_seconds", 0.0)
    note = f" Gradient: {', '.join(sorted(used))}"
    if m["config"]["gradient"] not in used:
        note += f" (`--gradient {m['config']['gradient']}` could not compile on this machine)"
    if compiled:
        note += (f"; torch.compile took {fmt(compiled)} s in all before the iterations (not in "
                 f"the seconds below)")
    return note + "."


def tsne_section(out_dir: Path) -> str:
    title = "## t-SNE of MNIST in PyTorch (spec 004, task 3)"
    run = load_run(out_dir, "tsne")
    if run is None:
        return f"{title}\n\n" + missing("tsne")
    m = run["metrics"]
    c = m["config"]
    aff = m["affinities"]
    parts = [title, "", (
        f"**Setup.** The first {m['data']['n_images']:,} MNIST training images (pixels in [0, 1]), "
        f"{c['iterations']} iterations per map from the same seed, "
        f"{c['dtype']} map iterations, P in float64. The spec's settings: one σ = "
        f"{c['sigma']:g} for every point, plain gradient descent (lr 10) and Adam (lr 0.1), "
        f"y ~ N(0, I). Beyond the spec, each row adds one option to the row above it: σ_i "
        f"calibrated to perplexity {c['perplexity']:g}, the map initialised by the 2-D PCA, "
        f"early exaggeration {c['exaggeration']:g} for {c['exaggeration_iters']} iterations, "
        f"momentum {c['momentum']:g} (learning rate × {1 - c['momentum']:.2g}). Trustworthiness "
        f"(k = 10) and leave-one-out 10-NN digit accuracy in 2-D; scikit-learn's TSNE "
        f"(defaults) and a 2-D PCA on the same images as references. Command: {command(run)}."
        + gradient_note(m))]
    if "sigma" in aff and "perplexity" in aff:
        parts += ["", f"With σ = {c['sigma']:g} every point's neighbour distribution has perplexity "
                      f"{fmt(aff['sigma']['perplexity_median'])} (median) among "
                      f"{m['data']['n_images']} points (at most the N − 1 others), so P is nearly "
                      f"uniform; the "
                      f"calibrated σ_i range from {fmt(aff['perplexity']['sigma_range'][0])} to "
                      f"{fmt(aff['perplexity']['sigma_range'][1])}."]
    rows = [[r["name"], fmt(r["final_kl"], 4), fmt(r["trustworthiness"], 4),
             pct(r["knn_accuracy"]), fmt(r["seconds"]), fmt(r["iterations_per_second"])]
            for r in m["maps"]]
    rows += [[r["name"], fmt(r.get("kl"), 4), fmt(r["trustworthiness"], 4), pct(r["knn_accuracy"]),
              fmt(r.get("seconds")), "–"] for r in m["references"]]
    parts += ["", table(["map", "final KL (own P)", "trustworthiness", "10-NN accuracy", "seconds",
                         "iterations / s"], rows), "",
              f"10-NN accuracy in the original 784 dimensions: {pct(m['knn_accuracy_784d'])}."]
    if "target" in m:
        g = m["target"]
        parts += ["", f"Target (calibrated map within 0.01 of scikit-learn's trustworthiness and "
                      f"kNN accuracy): best calibrated map *{g['best_calibrated_map']}*, "
                      f"trustworthiness {g['trustworthiness_gap']:+.4f} and kNN accuracy "
                      f"{100 * g['knn_accuracy_gap']:+.2f} points against scikit-learn: "
                      f"**{'met' if g['met'] else 'missed'}**."]
    parts += ["", image(run, "kl.png", out_dir, "KL against iteration"), "",
              image(run, "maps.png", out_dir, "2-D maps coloured by digit"), "",
              "Speed against scikit-learn's exact t-SNE and with the number of images: "
              "[tsne-performance.md](tsne-performance.md) (`python -m bench --tsne`)."]
    return "\n".join(parts) + "\n"


def _gan_setup(m: dict) -> str:
    c = m["config"]
    projection = (", plus the projection term ⟨P c, h⟩ on its last hidden layer h (Miyato & "
                  "Koyama 2018), without which the label agreement stayed at chance (≈ 10 %) "
                  "over the first two epochs in development runs (README)" if c.get("projection") else ", the condition only concatenated "
                  "to its input (`--no-projection`)")
    return (f"Generator {c['noise_dim']}+{'10' if m['condition'] == 'label' else '100'}-"
            f"{'-'.join(map(str, c['g_hidden']))}-784 (batch norm + ReLU, tanh output: pixels in "
            f"[−1, 1]); discriminator 784+{'10' if m['condition'] == 'label' else '100'}-"
            f"{'-'.join(map(str, c['d_hidden']))}-1 (LeakyReLU 0.2, dropout {c['d_dropout']:g}, "
            f"logistic output{projection}); Adam (β1 {c['beta1']:g}) with learning rates {c['lr'][0]:g} (G) and "
            f"{c['d_lr']:g} (D), batch {c['batch_size']}, real-pair target {c['real_label']:g} "
            f"(one-sided label smoothing), {m.get('epochs_run', c['epochs'])} epochs on "
            f"{m['n_train']:,} training images, {m['torch_threads']} thread(s) of a {m['cores']}-core "
            f"machine shared with other jobs (times are contended)")


def cgan_section(out_dir: Path) -> str:
    title = "## Spec 002 · Problem 3: a conditional GAN draws the digit you ask for"
    run = load_run(out_dir, "cgan")
    if run is None:
        return f"{title}\n\n" + missing("cgan")
    m = run["metrics"]
    base = m["baselines"]
    minutes = run["stamp"].get("seconds", m["run_seconds"]) / 60
    agree_ok = m["judge_agreement"] >= 0.95
    rows = [["conditional GAN (fresh noise)", pct(m["judge_agreement"]), m["frechet"], m["gen_std"]],
            ["class-mean training image, repeated", pct(base["class_mean_images"]["judge_agreement"]),
             base["class_mean_images"]["frechet"], base["class_mean_images"]["gen_std"]],
            ["real test digits (the floor)", pct(base["real_test_digits"]["judge_agreement"]),
             base["real_test_digits"]["frechet"], "–"],
            ["chance", pct(base["chance"]), "–", "–"]]
    return "\n".join([
        title, "",
        f"The label as a one-hot vector, concatenated to the noise (generator) and to the image "
        f"(discriminator); every fake batch class-balanced, its one-hot appended again for the "
        f"discriminator. {_gan_setup(m)}. Scores: the digit judge's label agreement of "
        f"{m['n_generated']:,} generated digits ({m['n_generated'] // 10:,} per class) with the "
        f"label they were asked for, and the Fréchet distance of the first "
        f"{m['n_generated'] // 2:,} of them to {m['frechet_n_per_side']:,} real test digits in the "
        f"judge's feature space, beside two disjoint halves of the real test set (the judge: "
        f"{pct(m['judge']['test_accuracy'])} test accuracy). Command: {command(run)}.", "",
        table(["images", "judge agreement with the label", "Fréchet to real test digits",
               "per-pixel std across samples"], rows), "",
        f"Targets: label agreement ≥ 95 % (aim 98 %) — {pct(m['judge_agreement'])}, "
        f"{'met' if agree_ok else '**missed**'}; Fréchet distance {fmt(m['frechet'])}, "
        f"{fmt(m['frechet_vs_floor'])} × the real-vs-real floor ({fmt(m['frechet_real_vs_real'])}) "
        f"and below the class-mean images' {fmt(base['class_mean_images']['frechet'])} (which the "
        f"judge labels almost perfectly: agreement alone does not show diversity); default run "
        f"≤ 10 min on 2 cores — {minutes:.1f} min in all ({fmt(m['seconds_per_epoch'])} s per epoch, "
        f"judge scoring included), {'met' if minutes <= 10 else '**missed**'} on this shared "
        f"machine.", "",
        image(run, "samples.png", out_dir, "10 generated digits per class"), "",
        image(run, "accuracy.png", out_dir, "discriminator accuracy on real and fake examples"), "",
        image(run, "judge.png", out_dir, "judge agreement and Fréchet distance per epoch"), "",
        image(run, "losses.png", out_dir, "GAN losses"), ""]) + "\n"


def imputation_section(out_dir: Path) -> str:
    title = "## Spec 002 · Problem 4: the same GAN imputes a digit around its known centre"
    run = load_run(out_dir, "imputation")
    if run is None:
        return f"{title}\n\n" + missing("imputation")
    m = run["metrics"]
    names = {"mean_image_true_centre": "mean training image around the true centre",
             "nearest_centre_training_image": "training image with the nearest centre",
             "random_training_image": "a random training image (ignores the centre)"}
    rows = [[f"GAN, λ = {name}", r["centre_mse"], r["surround_mse"], pct(r["judge_agreement"]),
             r["epochs_run"]] for name, r in m["lambda"].items()]
    rows += [[names[k], r["centre_mse"], r["surround_mse"], pct(r["judge_agreement"]), "–"]
             for k, r in m["baselines"].items()]
    parts = [title, "",
             f"Condition = the centre 10×10 pixels, flattened (100 values): {m['centre_pixels']}. "
             f"Generator loss = adversarial loss + λ × MSE(centre of the generated image, "
             f"condition) (`--centre-weight`, MSE in the generator's [−1, 1] units). "
             f"{_gan_setup(m)}. Scored on {m['n_test']:,} test images, one imputation each (MSE in "
             f"{m['mse_units']}; judge agreement = the judge reads the imputed image as the true "
             f"digit). Command: {command(run)}.", "",
             table(["imputation", "centre MSE (given pixels)", "surround MSE (missing pixels)",
                    "judge agreement with the true digit", "epochs"], rows), ""]
    strong = m["lambda"].get("10")
    zero = m["lambda"].get("0")
    mean = m["baselines"]["mean_image_true_centre"]
    rand = m["baselines"]["random_training_image"]
    if strong:
        ok = strong["centre_mse"] <= 0.01 and strong["judge_agreement"] > mean["judge_agreement"] + 0.05
        parts.append(
            f"Targets: with λ = 10, centre MSE ≤ 0.01 — {fmt(strong['centre_mse'])}; judge agreement "
            f"clearly above the mean-image baseline's — {pct(strong['judge_agreement'])} vs "
            f"{pct(mean['judge_agreement'])}: {'met' if ok else '**missed**'}.")
    if zero:
        ignored = zero["centre_mse"] > 0.5 * rand["centre_mse"]
        verdict = ("draws digits that ignore the given centre, as the spec found" if ignored else
                   "does **not** reproduce the spec's failure here: it keeps much of the given "
                   "centre even without the MSE term")
        parts.append(
            f"With λ = 0 (the spec's failure) the generator {verdict}: centre MSE "
            f"{fmt(zero['centre_mse'])} against {fmt(rand['centre_mse'])} for a random training "
            f"image (which ignores the centre) and {fmt(strong['centre_mse']) if strong else '–'} "
            f"with λ = 10; judge agreement {pct(zero['judge_agreement'])} against "
            f"{pct(rand['judge_agreement'])} for a random image.")
    near = m["baselines"]["nearest_centre_training_image"]
    best = max(m["lambda"].values(), key=lambda r: r["judge_agreement"])
    if near["judge_agreement"] > best["judge_agreement"]:
        parts.append(
            f"The training image with the nearest centre is read as the true digit more often "
            f"({pct(near['judge_agreement'])}) than any GAN imputation (best "
            f"{pct(best['judge_agreement'])}), at a similar surround MSE: after "
            f"{best['epochs_run']} epochs this small GAN draws less legible strokes than a real "
            f"digit.")
    parts.append("")
    for name in m["lambda"]:
        parts += [image(run, f"imputation_lambda_{name}.png", out_dir,
                        f"imputations with lambda {name}"), ""]
    parts += [image(run, "training.png", out_dir, "per-epoch training curves for each lambda"), ""]
    return "\n".join(parts) + "\n"


def code_size_runs(out_dir: Path, task: str) -> list[dict]:
    """The finished ``<task>/code-K`` runs (make_report's code-size sweeps), smallest K first."""
    runs = [load_run(out_dir, f"{task}/{d.name}") for d in (out_dir / task).glob("code-*")
            if d.name[5:].isdigit()]
    return sorted((r for r in runs if r), key=lambda r: r["metrics"]["config"]["code_size"])


LSTM_STYLE, DENSE_STYLE = {"color": "C0"}, {"color": "C1"}
PCA_STYLE = {"color": "0.35"}
FULL_STYLE = {"color": "C0", "markersize": 13, "markerfacecolor": "white", "markeredgewidth": 2}


def pca_point(pca: dict) -> float | None:
    """A PCA error for the log-scale figure; None (drawn at the bottom edge) where it is exact."""
    return None if pca.get("exact") else pca["test_mse"]


def code_size_section(out_dir: Path) -> str:
    """Reconstruction vs code size: each LSTM AE beside PCA (and the dense AE) with the same k."""
    title = "## Reconstruction vs code size: every autoencoder beside PCA with the same code"
    sweeps = {task: code_size_runs(out_dir, task) for task in ("mnist", "toy", "snp500")}
    full = load_run(out_dir, "mnist/code-32-full")
    if not any(sweeps.values()):
        return f"{title}\n\n" + missing("mnist/code-32")
    parts = [title, "", (
        "PCA with k components, fitted on the training split in the normalisation the model sees, "
        "is the best *linear* code of k numbers; an autoencoder with a k-number code has to beat "
        "it to have learned anything a linear map could not. Each point is a separate run of the "
        "task's script with `--code-size K` (a learned linear map from the encoder's final state "
        "to the K numbers of z, which are all the decoder receives); the other settings and the "
        "epochs are the same at every K (so a point costs what the task's run costs; the MNIST "
        "points train F_fc only, on fewer images and epochs than the MNIST section's run; F_conv "
        "is compared with F_fc at equal cost in its own section above). Test MSE in the "
        "units of each task's models.")]
    panels, rows = [], []
    for task, runs in sweeps.items():
        if not runs:
            continue
        ks = [r["metrics"]["config"]["code_size"] for r in runs]
        if task == "mnist":
            lstm = [r["metrics"]["F_fc"] for r in runs]
            dense = [r["metrics"]["baselines"]["dense_ae"] for r in runs]
            curves = [("F_fc (LSTM AE), sweep", ks, [x["test_mse"] for x in lstm], LSTM_STYLE),
                      ("dense AE 784-128-k, sweep", ks, [x["test_mse"] for x in dense],
                       DENSE_STYLE),
                      ("PCA-k", ks, [pca_point(x["pca"]) for x in lstm], PCA_STYLE)]
            label, units = "MNIST rows (28 steps of 28 pixels)", "test MSE (pixel values in [0, 1])"
            for k, x, d in zip(ks, lstm, dense):
                rows.append([label, k, x["test_mse"], pca_mse(x["pca"]), fmt(x["mse_vs_pca"]),
                             d["test_mse"], pct(x["test_accuracy"])])
            if full:
                fm = full["metrics"]
                k = fm["config"]["code_size"]
                curves += [("F_fc, full budget", [k], [fm["F_fc"]["test_mse"]], FULL_STYLE),
                           ("dense AE, full budget", [k], [fm["baselines"]["dense_ae"]["test_mse"]],
                            {**FULL_STYLE, "color": DENSE_STYLE["color"]})]
                rows.append([f"{label}, full budget", k, fm["F_fc"]["test_mse"],
                             pca_mse(fm["F_fc"]["pca"]), fmt(fm["F_fc"]["mse_vs_pca"]),
                             fm["baselines"]["dense_ae"]["test_mse"], pct(fm["F_fc"]["test_accuracy"])])
        else:
            recon = ([r["metrics"] for r in runs] if task == "toy"
                     else [r["metrics"]["reconstruction"] for r in runs])
            mse = [x["test_mse"] if task == "toy" else x["test"]["mse"] for x in recon]
            curves = [("LSTM AE", ks, mse, LSTM_STYLE),
                      ("PCA-k", ks, [pca_point(x["pca"]) for x in recon], PCA_STYLE)]
            if task == "toy":
                signal = runs[0]["metrics"]["config"]["signal"]
                label = f"toy `{signal}` signals"
                units = "test MSE (normalised units)"
            else:
                label, units = "S&P price windows", "test MSE (normalised units)"
            for k, x, e in zip(ks, recon, mse):
                ratio = x.get("mse_vs_pca")          # toy runs store it; S&P: the verdict
                verdict = ("above (PCA exact)" if x["pca"].get("exact") else
                           "below" if e < x["pca"]["test_mse"] else "above")
                rows.append([label, k, e, pca_mse(x["pca"]), fmt(ratio) if ratio else verdict,
                             "–", "–"])
        panels.append({"title": label.replace("`", "'"), "ylabel": units, "curves": curves})
    figure_path = out_dir / "reconstruction_vs_code_size.png"
    plot_code_size_curves(panels, figure_path, title="Test reconstruction error vs code size: "
                                                      "LSTM autoencoders, PCA and a dense AE")
    parts += ["", table(["task", "k", "LSTM AE test MSE", "PCA-k", "LSTM ÷ PCA", "dense AE (k)",
                         "accuracy"], rows), "",
              f"![reconstruction vs code size]({figure_path.relative_to(out_dir).as_posix()})", ""]
    for task, runs in sweeps.items():
        if runs:
            seconds = sum(r["stamp"].get("seconds", 0) for r in runs)
            parts.append(f"- {task}: {len(runs)} runs, {seconds / 60:.1f} min in all; for example "
                         f"{command(runs[0])}.")
    if full:
        fm, c = full["metrics"], full["metrics"]["config"]
        f, dense = fm["F_fc"], fm["baselines"]["dense_ae"]
        images = (f"{c['train_size']:,} training images" if c["train_size"] else
                  "all training images")
        verdict = "below" if f["test_mse"] < f["pca"]["test_mse"] else "**above**"
        parts += ["", (
            f"**At the MNIST section's budget** (the hollow circles: {images}, {c['epochs']} "
            f"epochs, hidden {c['hidden_size'][0]}): F_fc with a "
            f"{f['z_size']}-number code reaches test MSE {fmt(f['test_mse'])} and "
            f"{pct(f['test_accuracy'])} accuracy, {verdict} PCA-{f['pca']['components']}'s "
            f"{pca_mse(f['pca'])} ({fmt(f['mse_vs_pca'])} × PCA's MSE); the dense AE with the same "
            f"code, trained as long in the same run, reaches {fmt(dense['test_mse'])}. So at this "
            f"k the sweep's F_fc point shows the sweep's short training, not the architecture's "
            f"limit. Command: {command(full)}.")]
    return "\n".join(parts) + "\n"


# ---------------------------------------------------------------------------------------------
# F_fc vs F_conv at equal compute

FRONTIER_COST_LIMIT = 1.5      # issue 18: F_conv's targets hold at ≤ 1.5 × F_fc's default s/epoch
FRONTIER_ACCURACY_TARGET = 0.985


def class_weight(metrics: dict, arch: str) -> float:
    """The class-loss weight w an MNIST run trained ``arch`` with (runs before per-cell defaults
    kept one w, in their config)."""
    return metrics[arch].get("class_weight", metrics["config"]["class_weight"])


def frontier_points(out_dir: Path) -> list[dict]:
    """Every trained LSTM AE at the MNIST section's budget: the "mnist" run's two and the
    ``mnist/frontier/*`` runs, each {arch, label, run, default, r (its metrics entry)}."""
    runs = [load_run(out_dir, "mnist")] + [load_run(out_dir, f"mnist/frontier/{d.name}")
                                           for d in sorted((out_dir / "mnist" / "frontier").glob("*"))
                                           if d.is_dir()]
    points = []
    base = runs[0]["metrics"] if runs[0] else {}
    for run in filter(None, runs):
        for arch in ("F_fc", "F_conv"):
            if arch not in run["metrics"]:
                continue
            weight = class_weight(run["metrics"], arch)
            r = dict(run["metrics"][arch])
            fastest = fastest_epoch_seconds(run, arch)
            if fastest is not None:      # other load only ever slows an epoch
                r.update(mean_seconds_per_epoch=r["seconds_per_epoch"], seconds_per_epoch=fastest)
            model = r["model"]
            if arch == "F_fc":
                label = f"H={model['hidden_size']}"
            else:
                label = f"C={model['channels']} k={model['kernel_size']}"   # series: the design
            series = arch
            if arch == "F_conv" and not model["bidirectional"]:
                series = "F_conv, forward encoder"
            elif arch == "F_conv" and narrow_z_kernel(model):
                series = "F_conv, narrow z kernel"
            if arch in base and weight != class_weight(base, arch):
                series += f", class weight {weight:g}"
            points.append({"arch": arch, "label": label, "run": run, "r": r,
                           "default": run["name"] == "mnist", "series": series})
    return points


def narrow_z_kernel(model: dict) -> bool:
    """Whether an F_conv's decoder reads z through its recurrence's own kernel (the plain
    ConvLSTM decoder; runs before ``--z-kernel-size`` existed had no other)."""
    return (model.get("z_kernel_size") or model["kernel_size"]) == model["kernel_size"]


def plain_number(value: float, _position=None) -> str:
    """A log-axis tick as people write it: 0.005, 20, 5k, 1M."""
    if value >= 1e6:
        return f"{value / 1e6:g}M"
    if value >= 1e3:
        return f"{value / 1e3:g}k"
    return f"{value:g}"


def plot_frontier(points: list[dict], dense_mse: float, fc_default_seconds: float, path: Path,
                  *, title: str) -> None:
    """2 × 2: test accuracy (top) and test MSE (bottom) against seconds per epoch (left) and
    parameters (right), one marker series per architecture, each point named, one legend
    (below the panels) for all four. Lines: the 98.5 % and dense-AE targets, and 1.5 × F_fc's
    default cost."""
    styles = {"F_fc": ("o", COLORS[0]), "F_conv": ("s", COLORS[1]),
              "F_conv, forward encoder": ("^", COLORS[2]),
              "F_conv, narrow z kernel": ("v", COLORS[3])}
    for extra, color in zip(sorted({p["series"] for p in points} - set(styles)), COLORS[4:]):
        styles[extra] = ("D", color)              # a variant of the loss: a point, not a curve
    fig, axes = figure(3, 2, width=14, row_height=3.8, gridspec_kw={"height_ratios": (5, 5, 1)})
    with plt.rc_context(STYLE):
        for col, (key, xlabel) in enumerate([("seconds_per_epoch", "fastest training epoch (s, "
                                              "one CPU thread)"), ("parameters", "parameters")]):
            for row, (metric, ylabel) in enumerate([("test_accuracy", "test accuracy (%)"),
                                                    ("test_mse", "test MSE (pixel values in [0, 1])")]):
                ax = axes[2 * row + col]
                for series, (marker, color) in styles.items():
                    chosen = sorted((p for p in points if p["series"] == series),
                                    key=lambda p: p["r"][key])
                    if not chosen:
                        continue
                    xs = [p["r"][key] for p in chosen]
                    ys = [p["r"][metric] * (100 if metric == "test_accuracy" else 1) for p in chosen]
                    curve = series in ("F_fc", "F_conv")     # sizes of one design: a curve
                    ax.plot(xs, ys, marker=marker, color=color, markersize=8, label=series,
                            linestyle="-" if curve else "none")
                    # F_fc's names above right, F_conv's below right, the narrow-z-kernel
                    # ablation's below left (it sits beside F_fc's default), others above left
                    offset, align = {"F_fc": ((6, 5), "left"), "F_conv": ((6, -13), "left"),
                                     "F_conv, narrow z kernel": ((-8, -13), "right")}.get(
                        series, ((-8, 6), "right"))
                    leftmost = min(p["r"][key] for p in points)
                    for p, x, y in zip(chosen, xs, ys):
                        here, ha = offset, align
                        if p["default"] and series == "F_conv":  # its neighbours' names are below right
                            here, ha = (-8, 6), "right"
                        if x == leftmost and ha == "right":      # no room left of the axis
                            here, ha = (6, offset[1]), "left"
                        ax.annotate(p["label"] + (" (default)" if p["default"] else ""), (x, y),
                                    textcoords="offset points", xytext=here, ha=ha,
                                    fontsize=9, color=color)
                if metric == "test_accuracy":
                    ax.axhline(100 * FRONTIER_ACCURACY_TARGET, color="0.4", linestyle="--",
                               label=f"F_conv target {100 * FRONTIER_ACCURACY_TARGET:g} %")
                else:
                    ax.set_yscale("log")
                    ax.axhline(dense_mse, color="0.4", linestyle="--",
                               label="dense AE 784-128-32 (same budget)")
                if key == "seconds_per_epoch":
                    ax.axvline(FRONTIER_COST_LIMIT * fc_default_seconds, color="0.6", linestyle=":",
                               label=f"{FRONTIER_COST_LIMIT:g} × F_fc default's time")
                ax.set_xscale("log")
                ax.margins(x=0.12)                   # room for the names left of the first point
                for axis, limits in ((ax.xaxis, ax.get_xlim()), (ax.yaxis, ax.get_ylim())):
                    if axis.get_scale() == "log":        # plain numbers: 20, 5k, 0.005
                        narrow = limits[1] / limits[0] < 10
                        axis.set_major_locator(matplotlib.ticker.LogLocator(
                            subs=(1, 2, 3, 4, 5, 6, 8) if narrow else (1, 2, 5)))
                        axis.set_major_formatter(matplotlib.ticker.FuncFormatter(plain_number))
                        axis.set_minor_formatter(matplotlib.ticker.NullFormatter())
                ax.set_xlabel(xlabel)
                ax.set_ylabel(ylabel)
        # one legend for all four panels, in a row of its own below them, where it covers no
        # point (out of the layout: tight_layout would narrow the column it sits in)
        legend = {}
        for ax in axes[:4]:
            for handle, label in zip(*ax.get_legend_handles_labels()):
                legend.setdefault(label, handle)
        for ax in axes[4:]:
            ax.axis("off")
        axes[4].legend(legend.values(), legend.keys(), loc="center", ncol=4,
                       bbox_to_anchor=(1.1, 0.6)).set_in_layout(False)
        fig.suptitle(title)
    save_figure(fig, path)


def z_kernel_pair(rows: list[dict]) -> tuple[dict | None, dict | None]:
    """The narrow-z-kernel F_conv and the default-design F_conv of the same channels and kernel
    (the ablation of ``--z-kernel-size``), or (None, None)."""
    for narrow in (r for r in rows if r["series"] == "F_conv, narrow z kernel"):
        for wide in (r for r in rows if r["series"] == "F_conv"):
            if all(wide["model"][key] == narrow["model"][key]
                   for key in ("channels", "kernel_size", "bidirectional")):
                return narrow, wide
    return None, None


def frontier_summary(points: list[dict], base: dict) -> dict:
    """The frontier's numbers, derived from the runs (written beside the figure as
    mnist/frontier.json): each point, its cost relative to F_fc's default, and the targets."""
    bm = base["metrics"]
    fc_seconds = next((p["r"]["seconds_per_epoch"] for p in points
                       if p["default"] and p["arch"] == "F_fc"), bm["F_fc"]["seconds_per_epoch"])
    rows = []
    for p in sorted(points, key=lambda p: (p["arch"] != "F_fc", p["series"], p["r"]["seconds_per_epoch"])):
        r = p["r"]
        rows.append({"series": p["series"], "label": p["label"], "default": p["default"],
                     "run": p["run"]["name"], "parameters": r["parameters"], "z_size": r["z_size"],
                     "seconds_per_epoch": r["seconds_per_epoch"],
                     "mean_seconds_per_epoch": r.get("mean_seconds_per_epoch", r["seconds_per_epoch"]),
                     "time_vs_fc_default": r["seconds_per_epoch"] / fc_seconds,
                     "test_accuracy": r["test_accuracy"], "test_mse": r["test_mse"],
                     "mse_vs_dense_ae": r["mse_vs_dense_ae"],
                     "best_val_accuracy": max_val_accuracy(p["run"], p["arch"]),
                     "model": r["model"]})
    extra = {p["run"]["name"]: p["run"]["stamp"].get("seconds", 0) for p in points if not p["default"]}
    ratios = {}                  # time ratios the text states: conv default vs its like-sized F_fc,
    conv_default = next((r for r in rows if r["series"] == "F_conv" and r["default"]), None)
    fc = [r for r in rows if r["series"] == "F_fc"]
    forward = next((r for r in rows if r["series"] == "F_conv, forward encoder"), None)
    if conv_default and fc:      # and the bidirectional encoder vs the forward one
        twin_fc = min(fc, key=lambda r: abs(math.log(r["parameters"] / conv_default["parameters"])))
        ratios["conv_default_vs_fc_of_its_size"] = (conv_default["seconds_per_epoch"]
                                                    / twin_fc["seconds_per_epoch"])
    twin = forward and next((r for r in rows if r["series"] == "F_conv"
                             and r["model"]["channels"] == forward["model"]["channels"]
                             and r["model"]["kernel_size"] == forward["model"]["kernel_size"]), None)
    if twin:
        ratios["bidirectional_vs_forward"] = twin["seconds_per_epoch"] / forward["seconds_per_epoch"]
    narrow, wide = z_kernel_pair(rows)
    if narrow:
        ratios["wide_vs_narrow_z_kernel"] = wide["seconds_per_epoch"] / narrow["seconds_per_epoch"]
    return {"points": rows, "time_ratios": ratios, "fc_default_seconds_per_epoch": fc_seconds,
            "time_limit_seconds_per_epoch": FRONTIER_COST_LIMIT * fc_seconds,
            "time_limit_vs_fc_default": FRONTIER_COST_LIMIT,
            "accuracy_target": FRONTIER_ACCURACY_TARGET,
            "dense_ae_test_mse": bm["baselines"]["dense_ae"]["test_mse"],
            "extra_runs": len(extra), "extra_runs_minutes": sum(extra.values()) / 60}


def frontier_section(out_dir: Path) -> str:
    """F_fc vs F_conv at equal compute: accuracy and MSE against time and parameters."""
    title = "## F_fc vs F_conv at equal compute"
    base = load_run(out_dir, "mnist")
    points = frontier_points(out_dir)
    if base is None or "F_fc" not in base["metrics"] or len(points) < 3:
        return f"{title}\n\n" + missing("mnist/frontier/fc-32")
    bm = base["metrics"]
    summary = frontier_summary(points, base)
    write_json(out_dir / "mnist" / "frontier.json", summary)
    rows, limit = summary["points"], summary["time_limit_seconds_per_epoch"]
    dense_mse = summary["dense_ae_test_mse"]
    example = next(p["run"] for p in points if not p["default"])
    parts = [title, "", (
        f"The assignment asks to \"evaluate the differences\" between F_fc and F_conv; one run of "
        f"each says little when they differ in cost. Here every point is a run of "
        f"`lstm_ae_mnist.py` with the MNIST section's data and budget ({bm['data']['n_train']:,} "
        f"training images, {bm['config']['epochs']} epochs, row by row, the same loss, optimiser, "
        f"schedule and seed); only the architecture changes: F_fc's hidden size, F_conv's "
        f"channels, kernel width, encoder and how its decoder reads z. Test accuracy and MSE are on the "
        f"{bm['data']['n_test']:,} test images; the time is the run's fastest training epoch on "
        f"one CPU thread (the runs were made two at a time on the 2-core machine; another run's "
        f"burst, or any other load, only slows an epoch, so the fastest is the closest to the "
        f"model's own cost; even so, times compare to within about 15 %). The two default models come from the MNIST section's run; the "
        f"{summary['extra_runs']} other runs took {summary['extra_runs_minutes']:.1f} min "
        f"(`mnist/frontier.json` holds every number below); for example {command(example)}.")]
    parts += ["", table(
        ["model", "parameters", "z size", "s / epoch (fastest)", "÷ F_fc default", "test accuracy",
         "test MSE", "÷ dense AE", "best val accuracy"],
        [[f"{r['series']} {r['label']}" + (" **(default)**" if r["default"] else ""),
          r["parameters"], r["z_size"], r["seconds_per_epoch"], r["time_vs_fc_default"],
          pct(r["test_accuracy"]), r["test_mse"], r["mse_vs_dense_ae"],
          pct(r["best_val_accuracy"])] for r in rows]), ""]
    figure_path = out_dir / "mnist" / "frontier.png"
    plot_frontier(points, dense_mse, summary["fc_default_seconds_per_epoch"], figure_path,
                  title=f"MNIST rows: F_fc vs F_conv with the same data and epochs "
                        f"({bm['config']['epochs']} epochs of {bm['data']['n_train']:,} images)")
    parts += [f"![F_fc vs F_conv frontier]({figure_path.relative_to(out_dir).as_posix()})", ""]
    conv = [r for r in rows if r["series"] == "F_conv"]
    fc = [r for r in rows if r["series"] == "F_fc"]
    def verdict(r):
        return (f"takes {fmt(r['time_vs_fc_default'])} × F_fc's time "
                f"({'within' if r['seconds_per_epoch'] <= limit else '**over**'} the limit) and "
                f"reaches {pct(r['test_accuracy'])} "
                f"({'met' if r['test_accuracy'] >= FRONTIER_ACCURACY_TARGET else '**not met**'}) "
                f"and MSE {fmt(r['test_mse'])} "
                f"({'met' if r['test_mse'] <= dense_mse else '**not met**'})")

    conv_default = next((r for r in conv if r["default"]), None)
    if conv_default:
        parts.append(
            f"- **Targets** (F_conv ≥ {100 * FRONTIER_ACCURACY_TARGET:g} % test accuracy and test "
            f"MSE at or below the dense AE's {fmt(dense_mse)}, at ≤ {FRONTIER_COST_LIMIT:g} × F_fc's "
            f"default time per epoch, {fmt(limit)} s): the default F_conv "
            f"({conv_default['label']}) {verdict(conv_default)}.")
    for r in rows:
        if r["series"].startswith("F_conv, class weight"):
            weight = r["series"].rsplit("class weight ", 1)[1]
            parts.append(
                f"- **Another class weight** (`--cell conv --class-weight {weight}`; the "
                f"MNIST section's F_conv has {fmt(class_weight(bm, 'F_conv'))}): "
                f"{r['label']} {verdict(r)}.")
    forward = next((r for r in rows if r["series"] == "F_conv, forward encoder"), None)
    twin = forward and next((r for r in conv if r["model"]["channels"] == forward["model"]["channels"]
                             and r["model"]["kernel_size"] == forward["model"]["kernel_size"]), None)
    if twin:
        f, b = forward, twin
        parts.append(
            f"- **Design, not size:** with one forward ConvLSTM (the assignment's encoder, as "
            f"F_fc's), z = h_T must carry every row of the image to the end, and each position's "
            f"{f['model']['channels']} channels see only a few neighbouring columns. A second "
            f"encoder reading the rows bottom to top (z = both final maps, `--conv-encoder "
            f"bidirectional`, the default since this comparison) halves how far anything must be "
            f"carried: at {fmt(summary['time_ratios']['bidirectional_vs_forward'])} × the time, "
            f"test accuracy {pct(f['test_accuracy'])} → {pct(b['test_accuracy'])} and MSE "
            f"{fmt(f['test_mse'])} → {fmt(b['test_mse'])} (its z is twice as large: "
            f"{f['z_size']} → {b['z_size']} numbers, both larger than F_fc's).")
    narrow, wide = z_kernel_pair(rows)
    if narrow:
        parts.append(
            f"- **Design: how the decoder reads z.** A plain ConvLSTM decoder reads z through its "
            f"recurrence's own kernel ({narrow['model']['kernel_size']} columns), so each position "
            f"starts from a few neighbouring columns of the code and whatever it needs from the "
            f"rest (the digit's identity, for the classifier reading the last state) must spread "
            f"sideways one kernel per step. Reading z through a convolution as wide as z "
            f"(`--z-kernel-size {wide['model'].get('z_kernel_size')}`, the default since this "
            f"comparison; it runs once per image, since z does not change over the steps) lets "
            f"every position see all of it: at {fmt(summary['time_ratios']['wide_vs_narrow_z_kernel'])}"
            f" × the time, test accuracy {pct(narrow['test_accuracy'])} → "
            f"{pct(wide['test_accuracy'])} and MSE {fmt(narrow['test_mse'])} → "
            f"{fmt(wide['test_mse'])}, with {fmt(narrow['parameters'])} → "
            f"{fmt(wide['parameters'])} parameters ({narrow['label']} both).")
    affordable = [r for r in conv if r["seconds_per_epoch"] <= limit]
    if affordable and fc:
        best = max(affordable, key=lambda r: r["test_accuracy"])
        cheaper = [r for r in fc if r["seconds_per_epoch"] <= best["seconds_per_epoch"]]
        if cheaper:
            rival = max(cheaper, key=lambda r: r["test_accuracy"])
            parts.append(
                f"- **At equal cost:** the most accurate F_conv within the time limit "
                f"({best['label']}, {fmt(best['seconds_per_epoch'])} s / epoch) reaches "
                f"{pct(best['test_accuracy'])} and MSE {fmt(best['test_mse'])}; the best F_fc "
                f"that costs no more ({rival['label']}, {fmt(rival['seconds_per_epoch'])} s) "
                f"reaches {pct(rival['test_accuracy'])} and {fmt(rival['test_mse'])}.")
    if conv_default:
        pixels = bm["data"]["steps"] * bm["config"]["input_size"]
        parts.append(
            f"- **Code size is not equal:** F_fc's z is its hidden state (H numbers), F_conv's is "
            f"its final maps, channels × {conv_default['model']['width']} positions, twice that "
            f"with the bidirectional encoder: {conv_default['z_size']} numbers for the default, "
            + ("as many as the image's pixels or more, so its MSE measures a reconstruction, not "
               "a compression" if conv_default["z_size"] >= pixels else
               f"against the image's {pixels} pixels")
            + "; `--code-size K` gives either model a K-number code (the code-size section sweeps "
              "F_fc's; F_conv's was not run at equal code size).")
    if conv_default and fc:
        twin_fc = min(fc, key=lambda r: abs(math.log(r["parameters"] / conv_default["parameters"])))
        parts.append(
            f"- **Per parameter:** the default F_conv has {fmt(conv_default['parameters'])} "
            f"parameters ({pct(conv_default['test_accuracy'])}, MSE {fmt(conv_default['test_mse'])}); "
            f"the F_fc closest in size, {twin_fc['label']}, has {fmt(twin_fc['parameters'])} "
            f"({pct(twin_fc['test_accuracy'])}, MSE {fmt(twin_fc['test_mse'])}). But each of "
            f"F_conv's recurrent weights is used at every one of the "
            f"{conv_default['model']['width']} positions of every step"
            + (" (its decoder's z convolution, most of its parameters, at every position once "
               "per image)" if not narrow_z_kernel(conv_default["model"]) else "")
            + ": it takes "
            f"{fmt(summary['time_ratios']['conv_default_vs_fc_of_its_size'])} × that "
            f"F_fc's time, so on a CPU time, not size, is the budget that decides.")
    return "\n".join(parts) + "\n"


def fastest_epoch_seconds(run: dict, arch: str) -> float | None:
    """The shortest of an architecture's epoch times in its history.csv (None without one)."""
    path = run["dir"] / {"F_fc": "fc", "F_conv": "conv"}[arch] / "history.csv"
    if not path.exists():
        return None
    return float(pd.read_csv(path)["seconds"].min())


def max_val_accuracy(run: dict, arch: str) -> float | None:
    """The best validation accuracy in an architecture's history.csv (the grid's best trial)."""
    path = run["dir"] / {"F_fc": "fc", "F_conv": "conv"}[arch] / "history.csv"
    if not path.exists():
        return None
    return float(pd.read_csv(path)["val_accuracy"].max())


def write_report(out_dir: Path, names: list[str], *, quick: bool = False) -> Path:
    out_dir = Path(out_dir)
    stamps = [load_run(out_dir, n) for n in names]
    total = sum(r["stamp"].get("seconds", 0) for r in stamps if r)
    header = [
        "# LSTM autoencoders: the report",
        "",
        "Generated by `python make_report.py` from the runs in this folder; every number below is "
        "read from their `metrics.json`, `grid.csv` or `cv.csv`. "
        f"Written {time.strftime('%Y-%m-%d %H:%M')} on {cpu_model()} ({platform.machine()}, "
        f"{platform.system()}); the experiments took {total / 60:.1f} min in all when last run.",
        "",
    ]
    if quick:
        header += ["> **Quick mode**: tiny settings that check the pipeline; these numbers mean nothing.", ""]
    text = "\n".join(header) + "\n" + "\n".join(
        section(out_dir) for section in (toy_section, mnist_section, frontier_section, snp500_section,
                                         code_size_section, palindrome_section, judge_section, patches_section,
                                         sevens_section, autoencoders_section, tsne_section,
                                         cgan_section, imputation_section))
    path = out_dir / "README.md"
    write_text(path, text)
    return path
