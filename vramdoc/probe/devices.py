"""Where a probe runs: the modes a step runs under and what each device can tell.

- ``cpu`` / ``fake`` emulate a CUDA GPU: :func:`modes` stacks the live-storage tracker (and
  ``FakeTensorMode`` for fake tensors) with two small corrections so that a CPU trace takes the
  same code paths a GPU run takes (:func:`_cuda_autocast_query`, :func:`_unpacked_batches`).
- ``cuda`` reads the caching allocator (:class:`CudaMeter`) and NVML (:func:`device_used_bytes`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch

from vramdoc.probe.tracker import MemoryTracker


class CudaMeter:
    """Allocator peaks per phase on a real GPU (max over steps)."""

    def __init__(self) -> None:
        self.allocated: dict[str, int] = {}
        self.reserved: dict[str, int] = {}
        self.phase: str | None = None

    def switch(self, phase: str | None) -> None:
        if self.phase is not None:
            a, r = torch.cuda.max_memory_allocated(), torch.cuda.max_memory_reserved()
            self.allocated[self.phase] = max(self.allocated.get(self.phase, 0), a)
            self.reserved[self.phase] = max(self.reserved.get(self.phase, 0), r)
        torch.cuda.reset_peak_memory_stats()
        self.phase = phase


def device_used_bytes() -> int | None:
    """What nvidia-smi shows for this process (NVML), else device-wide used memory."""
    import os

    try:
        from vramdoc.hardware import nvml

        if nvml.available():
            info = nvml.device_info(torch.cuda.current_device(), processes=True)
            for proc in info.processes or ():
                if proc.pid == os.getpid() and proc.used_bytes:
                    return int(proc.used_bytes)
            if info.memory_used_bytes:
                return int(info.memory_used_bytes)
    except Exception:  # NVML missing or not answering: the CUDA runtime still knows
        pass
    free, total = torch.cuda.mem_get_info()
    return int(total - free)


def cuda_stats() -> dict[str, int]:
    """Allocator counters that say whether fragmentation played a part."""
    stats = torch.cuda.memory_stats()
    keys = ("num_alloc_retries", "num_ooms", "inactive_split_bytes.all.peak",
            "reserved_bytes.all.peak", "allocated_bytes.all.peak")
    return {k: int(stats.get(k, 0)) for k in keys}


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence the libraries' deprecation chatter while probing (stderr is for findings)."""
    import logging
    import warnings

    loggers = [logging.getLogger(n) for n in ("bitsandbytes", "transformers", "peft", "accelerate")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        from transformers.utils import logging as hf_logging

        hf_level = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()
    except ImportError:  # pragma: no cover - transformers is a probe dependency
        hf_logging, hf_level = None, None
    with warnings.catch_warnings():
        for category in (FutureWarning, DeprecationWarning, UserWarning):
            warnings.simplefilter("ignore", category)
        try:
            yield
        finally:
            for lg, level in zip(loggers, levels, strict=True):
                lg.setLevel(level)
            if hf_logging is not None:
                hf_logging.set_verbosity(hf_level)


@contextlib.contextmanager
def _cuda_autocast_query() -> Iterator[None]:
    """Make the argument-less ``torch.is_autocast_enabled()`` answer for the CPU autocast.

    Without an argument it reports CUDA's autocast state; peft's quantized LoRA layers call it
    to decide whether to cast their input to the adapter dtype (peft/tuners/lora/bnb.py,
    ``requires_conversion``). On a GPU under AMP it is True; a CPU trace of that GPU run must
    see True as well, or it records casts the GPU never makes.
    """
    original = torch.is_autocast_enabled

    def is_autocast_enabled(device_type: str | None = None) -> bool:
        return bool(original(device_type or "cpu"))

    torch.is_autocast_enabled = is_autocast_enabled  # type: ignore[assignment]
    try:
        yield
    finally:
        torch.is_autocast_enabled = original  # type: ignore[assignment]


@contextlib.contextmanager
def _unpacked_batches() -> Iterator[None]:
    """Tell transformers' mask builder that the synthetic batch holds no packed sequences.

    ``masking_utils.find_packed_sequence_indices`` reads the position ids' values to decide;
    on fake tensors it cannot (``is_tracing``) and conservatively builds an explicit packed
    mask, which a real run of the same unpacked batch never builds (it then also repeats K/V
    for GQA). Our batches are one sequence per row, so the real answer is None.
    """
    try:
        from transformers import masking_utils
    except ImportError:  # pragma: no cover - older transformers build masks elsewhere
        yield
        return
    original = getattr(masking_utils, "find_packed_sequence_indices", None)
    if original is None:  # pragma: no cover
        yield
        return
    masking_utils.find_packed_sequence_indices = lambda position_ids: None
    try:
        yield
    finally:
        masking_utils.find_packed_sequence_indices = original


@contextlib.contextmanager
def _gpu_attention_dropout() -> Iterator[None]:
    """Run SDPA without dropout, as far as memory goes the way a GPU runs it with dropout.

    With ``dropout_p > 0`` torch's CPU backend falls back to the math kernel, which keeps the
    a x s x s scores, softmax and dropout mask for backward; CUDA's flash and memory-efficient
    kernels apply dropout inside the kernel and keep only the output, the log-sum-exp and an
    RNG seed. Dropping the attention dropout keeps a CPU trace on the fused kernel's tensors.
    """
    fn = torch.nn.functional
    original = fn.scaled_dot_product_attention

    def sdpa(*args: Any, **kwargs: Any) -> torch.Tensor:
        if len(args) > 4:
            args = (*args[:4], 0.0, *args[5:])
        if "dropout_p" in kwargs:
            kwargs["dropout_p"] = 0.0
        return original(*args, **kwargs)

    fn.scaled_dot_product_attention = sdpa
    try:
        yield
    finally:
        fn.scaled_dot_product_attention = original


@contextlib.contextmanager
def modes(device: str, tracker: MemoryTracker) -> Iterator[None]:
    """The modes a step runs under on ``device`` (the tracker innermost)."""
    if device == "cuda":
        with tracker:
            yield
        return
    with contextlib.ExitStack() as stack:
        stack.enter_context(_cuda_autocast_query())
        stack.enter_context(_gpu_attention_dropout())
        from vramdoc.probe.cuda_semantics import cuda_semantics

        stack.enter_context(cuda_semantics())
        if device == "fake":
            from torch._subclasses.fake_tensor import FakeTensorMode

            stack.enter_context(_unpacked_batches())
            stack.enter_context(FakeTensorMode())
        stack.enter_context(tracker)
        yield


class TracedGradScaler(torch.amp.GradScaler):
    """GradScaler for fake tensors: ``found_inf`` has no value there, so the step always runs
    (as it does on a real GPU once the scale has settled)."""

    def _maybe_opt_step(self, optimizer: Any, optimizer_state: Any, *args: Any,
                        **kwargs: Any) -> Any:
        return optimizer.step(*args, **kwargs)


def requested_bytes(message: str) -> int:
    """Bytes from torch's 'Tried to allocate 1.95 GiB' message (0 when absent)."""
    import re

    m = re.search(r"Tried to allocate ([\d.]+) (GiB|MiB|KiB|B)", message)
    if not m:
        return 0
    scale = {"GiB": 1024**3, "MiB": 1024**2, "KiB": 1024, "B": 1}[m.group(2)]
    return int(float(m.group(1)) * scale)


def device_name(device: str) -> str:
    if device == "cuda":
        return str(torch.cuda.get_device_name())
    if device == "fake":
        return "fake tensors (no memory allocated)"
    return "cpu (bytes counted as CUDA would)"
