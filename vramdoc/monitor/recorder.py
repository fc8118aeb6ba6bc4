"""The recorder: writes a run's events to ``RUN_DIR/events.jsonl``, one line per event.

Plain PyTorch loops use it directly::

    rec = Recorder("runs/exp1", plan="plan.json")
    for batch in loader:
        loss = model(**batch).loss
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step(); opt.zero_grad()
        rec.step(loss=loss, grad_norm=norm, lr=sched.get_last_lr()[0],
                 tokens=batch["input_ids"].numel(), samples=len(batch["input_ids"]))
    rec.close()

Every line is flushed when written (by a background writer thread, see
:mod:`vramdoc.monitor.writer`), so a crash of the training process leaves a readable file (at
worst one truncated last line, which the follower waits on or skips). The recorder never
raises into training: an error is reported once on stderr, recorded as a ``note`` event, and
recording goes on.

Each recorder is one *session*: its header and every line it writes carry a fresh session id,
so two runs written to one folder (one after the other, or at the same time) stay apart. How
the process ends is recorded too (:mod:`vramdoc.monitor.exits`): ``close()`` writes
``finished``; an uncaught exception, a KeyboardInterrupt or SIGTERM write ``crashed`` /
``interrupted`` with the exception's type, message and step, or the signal's name.
"""

from __future__ import annotations

import atexit
import functools
import os
import platform
import sys
import time
import uuid
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from vramdoc import __version__
from vramdoc.monitor.exits import SigtermChain, current_uncaught, error_record
from vramdoc.monitor.outcome import process_start, this_host
from vramdoc.monitor.plan import load_plan, plan_from_setup
from vramdoc.monitor.sampling import CudaMemorySampler, NvmlSampler
from vramdoc.monitor.schema import EVENTS_FILE, SCHEMA_VERSION
from vramdoc.monitor.writer import LineWriter

F = TypeVar("F", bound=Callable[..., Any])


def _guarded(method: F) -> F:
    """Run a recorder method; on any error, report it once and return None."""

    @functools.wraps(method)
    def wrapper(self: Recorder, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - training must never stop for the recorder
            self._report(method.__name__, exc)
            return None

    return wrapper  # type: ignore[return-value]


def to_float(value: Any) -> float | None:
    """A loss / norm / lr as a Python float: tensors are read with ``.item()``."""
    if value is None:
        return None
    if hasattr(value, "item"):
        value = value.item()
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def library_versions() -> dict[str, str | None]:
    """Versions of the libraries already imported by the training process (imports nothing)."""
    torch = sys.modules.get("torch")
    tf = sys.modules.get("transformers")
    peft = sys.modules.get("peft")
    cuda = getattr(getattr(torch, "version", None), "cuda", None) if torch else None
    return {
        "python": platform.python_version(),
        "vramdoc": __version__,
        "torch": getattr(torch, "__version__", None),
        "transformers": getattr(tf, "__version__", None),
        "peft": getattr(peft, "__version__", None),
        "cuda": cuda,
    }


def _close_at_exit(ref: weakref.ref[Recorder]) -> None:
    rec = ref()
    if rec is not None and not rec._closed:
        rec._close_for_exit()


class Recorder:
    """Append-only event log of one training run.

    Args:
        run_dir: directory of the run; created if missing. Events go to ``events.jsonl``.
        plan: the estimate to compare against: None, a path to ``vramdoc estimate --json`` /
            ``vramdoc plan --json`` output, a mapping of it, or a MemoryEstimate.
        setup: the run's setup (TrainSetup, mapping or setup-file path). With no ``plan``
            the recorder estimates from it when ``vramdoc.estimate`` is installed.
        args: training arguments worth recording (fp16, logging_nan_inf_filter ...).
        source: "loop" or "trainer".
        device_index: CUDA device to read; the current device when None.
        nvml_interval_s: seconds between NVML samples.
        background: encode and write events on a background thread (default); False writes
            each event before ``step()`` returns.
    """

    def __init__(
        self,
        run_dir: str | Path,
        plan: Any = None,
        setup: Any = None,
        *,
        args: dict[str, Any] | None = None,
        source: str = "loop",
        device_index: int | None = None,
        nvml_interval_s: float = 2.0,
        background: bool = True,
    ) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / EVENTS_FILE
        self._errors: dict[str, int] = {}
        self._writer: LineWriter | None = None
        self._closed = False
        self.step_count = 0
        self._last_t = time.perf_counter()
        self._interrupted = False
        self._skipped_total = 0
        self.session = uuid.uuid4().hex[:12]
        self.last_error: dict[str, Any] | None = None  # the last exception recorded
        self._signal: str | None = None  # a signal received (handled by an earlier handler)
        # An uncaught exception already on record (an earlier error in a notebook) is not ours.
        self._stale_exc = id(current_uncaught())
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self._writer = LineWriter(self.path, self._report, background=background)
        except OSError as exc:
            self._report("open", exc)
        self._cuda = CudaMemorySampler(device_index)
        self._nvml = NvmlSampler(self._cuda.device_index, nvml_interval_s)
        self._write_header(plan, setup, args or {}, source)
        # A training script that dies with an exception never reaches on_train_end: close
        # with a reason at interpreter exit (before the writer drains: atexit is LIFO).
        atexit.register(_close_at_exit, weakref.ref(self))
        ref = weakref.ref(self)
        self._sigterm = SigtermChain(
            on_signal=lambda name: _call(ref, "_on_signal", name),
            on_default=lambda name: _call(ref, "close", "interrupted", signal=name))
        self._sigterm.install()

    # --- writing --------------------------------------------------------------------------
    def _report(self, where: str, exc: BaseException) -> None:
        key = f"{where}:{type(exc).__name__}"
        self._errors[key] = self._errors.get(key, 0) + 1
        if self._errors[key] == 1:
            print(f"vramdoc: recorder error in {where}: {type(exc).__name__}: {exc} "
                  "(training goes on; further errors of this kind are counted silently)",
                  file=sys.stderr)
            if where != "write":
                self._write({"kind": "note", "what": "recorder_error",
                             "detail": f"{where}: {type(exc).__name__}: {exc}",
                             "step": self.step_count})

    def _write(self, event: dict[str, Any]) -> None:
        if self._writer is None or self._closed:
            return
        event = {"v": SCHEMA_VERSION, **event}
        event.setdefault("session", self.session)
        event.setdefault("time", time.time())
        self._writer.put(event)

    @_guarded
    def _write_header(self, plan: Any, setup: Any, args: dict[str, Any], source: str) -> None:
        setup_map = None
        plan_map = None
        if plan is not None:
            plan_map = load_plan(plan)
        if setup is not None:
            try:
                setup_map, estimated = plan_from_setup(setup)
                plan_map = plan_map or estimated
            except Exception as exc:  # noqa: BLE001 - a bad setup must not stop the record
                self._report("setup", exc)
        device = self._cuda.device()
        gpu = self._nvml.sample()
        if gpu and device.get("total_bytes") is None:
            device["total_bytes"] = gpu.get("total_bytes")
        pid = os.getpid()
        self._write({"kind": "header", "source": source, "versions": library_versions(),
                     "device": device, "setup": setup_map, "plan": plan_map, "args": args,
                     "pid": pid, "pid_start": process_start(pid), "host": this_host()})

    # --- public API -----------------------------------------------------------------------
    @_guarded
    def mark_interrupted(self, what: str = "", detail: str = "") -> None:
        """Say that non-training work (evaluation, checkpoint) ran since the last step."""
        self._interrupted = True
        if what:
            self._write({"kind": "note", "what": what, "detail": detail,
                         "step": self.step_count})

    @_guarded
    def restart_clock(self) -> None:
        """Start timing the next step from now (call right before the first step)."""
        self._last_t = time.perf_counter()

    @_guarded
    def step(
        self,
        loss: Any = None,
        grad_norm: Any = None,
        lr: Any = None,
        *,
        step: int | None = None,
        epoch: float | None = None,
        tokens: int | None = None,
        samples: int | None = None,
        loss_scale: Any = None,
        skipped: bool | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        """Record one optimizer step. Tensors are read with ``.item()``; None means unknown."""
        now = time.perf_counter()
        dt = now - self._last_t
        self._last_t = now
        self.step_count = int(step) if step is not None else self.step_count + 1
        if skipped:
            self._skipped_total += 1
        event: dict[str, Any] = {
            "kind": "step",
            "step": self.step_count,
            "epoch": epoch,
            "loss": to_float(loss),
            "grad_norm": to_float(grad_norm),
            "lr": to_float(lr),
            "loss_scale": to_float(loss_scale),
            "skipped": skipped,
            "skipped_total": self._skipped_total,
            "tokens": tokens,
            "samples": samples,
            "step_time_s": dt,
            "tokens_per_s": tokens / dt if tokens and dt > 0 else None,
            "samples_per_s": samples / dt if samples and dt > 0 else None,
            "interrupted": self._interrupted,
            "mem": self._cuda.sample(),
            "gpu": self._nvml.sample(),
        }
        if extra:
            event["extra"] = extra
        self._interrupted = False
        self._write(event)

    @_guarded
    def log(self, logs: dict[str, Any], step: int | None = None) -> None:
        """Record what the training framework logged (e.g. Trainer's filtered loss)."""
        clean = {k: v for k, v in logs.items() if isinstance(v, int | float | str | bool)}
        self._write({"kind": "log", "step": self.step_count if step is None else step,
                     "logs": clean})

    @_guarded
    def note(self, what: str, detail: str = "") -> None:
        """Record a free-form note (shown in the watch's event list)."""
        self._write({"kind": "note", "what": what, "detail": detail, "step": self.step_count})

    @_guarded
    def exception(self, exc: BaseException, step: int | None = None) -> None:
        """Record an exception raised in training (type, message, the step it interrupted).

        It is kept as :attr:`last_error`: a run that then ends without ``close()`` reads as
        crashed with it. ``close("crashed", error=...)`` ends the run explicitly.
        """
        record = error_record(exc, step if step is not None else self.step_count + 1)
        self.last_error = record
        self._write({"kind": "note", "what": "exception", "step": self.step_count,
                     "detail": f"{record['type']}: {record['message']}", "error": record})

    def _on_signal(self, name: str) -> None:
        self._signal = name
        self.note("signal", f"{name} received")

    def _close_for_exit(self) -> None:
        """At interpreter exit without close(): say why the process ended."""
        exc = current_uncaught()
        if exc is not None and id(exc) != self._stale_exc:
            error = self.last_error
            if error is None or error.get("type") != type(exc).__name__:
                error = error_record(exc, self.step_count + 1)
            reason = "interrupted" if isinstance(exc, KeyboardInterrupt) else "crashed"
            self.close(reason, error=error)
        elif self._signal is not None:
            self.close("interrupted", signal=self._signal)
        elif self.last_error is not None:
            self.close("crashed", error=self.last_error)
        else:
            self.close("exited")

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every event so far is written to the file; False on timeout."""
        return self._writer.flush(timeout) if self._writer is not None else True

    def close(self, reason: str = "finished", *, error: dict[str, Any] | None = None,
              signal: str | None = None) -> None:
        """Write the end event and close the file. Safe to call twice.

        Args:
            reason: ``finished``, ``crashed``, ``interrupted`` or ``exited``.
            error: for ``crashed``: ``{"type", "message", "step"}`` (see :meth:`exception`).
            signal: for ``interrupted``: the signal's name, e.g. ``SIGTERM``.
        """
        if self._closed:
            return
        self._sigterm.uninstall()
        try:
            end: dict[str, Any] = {"kind": "end", "step": self.step_count, "reason": reason,
                                   "recorder_errors": sum(self._errors.values())}
            if error is not None:
                end["error"] = error
            if signal is not None:
                end["signal"] = signal
            self._write(end)
            if self._writer is not None:
                self._writer.close()
        except Exception as exc:  # noqa: BLE001
            self._report("close", exc)
        self._closed = True

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc is None:
            self.close("finished")
        else:
            self.close("interrupted" if isinstance(exc, KeyboardInterrupt) else "crashed",
                       error=error_record(exc, self.step_count + 1))


def _call(ref: weakref.ref[Recorder], method: str, *args: Any, **kwargs: Any) -> None:
    rec = ref()
    if rec is not None and not rec._closed:
        getattr(rec, method)(*args, **kwargs)

