"""Alerts raised during training, sent to the trackers the run reports to.

:class:`AlertForwarder` sees every event the recorder writes, evaluates the W rules on them
as the watch does (:class:`~vramdoc.monitor.context.ContextBuilder` + the rule engine; only
the bounded context is kept, not the run's history) and sends each new alert episode to the
trackers named in ``TrainingArguments.report_to``:

- ``wandb``: ``wandb.alert(title, text, level)`` when a W&B run is active;
- ``tensorboard``: a text entry under ``vramdoc/alerts`` at the alert's step, written with the
  ``TensorBoardCallback``'s own writer when the Trainer has one, else with a
  ``SummaryWriter`` of vramdoc's in the same logging dir;
- ``mlflow``: a run tag ``vramdoc.<CODE>`` when an MLflow run is active.

A tracker that fails is skipped with one warning: the monitor never breaks training. Rule
evaluation costs about a millisecond per step (the watch's context and ~20 conditions), so it
runs on a background thread by default: the training loop only queues the event.
"""

from __future__ import annotations

import queue
import sys
import threading
import weakref
from pathlib import Path
from typing import Any

from vramdoc.monitor.context import ContextBuilder
from vramdoc.monitor.recorder import Recorder
from vramdoc.monitor.run import decode_step, load_alert_rules

TRACKERS = ("wandb", "tensorboard", "mlflow")
TB_TAG = "vramdoc/alerts"


def trackers_of(report_to: Any) -> list[str]:
    """The trackers vramdoc can forward to among ``report_to`` (a list or one name)."""
    names = [report_to] if isinstance(report_to, str) else list(report_to or [])
    return [t for t in TRACKERS if t in names]


class AlertForwarder:
    """Evaluate the W rules on recorded events; send new alert episodes to trackers."""

    def __init__(self, report_to: Any, *, trainer: Any = None,
                 logging_dir: str | Path | None = None, background: bool = False) -> None:
        self.targets = trackers_of(report_to)
        self.rules, self.rules_error = load_alert_rules()
        self.ctx = ContextBuilder()
        self.logging_dir = Path(logging_dir) if logging_dir else None
        self._trainer = weakref.ref(trainer) if trainer is not None else None
        self._own_writer: Any = None
        self._last: dict[str, int] = {}  # code -> last step it fired
        self._prev_step: int | None = None
        self._warned: set[str] = set()
        self.sent: list[tuple[str, str, int]] = []  # (tracker, code, step) forwarded
        self._queue: queue.SimpleQueue[dict[str, Any] | None] | None = None
        self._thread: threading.Thread | None = None
        if background:
            self._queue = queue.SimpleQueue()
            self._thread = threading.Thread(target=self._drain, name="vramdoc-alerts",
                                            daemon=True)
            self._thread.start()

    def _drain(self) -> None:
        assert self._queue is not None
        while (event := self._queue.get()) is not None:
            self._handle(event)

    def _warn(self, where: str, exc: BaseException) -> None:
        if where not in self._warned:
            self._warned.add(where)
            print(f"vramdoc: could not send alerts to {where}: {type(exc).__name__}: {exc} "
                  "(training goes on; further errors there are not shown)", file=sys.stderr)

    def __call__(self, event: dict[str, Any]) -> None:
        if self._queue is not None:
            self._queue.put(event)  # the training loop only queues
        else:
            self._handle(event)

    def _handle(self, event: dict[str, Any]) -> None:
        try:
            self._on_event(event)
        except Exception as exc:  # noqa: BLE001 - never into training
            self._warn("the alert evaluation", exc)

    def _on_event(self, event: dict[str, Any]) -> None:
        kind = event.get("kind")
        if kind == "header":
            self.ctx = ContextBuilder(event)
            self._last.clear()
            self._prev_step = None
        elif kind == "log":
            self.ctx.observe_log(event)
        elif kind == "step" and self.rules:
            from vramdoc.engine import evaluate

            ev = decode_step(event)
            step = int(ev.get("step") or 0)
            context = self.ctx.push(ev)
            for f in evaluate(self.rules, context):
                last = self._last.get(f.code)
                self._last[f.code] = step
                # an episode (consecutive recorded steps) is forwarded once, at its start
                if last is None or (step - last > 1 and last != self._prev_step):
                    self.forward(f, step)
            self._prev_step = step

    def forward(self, finding: Any, step: int) -> None:
        """Send one alert to every target tracker."""
        for target in self.targets:
            try:
                sent = getattr(self, f"_to_{target}")(finding, step)
            except Exception as exc:  # noqa: BLE001 - a tracker's failure is not training's
                self._warn(target, exc)
                continue
            if sent:
                self.sent.append((target, finding.code, step))

    # --- trackers ---------------------------------------------------------------------------
    @staticmethod
    def _text(f: Any, step: int) -> str:
        return (f"**{f.code} {f.name}** ({f.severity}, step {step}): {f.message}\n\n"
                f"fix: {f.fix}")

    def _to_wandb(self, f: Any, step: int) -> bool:
        import wandb

        if wandb.run is None:
            return False
        levels = {"error": wandb.AlertLevel.ERROR, "warning": wandb.AlertLevel.WARN}
        wandb.alert(title=f"vramdoc {f.code} {f.name}", text=self._text(f, step),
                    level=levels.get(f.severity, wandb.AlertLevel.INFO))
        return True

    def _tb_writer(self) -> Any:
        trainer = self._trainer() if self._trainer is not None else None
        handler = getattr(trainer, "callback_handler", None)
        for cb in getattr(handler, "callbacks", []):
            if type(cb).__name__ == "TensorBoardCallback":
                if getattr(cb, "tb_writer", None) is not None:
                    return cb.tb_writer
                if getattr(cb, "logging_dir", None):
                    self.logging_dir = Path(cb.logging_dir)
        if self._own_writer is None:
            from torch.utils.tensorboard import SummaryWriter

            log_dir = self.logging_dir or Path("runs") / "vramdoc"
            self._own_writer = SummaryWriter(log_dir=str(log_dir))
        return self._own_writer

    def _to_tensorboard(self, f: Any, step: int) -> bool:
        writer = self._tb_writer()
        writer.add_text(TB_TAG, self._text(f, step), step)
        writer.flush()
        return True

    def _to_mlflow(self, f: Any, step: int) -> bool:
        import mlflow

        if mlflow.active_run() is None:
            return False
        # MLflow tag values are limited to 5,000 characters (mlflow.utils.validation)
        mlflow.set_tag(f"vramdoc.{f.code}", f"step {step}: {f.message}"[:5000])
        return True

    def close(self, timeout: float = 10.0) -> None:
        """Send what is queued (waiting up to ``timeout`` seconds), then close vramdoc's writer."""
        if self._thread is not None and self._queue is not None:
            self._queue.put(None)
            self._thread.join(timeout)
            self._thread = None
            self._queue = None  # later events (the end) are handled in place
        if self._own_writer is not None:
            try:
                self._own_writer.close()
            except Exception as exc:  # noqa: BLE001
                self._warn("tensorboard", exc)
            self._own_writer = None


class ForwardingRecorder(Recorder):
    """A :class:`Recorder` that also hands every event it writes to a listener."""

    def __init__(self, *args: Any, listener: Any, **kwargs: Any) -> None:
        self._listener = listener  # set first: the header is written by Recorder.__init__
        super().__init__(*args, **kwargs)

    def _write(self, event: dict[str, Any]) -> None:
        super()._write(event)
        if not self._closed:
            self._listener(event)
