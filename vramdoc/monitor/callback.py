"""``VramdocCallback``: records a Hugging Face Trainer run for ``vramdoc watch``.

::

    trainer = Trainer(..., callbacks=[VramdocCallback("runs/llama-qlora", plan="plan.json")])

Where the numbers come from (transformers 5.23, ``trainer.py``, ``Trainer._run_epoch``):

- **Loss, unfiltered.** ``tr_loss_step = self.training_step(model, inputs, num_items_in_batch)``
  (l. 1909) is the micro-batch loss, already divided by the accumulation steps where Trainer
  divides it. Right after, with ``logging_nan_inf_filter=True`` (the default), a NaN/Inf
  ``tr_loss_step`` is *replaced* by the running average before it reaches ``_tr_loss``
  (l. 1911-1917), so ``on_log`` never sees it. The callback therefore wraps the trainer
  instance's ``training_step`` and sums the returned micro-batch losses of each optimizer
  step: the same number Trainer logs, minus the filter. Callbacks get no trainer reference
  (``CallbackHandler.call_event`` passes model, optimizer, scheduler and dataloaders only), so
  ``on_train_begin`` finds it as ``self`` of the calling frame ``Trainer._inner_training_loop``
  (l. 1653). If it cannot, a forward hook on the model reads ``outputs.loss`` instead.
- **Grad norm, before clipping.** ``grad_norm = self._get_grad_norm(model, grad_norm=...)``
  (l. 1932) is passed to ``_maybe_log_save_evaluate`` only, never to callbacks; the callback
  wraps ``_get_grad_norm`` on the instance to keep its return value.
- **Learning rate** of the step: ``optimizer.param_groups[0]["lr"]`` in ``on_optimizer_step``,
  which runs after ``optimizer.step()`` and before ``lr_scheduler.step()`` (l. 1936-1943).
- **fp16 loss scale and skipped steps:** the optimizer callbacks receive is accelerate's
  ``AcceleratedOptimizer``; its ``scaler`` is the GradScaler and ``step_was_skipped`` is True
  when GradScaler skipped ``optimizer.step()`` on an overflow (accelerate ``optimizer.py``).
- **Tokens and samples:** counted from each micro-batch's ``input_ids`` shape (no device
  sync); Trainer's ``num_input_tokens_seen`` is used instead when it counts.

- **Exceptions** raised in the forward/backward pass (``training_step``) or in the optimizer's
  ``step`` (the OOM of the first step, when AdamW allocates its states) pass through the
  wrappers, which record them (type, message, the step they interrupted) and re-raise them
  untouched. The process's end is recorded by the :class:`Recorder`
  (:mod:`vramdoc.monitor.exits`): crashed, interrupted by SIGTERM or Ctrl-C.

Reading the loss costs one ``.item()`` per optimizer step. Trainer's default NaN filter
already synchronises on every micro-batch (``torch.isnan(tr_loss_step)`` in an ``if``), so this
adds no pipeline drain of its own.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from vramdoc.monitor.recorder import Recorder, to_float

# TrainingArguments the alerts read (recorded in the header).
_ARG_NAMES = (
    "fp16", "bf16", "logging_nan_inf_filter", "max_grad_norm", "gradient_accumulation_steps",
    "per_device_train_batch_size", "learning_rate", "optim", "gradient_checkpointing",
    "logging_steps", "max_steps", "lr_scheduler_type", "weight_decay", "seed",
    "warmup_steps", "save_steps", "eval_steps",
)


def _args_record(args: Any, state: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in _ARG_NAMES:
        value = getattr(args, name, None)
        value = getattr(value, "value", value)  # enums (optim, scheduler) as their strings
        if isinstance(value, bool | int | float | str) or value is None:
            out[name] = value
    out["max_steps"] = getattr(state, "max_steps", None) or out.get("max_steps")
    out["world_size"] = getattr(args, "world_size", 1)
    return out


def _model_record(model: Any) -> dict[str, Any]:
    if model is None:
        return {}
    total = trainable = 0
    for p in model.parameters():
        n = p.numel()
        total += n
        if p.requires_grad:
            trainable += n
    config = getattr(model, "config", None)
    return {
        "class": type(model).__name__,
        "model_type": getattr(config, "model_type", None),
        "name_or_path": getattr(config, "_name_or_path", None) or None,
        "params": total,
        "trainable_params": trainable,
        "dtype": str(next(model.parameters()).dtype).replace("torch.", "") if total else None,
    }


def _find_trainer() -> Any:
    """The Trainer whose loop is calling us: ``self`` in one of the calling frames."""
    from transformers import Trainer

    frame = sys._getframe(1)
    for _ in range(12):
        if frame is None:
            return None
        candidate = frame.f_locals.get("self")
        if isinstance(candidate, Trainer):
            return candidate
        frame = frame.f_back
    return None


class VramdocCallback(TrainerCallback):  # type: ignore[misc]
    """Records every optimizer step of a Trainer run into ``run_dir/events.jsonl``.

    Args:
        run_dir: where the event log goes (created if missing).
        plan: the estimate to compare with: path to ``vramdoc estimate --json`` or
            ``vramdoc plan --json`` output, a mapping of it, or None.
        setup: the run's setup (TrainSetup, mapping or setup-file path); estimated when no
            plan is given and the estimator is installed.
        nvml_interval_s: seconds between NVML samples of the GPU.
        forward_alerts: send the W rules' alerts to the trackers in ``args.report_to``
            (a W&B alert, a TensorBoard text entry, an MLflow tag; see
            :mod:`vramdoc.monitor.forward`). False turns it off.

    Only the main process (``state.is_world_process_zero``) writes.
    """

    def __init__(self, run_dir: str | Path, plan: Any = None, setup: Any = None, *,
                 nvml_interval_s: float = 2.0, forward_alerts: bool = True) -> None:
        self.run_dir = Path(run_dir)
        self.forward_alerts = forward_alerts
        self.forwarder: Any = None  # an AlertForwarder while a run reports to trackers
        self.plan = plan
        self.setup = setup
        self.nvml_interval_s = nvml_interval_s
        self.recorder: Recorder | None = None
        self.mode = "off"  # "trainer" (wrapped methods) | "hook" (forward hook) | "off"
        self._restore: list[tuple[Any, str, Any]] = []
        self._hook: Any = None
        self._losses: list[Any] = []
        self._loss_sum_items = False
        self._grad_norm: Any = None
        self._tokens = 0
        self._samples = 0
        self._lr: float | None = None
        self._skipped: bool | None = None
        self._scale: float | None = None
        self._tokens_seen_start = 0
        self._reported: set[str] = set()

    # --- plumbing -------------------------------------------------------------------------
    def _warn(self, where: str, exc: BaseException) -> None:
        if where not in self._reported:
            self._reported.add(where)
            print(f"vramdoc: callback error in {where}: {type(exc).__name__}: {exc} "
                  "(training goes on)", file=sys.stderr)
            if self.recorder is not None:
                self.recorder.note("recorder_error", f"{where}: {type(exc).__name__}: {exc}")

    def _count_batch(self, inputs: Any) -> None:
        ids = inputs.get("input_ids") if isinstance(inputs, dict) else None
        if ids is None and isinstance(inputs, dict):
            ids = inputs.get("inputs_embeds")
        shape = getattr(ids, "shape", None)
        if shape:
            self._samples += int(shape[0])
            self._tokens += int(shape[0]) * (int(shape[1]) if len(shape) > 1 else 1)

    def _install_trainer_wrappers(self, trainer: Any) -> None:
        original_step = trainer.training_step

        def training_step(model: Any, inputs: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                loss = original_step(model, inputs, *args, **kwargs)
            except BaseException as exc:
                self._record_exception(exc)
                raise
            try:
                self._losses.append(loss)
                self._count_batch(inputs)
            except Exception as exc:  # noqa: BLE001
                self._warn("training_step", exc)
            return loss

        self._restore.append((trainer, "training_step", trainer.__dict__.get("training_step")))
        trainer.training_step = training_step
        for name in ("_get_grad_norm", "_clip_grad_norm"):
            original = getattr(trainer, name, None)
            if original is None:
                continue

            def grad_norm(*args: Any, _original: Any = original, **kwargs: Any) -> Any:
                value = _original(*args, **kwargs)
                self._grad_norm = value
                return value

            self._restore.append((trainer, name, trainer.__dict__.get(name)))
            setattr(trainer, name, grad_norm)
            break
        optimizer = getattr(trainer, "optimizer", None)
        original_opt_step = getattr(optimizer, "step", None)
        if original_opt_step is not None and hasattr(optimizer, "__dict__"):

            # wraps: keeps the attributes torch's LR scheduler marks the step with
            @functools.wraps(original_opt_step)
            def optimizer_step(*args: Any, **kwargs: Any) -> Any:
                try:
                    return original_opt_step(*args, **kwargs)
                except BaseException as exc:
                    self._record_exception(exc)
                    raise

            self._restore.append((optimizer, "step", optimizer.__dict__.get("step")))
            optimizer.step = optimizer_step
        self.mode = "trainer"

    def _record_exception(self, exc: BaseException) -> None:
        """Record an exception on its way up (never raises: the original must propagate)."""
        try:
            if self.recorder is not None:
                self.recorder.exception(exc)
        except Exception:  # noqa: BLE001, S110 - the training error matters, not ours
            pass

    def _install_forward_hook(self, model: Any) -> None:
        def hook(module: Any, args: Any, kwargs: Any, output: Any) -> None:
            if not module.training:
                return
            try:
                loss = output.get("loss") if hasattr(output, "get") else getattr(output, "loss",
                                                                                  None)
                if loss is not None:
                    self._losses.append(loss.detach())
                    # Normalised by the tokens of the whole step: micro-batch losses add up.
                    self._loss_sum_items = kwargs.get("num_items_in_batch") is not None
                self._count_batch(kwargs)
            except Exception as exc:  # noqa: BLE001
                self._warn("forward_hook", exc)

        self._hook = model.register_forward_hook(hook, with_kwargs=True)
        self.mode = "hook"

    def _uninstall(self) -> None:
        for obj, name, previous in reversed(self._restore):
            if previous is not None:  # someone had wrapped it before us: put theirs back
                setattr(obj, name, previous)
            else:  # drop our instance attribute: the class method shows again
                obj.__dict__.pop(name, None)
        self._restore.clear()
        if self._hook is not None:
            self._hook.remove()
            self._hook = None

    def _step_loss(self) -> float | None:
        if not self._losses:
            return None
        # One sum on the device, one read: a single sync however many micro-batches.
        total = to_float(sum(self._losses[1:], self._losses[0]))
        if total is not None and self.mode == "hook" and not self._loss_sum_items:
            total /= len(self._losses)
        return total

    # --- Trainer events -------------------------------------------------------------------
    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None,
                       **kwargs: Any) -> None:
        if not state.is_world_process_zero:
            return
        if self.recorder is not None:
            # train() again on the same callback (auto_find_batch_size retrying after an
            # OOM, or a caught error): the earlier session ends here, with what stopped it.
            self._uninstall()
            previous, self.recorder = self.recorder, None
            error = previous.last_error
            previous.close("crashed" if error else "exited", error=error)
        try:
            header_args = _args_record(args, state)
            header_args["model"] = _model_record(model)
            trainer = _find_trainer()
            recorder_kwargs: dict[str, Any] = dict(
                plan=self.plan, setup=self.setup, args=header_args, source="trainer",
                nvml_interval_s=self.nvml_interval_s)
            self.forwarder = None
            if self.forward_alerts:
                from vramdoc.monitor.forward import (
                    AlertForwarder,
                    ForwardingRecorder,
                    trackers_of,
                )

                if trackers_of(getattr(args, "report_to", None)):
                    self.forwarder = AlertForwarder(args.report_to, trainer=trainer,
                                                    background=True)
            if self.forwarder is not None:
                self.recorder = ForwardingRecorder(self.run_dir, listener=self.forwarder,
                                                   **recorder_kwargs)
            else:
                self.recorder = Recorder(self.run_dir, **recorder_kwargs)
            if trainer is not None:
                self._install_trainer_wrappers(trainer)
            elif model is not None:
                self._install_forward_hook(model)
                self.recorder.note("degraded", "Trainer not found in the call stack: loss read "
                                   "from the model's output, grad-norm not recorded")
            self._tokens_seen_start = int(getattr(state, "num_input_tokens_seen", 0) or 0)
            self.recorder.restart_clock()
        except Exception as exc:  # noqa: BLE001
            self._warn("on_train_begin", exc)

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        # Trainer calls this once per optimizer step, before the first micro-batch.
        self._losses.clear()
        self._grad_norm = None
        self._tokens = self._samples = 0

    def on_optimizer_step(self, args: Any, state: Any, control: Any, optimizer: Any = None,
                          **kwargs: Any) -> None:
        if self.recorder is None or optimizer is None:
            return
        try:
            self._lr = float(optimizer.param_groups[0]["lr"])
            scaler = getattr(optimizer, "scaler", None)
            if scaler is not None:
                self._skipped = bool(getattr(optimizer, "step_was_skipped", False))
                self._scale = float(scaler.get_scale())
            else:
                self._skipped = None
                self._scale = None
        except Exception as exc:  # noqa: BLE001
            self._warn("on_optimizer_step", exc)

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.recorder is None:
            return
        try:
            tokens = self._tokens
            seen = int(getattr(state, "num_input_tokens_seen", 0) or 0)
            if seen > self._tokens_seen_start:  # Trainer counts (maybe non-padding) tokens
                tokens = seen - self._tokens_seen_start
                self._tokens_seen_start = seen
            self.recorder.step(
                loss=self._step_loss(), grad_norm=self._grad_norm, lr=self._lr,
                step=state.global_step, epoch=state.epoch, tokens=tokens or None,
                samples=self._samples or None, loss_scale=self._scale, skipped=self._skipped)
        except Exception as exc:  # noqa: BLE001
            self._warn("on_step_end", exc)
        finally:
            self._losses.clear()
            self._grad_norm = None
            self._tokens = self._samples = 0

    def on_log(self, args: Any, state: Any, control: Any, logs: Any = None,
               **kwargs: Any) -> None:
        if self.recorder is not None and logs:
            self.recorder.log(dict(logs), step=state.global_step)

    def on_evaluate(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.recorder is not None:
            self.recorder.mark_interrupted("evaluate")

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.recorder is not None:
            self.recorder.mark_interrupted("save", f"checkpoint at step {state.global_step}")

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._uninstall()
        if self.forwarder is not None:
            self.forwarder.close()
        if self.recorder is not None:
            self.recorder.close("finished")
            self.recorder = None
