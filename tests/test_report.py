"""make_report.py --quick end to end: every experiment, figure and section, and every number in
the written report read from a metrics file."""
import json
import math
import re

import pandas as pd
import pytest

import make_report
from cli import run
from conftest import BF16_WORKS
from report import SKIPPED, fmt, pct

FIGURES = {
    "toy": ["examples.png", "reconstructions.png", "loss.png", "grid.png"],
    "mnist": ["digits.png", "loss.png", "accuracy.png", "frontier.png"],
    "snp500": ["amzn_googl.png", "reconstructions.png", "losses.png", "prediction.png"],
    "palindrome": ["accuracy_vs_length.png", "gradient_norms.png"],
    "patches": ["generated.png", "originals.png", "loss.png"],
    "sevens/stripe": ["effect.png", "traversals.png", "correlation.png", "loss.png"],
    ".": ["reconstruction_vs_code_size.png"],
}
SECTIONS = ["## 1. Synthetic signals", "## 2. MNIST", "## F_fc vs F_conv at equal compute",
            "## 3. S&P 500", "## Reconstruction vs code size",
            "## Palindromes",
            "## Spec 002 · The digit judge", "## Spec 002 · Problem 1", "## Spec 002 · Problem 2"]


def numbers_in(value):
    if isinstance(value, dict):
        for v in value.values():
            yield from numbers_in(v)
    elif isinstance(value, list):
        for v in value:
            yield from numbers_in(v)
    elif isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        yield value


def renderings(value):
    """Every way report.py may print a number."""
    out = {fmt(value), fmt(value, 4), f"{value:g}", str(value)}
    if float(value).is_integer():
        out |= {str(int(value)), f"{int(value):,}"}
    out.add(pct(value).split(" ")[0])
    out.add(f"{value / 60:.1f}")
    return out


@pytest.fixture(scope="module")
def quick_report(tmp_path_factory, shared_data_dir):
    out = tmp_path_factory.mktemp("report")
    assert run(make_report.main, ["--quick", "--out-dir", str(out), "--data-dir",
                                  str(shared_data_dir), "--threads", "1"]) == 0
    return out


def test_every_experiment_figure_and_section(quick_report):
    for exp in make_report.experiments(quick=True):
        if exp.bf16 and not BF16_WORKS:     # skipped here, with the reason for the report
            assert "bf16" in json.loads((quick_report / exp.name / SKIPPED).read_text())["reason"]
            assert not (quick_report / exp.name / "metrics.json").exists(), exp.name
            continue
        assert (quick_report / exp.name / "metrics.json").exists(), exp.name
        assert (quick_report / exp.name / "run.json").exists(), exp.name
    for name, figures in FIGURES.items():
        for figure in figures:
            assert (quick_report / name / figure).stat().st_size > 5000, f"{name}/{figure}"
    text = (quick_report / "README.md").read_text()
    for section in SECTIONS:
        assert section in text
    assert "has not been run yet" not in text
    assert ("was not run on this machine" in text) is not BF16_WORKS
    for image in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text):
        assert (quick_report / image).exists(), image


def test_every_number_in_the_report_comes_from_a_run(quick_report):
    known = set()
    for path in quick_report.rglob("*.json"):
        for value in numbers_in(json.loads(path.read_text())):
            known |= renderings(value)
    for path in [*quick_report.rglob("grid.csv"), *quick_report.rglob("cv.csv")]:
        for value in numbers_in(pd.read_csv(path).select_dtypes("number").to_numpy().ravel().tolist()):
            known |= renderings(value)
    total = sum(json.loads(p.read_text())["seconds"] for p in quick_report.rglob("run.json"))
    known |= renderings(total)
    text = (quick_report / "README.md").read_text()
    text = re.sub(r"`[^`]*`", " ", text)                     # commands and names
    text = re.sub(r"!\[[^\]]*\]\([^)]*\)", " ", text)         # figure links
    text = re.sub(r"^#.*$", " ", text, flags=re.M)            # headings (spec section numbers)
    text = re.sub(r"\d{4}-\d{2}-\d{2}( \d{2}:\d{2})?", " ", text)  # dates
    tokens = re.findall(r"(?<![\w.§^{_-])\d[\d,]*(?:\.\d+)?(?:e[-+]?\d+)?", text)
    template = {"0", "1", "2", "3", "5", "10", "60", "20", "99.0", "1.0", "001",  # wording of report.py
                "95", "98", "81", "2018",   # cGAN targets, the spec's 9×9 slice, a citation year
                "15", "1.5", "0.05",  # the autoencoders' time budget, sparse MSE target and
                                      # near-zero cut-off for code activations
                "98.5"}               # F_conv's accuracy target
    unexplained = sorted({t.rstrip(",") for t in tokens} - known - template)
    assert not unexplained, f"numbers in the report that no run wrote: {unexplained}"


def test_changed_code_reruns_every_grid_trial(quick_report, shared_data_dir, capsys):
    """A finished run is reused while command and code are unchanged; once either changes,
    the toy grid's trials run again instead of being skipped as "finished earlier"."""
    args = ["--quick", "--out-dir", str(quick_report), "--data-dir", str(shared_data_dir),
            "--threads", "1", "--only", "toy"]
    capsys.readouterr()
    assert run(make_report.main, args) == 0
    assert "unchanged since its last run" in capsys.readouterr().err
    stamp_path, grid_path = quick_report / "toy" / "run.json", quick_report / "toy" / "grid.csv"
    trials = len(pd.read_csv(grid_path))
    stamp = json.loads(stamp_path.read_text())
    stamp_path.write_text(json.dumps({**stamp, "code": "older-code"}))
    assert run(make_report.main, args) == 0
    err = capsys.readouterr().err
    assert "every trial reruns" in err and "finished earlier" not in err
    assert trials > 1 and len(pd.read_csv(grid_path)) == trials       # each trial once, anew
    assert json.loads(stamp_path.read_text())["code"] == stamp["code"]


def test_bf16_experiment_skipped_with_a_sentence_where_the_probe_says_no(tmp_path, shared_data_dir,
                                                                       capsys, no_bf16):
    """Forced "no bf16": the bf16 experiment is not run, its section says why, an earlier run's
    numbers (from a machine that could) stay and are labelled as such."""
    args = ["--quick", "--out-dir", str(tmp_path), "--data-dir", str(shared_data_dir),
            "--threads", "1", "--only", "mnist/bf16"]
    assert run(make_report.main, args) == 0
    assert "[mnist/bf16] skipped: --precision bf16 is not supported here" in capsys.readouterr().err
    assert not (tmp_path / "mnist" / "bf16" / "metrics.json").exists()
    text = (tmp_path / "README.md").read_text()
    assert "`mnist` has not been run yet" in text        # the rest of the report is as it was


def test_bf16_section_reports_a_skip_beside_an_earlier_run(quick_report, tmp_path, no_bf16):
    import shutil

    from report import mnist_section
    shutil.copytree(quick_report / "mnist", tmp_path / "mnist")
    (tmp_path / "mnist" / "bf16").mkdir(exist_ok=True)
    (tmp_path / "mnist" / "bf16" / SKIPPED).write_text(json.dumps({"reason": "no bf16 here"}))
    text = mnist_section(tmp_path)
    assert "was not run on this machine: no bf16 here." in text
    has_earlier = (tmp_path / "mnist" / "bf16" / "metrics.json").exists()
    assert ("from its last run on a CPU that supports it" in text) is has_earlier


def test_jobs_run_experiments_in_processes_after_what_they_read(tmp_path, shared_data_dir, capsys):
    """--jobs 2: each experiment in its own process with its output in logs/; the patch
    experiment, which reads the judge's checkpoint, starts only after the judge is done."""
    out = tmp_path / "report"
    chosen = ["judge", "patches", "toy/plateau"]
    assert run(make_report.main, ["--quick", "--jobs", "2", "--threads", "1", "--out-dir", str(out),
                                  "--data-dir", str(shared_data_dir), "--only", *chosen]) == 0
    err = capsys.readouterr().err
    for name in chosen:
        assert (out / name / "metrics.json").exists() and (out / name / "run.json").exists(), name
        assert (out / "logs" / f"{name.replace('/', '--')}.log").stat().st_size > 0, name
    assert err.index("== judge: done") < err.index("== patches: started")
    assert err.index("== toy/plateau: started") < err.index("== judge: done")   # two at a time
    assert (out / "README.md").exists()


def test_parallel_runs_start_with_the_longest_path(tmp_path):
    """--jobs orders by last run time plus the longest chain waiting on an experiment: a short
    judge that a long run waits for goes before a medium one; a never-run experiment counts as
    long as the longest known run (ties in list order)."""
    def experiment(name, after=()):
        return make_report.Experiment(name, "toy.py", [], [], after=after)

    for name, seconds in (("judge", 10), ("gan", 100), ("medium", 60), ("short", 5)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "run.json").write_text(json.dumps({"seconds": seconds}))
    chosen = [experiment("new-a"), experiment("short"), experiment("medium"), experiment("judge"),
              experiment("gan", after=("judge",)), experiment("new-b")]
    order = [e.name for e in make_report.longest_path_first(chosen, tmp_path)]
    assert order == ["judge", "new-a", "gan", "new-b", "medium", "short"]
