"""What this machine can do, found by trying, not by assuming: the one place every script, the
bench and the report ask.

Machines differ from one run to the next (an AVX-512 server with bf16 one day, an AVX2 laptop the
next, a GPU or none), so nothing here parses CPU flags to decide anything:

- ``bf16_support(device)`` runs a tiny LSTM and ConvLSTM training step (forward and backward)
  under bf16 autocast once per process and device and reports whether it worked and, if not,
  why. oneDNN's LSTM has no bf16 kernel on CPUs without AVX512-BF16/AMX ("could not create a
  primitive descriptor for the LSTM forward propagation primitive").
- ``check_precision``, ``check_threads`` and ``check_device`` turn an unsupported request into
  one ``UsageError`` line naming the flag, raised before a script writes anything.
- ``machine_info(device)`` is what every ``metrics.json`` records about where it ran: device,
  threads, the CPU model and its instruction-set flags (recorded for the reader, never used to
  decide).
"""
from __future__ import annotations

import functools
import os
import platform

import torch

from errors import UsageError

# instruction-set extensions worth recording beside a timing (the rest of /proc/cpuinfo's flags
# say nothing about how fast this code runs)
_RECORDED_FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx_vnni", "amx", "avx512")


@functools.lru_cache(maxsize=None)
def _bf16_probe(device_str: str) -> tuple[bool, str]:
    from models import ConvLSTMAutoencoder, LSTMAutoencoder  # models import nothing from here

    device = torch.device(device_str)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            x = torch.rand(2, 4, 4, device=device)                      # (B, T, W)
            for model in (LSTMAutoencoder(4, 8), ConvLSTMAutoencoder(4, channels=2, kernel_size=3)):
                model.to(device)
                with torch.autocast(device.type, dtype=torch.bfloat16):
                    loss = (model(x).recon.float() - x).pow(2).mean()
                loss.backward()
                if not torch.isfinite(loss):
                    return False, f"a bf16 step of {type(model).__name__} gave {loss.item()}"
    except RuntimeError as err:
        text = str(err).strip() or type(err).__name__
        return False, text.splitlines()[0].split(". Run workload")[0]  # drop oneDNN's advice
    return True, ""


def bf16_support(device: torch.device | str = "cpu") -> tuple[bool, str]:
    """(works, reason): whether the LSTM and ConvLSTM models train under bf16 autocast on
    ``device``; tried once per process and device (a few milliseconds)."""
    return _bf16_probe(str(torch.device(device)))


def bf16_unsupported_reason(device: torch.device | str = "cpu") -> str | None:
    """None where bf16 autocast works on ``device``; otherwise a sentence saying why not."""
    works, error = bf16_support(device)
    if works:
        return None
    where = ("this CPU's oneDNN has no bf16 LSTM kernel"
             if torch.device(device).type == "cpu" else f"{device} cannot run it")
    return f"{where}: {error}"


def check_precision(precision: str, device: torch.device, flag: str = "--precision") -> None:
    """A UsageError for ``--precision bf16`` where the probe says bf16 autocast does not work."""
    if precision != "bf16":
        return
    reason = bf16_unsupported_reason(device)
    if reason:
        raise UsageError(f"{flag} bf16: not supported on this machine; {reason}. Use {flag} fp32")


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def check_threads(threads: int | None, flag: str = "--threads") -> None:
    if threads is not None and threads > available_cores():
        raise UsageError(f"{flag} {threads}: this machine lets the process use "
                         f"{available_cores()} CPU core(s); more threads than cores only slow "
                         f"training down")


def check_device(device: torch.device) -> None:
    """A CUDA device that exists but cannot run this PyTorch build's kernels (a GPU too old or
    too new for the build) fails here in one line, not in the middle of training."""
    if device.type != "cuda":
        return
    try:
        (torch.ones(2, device=device) + 1).sum().item()
    except RuntimeError as err:
        raise UsageError(f"--device {device}: this PyTorch build cannot run on that GPU "
                         f"({str(err).strip().splitlines()[0]})") from None


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> list[str]:
    """The CPU's SIMD instruction-set flags (Linux: /proc/cpuinfo); [] where the OS hides them."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    flags = line.split(":", 1)[1].split()
                    return sorted(f for f in flags if f.startswith(_RECORDED_FLAGS))
    except OSError:
        pass
    return []


def machine_info(device: torch.device) -> dict:
    """Where a run ran, for its metrics.json."""
    info = {
        "device": str(device),
        "torch_threads": torch.get_num_threads(),
        "cpu": cpu_model(),
        "cpu_flags": cpu_flags(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cores": available_cores(),
        "torch": torch.__version__,
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info

