"""hardware.py and the machine-dependent start of every command: each capability check answers
by trying, and each of its branches is taken here on every machine (the probe's answer forced
with monkeypatch where the hardware cannot give it)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import cli
import hardware
from conftest import BF16_WORKS
from errors import UsageError

ROOT = Path(__file__).resolve().parents[1]


def test_bf16_probe_answers_by_trying_and_is_cached():
    works, reason = hardware.bf16_support("cpu")
    assert works is BF16_WORKS and (reason == "") is works
    assert hardware.bf16_support(torch.device("cpu")) is hardware.bf16_support("cpu")  # cached
    if not works:     # the refusal quotes what oneDNN said, without its advice to the developer
        assert "Run workload" not in reason and "\n" not in reason


def test_bf16_probe_leaves_the_random_stream_alone():
    torch.manual_seed(3)
    expected = torch.rand(3)
    hardware._bf16_probe.cache_clear()
    torch.manual_seed(3)
    hardware.bf16_support("cpu")
    assert torch.equal(torch.rand(3), expected)


def test_probe_reports_a_failing_step_as_unsupported(monkeypatch):
    import models

    def broken(*args, **kwargs):
        raise RuntimeError("could not create a primitive\nsecond line")
    hardware._bf16_probe.cache_clear()
    monkeypatch.setattr(models.LSTMAutoencoder, "forward", broken)
    try:
        assert hardware.bf16_support("cpu") == (False, "could not create a primitive")
        assert "no bf16 LSTM kernel" in hardware.bf16_unsupported_reason("cpu")
        with pytest.raises(UsageError, match=r"^--precision bf16: not supported on this machine"):
            hardware.check_precision("bf16", torch.device("cpu"))
        hardware.check_precision("fp32", torch.device("cpu"))      # fp32 never asks
    finally:
        hardware._bf16_probe.cache_clear()


def test_threads_above_the_cores_are_refused():
    hardware.check_threads(None)
    hardware.check_threads(hardware.available_cores())
    with pytest.raises(UsageError, match=r"^--threads \d+: this machine lets the process use"):
        hardware.check_threads(hardware.available_cores() + 1)


def test_device_checks():
    hardware.check_device(torch.device("cpu"))
    if not torch.cuda.is_available():
        with pytest.raises(UsageError, match="--device cuda: CUDA is not available"):
            cli.resolve_device("cuda")
    with pytest.raises(UsageError, match="expected auto, cpu, cuda or cuda:N"):
        cli.resolve_device("tpu")


def test_machine_info_records_the_cpu():
    info = hardware.machine_info(torch.device("cpu"))
    assert info["device"] == "cpu" and info["torch_threads"] == torch.get_num_threads()
    assert isinstance(info["cpu_flags"], list) and info["cpu"]
    if Path("/proc/cpuinfo").exists() and "avx2" in Path("/proc/cpuinfo").read_text():
        assert "avx2" in info["cpu_flags"]


def test_cpu_flags_without_proc_cpuinfo(monkeypatch):
    def no_file(*args, **kwargs):
        raise OSError("no /proc here")
    monkeypatch.setattr("builtins.open", no_file)
    assert hardware.cpu_flags() == [] and hardware.cpu_model()


# --- the allocator re-exec: taken on glibc Linux, skipped or survived everywhere else ---------

def _no_exec(monkeypatch):
    calls = []
    monkeypatch.setattr(os, "execve", lambda *a: calls.append(a))
    monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
    return calls


@pytest.mark.parametrize("platform_name, libc", [("darwin", ("", "")), ("linux", ("", "")),
                                                 ("linux", ("musl", "1.2")), ("win32", ("", ""))])
def test_no_reexec_off_glibc(monkeypatch, platform_name, libc):
    calls = _no_exec(monkeypatch)
    monkeypatch.setattr(sys, "platform", platform_name)
    monkeypatch.setattr(cli.platform, "libc_ver", lambda: libc)
    cli.reexec_with_fast_malloc()
    assert calls == []


def test_reexec_on_glibc_once_and_survives_a_failure(monkeypatch):
    calls = _no_exec(monkeypatch)
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setattr(cli.platform, "libc_ver", lambda: ("glibc", "2.36"))
    cli.reexec_with_fast_malloc()
    assert len(calls) == 1 and calls[0][2]["GLIBC_TUNABLES"] == cli.FAST_MALLOC

    def failing(*args):
        raise OSError("exec format error")
    monkeypatch.setattr(os, "execve", failing)
    cli.reexec_with_fast_malloc()                     # goes on in this process
    monkeypatch.setattr(os, "execve", lambda *a: calls.append(a))
    monkeypatch.setenv("GLIBC_TUNABLES", "")          # the user's opt-out, or the re-exec'd child
    cli.reexec_with_fast_malloc()
    assert len(calls) == 1


def test_command_line_bad_machine_flags_are_one_line():
    """The real command line (with its re-exec): one line, exit 2, for each machine limit."""
    cases = [(["--threads", "999"], "--threads 999: this machine lets")]
    if not BF16_WORKS:       # where bf16 works, test_toy.py trains under it instead
        cases.append((["--precision", "bf16"], "--precision bf16: not supported on this machine"))
    for flags, expected in cases:
        done = subprocess.run([sys.executable, "lstm_ae_toy.py", "--n-seqs", "20", "--epochs", "1",
                               "--out-dir", os.devnull + "-never", *flags], cwd=ROOT,
                              env={**os.environ, "TQDM_DISABLE": "1"}, capture_output=True,
                              text=True, timeout=120)
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2 and len(lines) == 1, done.stderr
        assert lines[0].startswith(f"lstm_ae_toy.py: error: {expected}")
