"""Training-curve figures for the W rules: plateaus, overfitting, divergence, schedules.

:class:`CurveTracker` is fed each step event (and each logged evaluation) of a run, in
order, and returns the curve names of that step's context (declared in
``rules/_contexts/watch.yaml``). It works on *logged points*, not optimizer steps: a
Trainer source logs every ``logging_steps`` steps, vramdoc's recorder every step. All
history is bounded (deques and running values), so a follower stays streaming.
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from typing import Any

SMOOTH = 5  # points in the moving median of the training loss
IMPROVE = 0.01  # a smoothed loss this much (relative) under the best counts as improvement
CLIP_WINDOW = 20  # points over which clipping saturation is judged
SCALE_WINDOW = 500  # steps over which loss-scale drops are counted
TPUT_WINDOW = 50  # points in the early baseline and in "now" for throughput decay
TPUT_SKIP = 10  # first points left out of the baseline (compilation, warm caches)

# Learning-rate ranges typical for each method, as rules T301-T304 state them (their
# sources: Alpaca / Llama-2 SFT for full fine-tunes, the LoRA paper, the QLoRA paper).
# tests/monitor/test_curves.py checks these bounds against the T rules themselves.
# QLoRA without a model size: the union of T303 (< 20B: 1e-4..3e-4) and T304 (>= 20B).
LR_RANGES: dict[str, tuple[float, float, str]] = {
    "full": (1e-6, 1e-4, "T301"),
    "lora": (5e-5, 5e-4, "T302"),
    "qlora": (5e-5, 3e-4, "T303/T304"),
}
LR_TINY = 1e-6
UNKNOWN_RANGE = ("of the method (not recorded here): 1e-06..0.0001 full, 5e-05..0.0005 LoRA, "
                 "5e-05..0.0003 QLoRA")  # below every method's range (T301's lower bound)


def _finite(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def method_of(header: dict[str, Any]) -> str | None:
    """The fine-tuning method a source states (``full`` / ``lora`` / ``qlora``), else None."""
    method = header.get("method")
    if method in ("gptq-lora", "awq-lora", "qlora-int8"):
        return "lora"
    return method if method in LR_RANGES else None


class CurveTracker:
    """Curve state of one training session (one header)."""

    def __init__(self, header: dict[str, Any] | None = None) -> None:
        header = header or {}
        args = header.get("args") or {}
        self.method = method_of(header)
        lo_hi = LR_RANGES.get(self.method or "")
        self.lr_low, self.lr_high = (lo_hi[0], lo_hi[1]) if lo_hi else (None, None)
        self.lr_rule = lo_hi[2] if lo_hi else None
        max_steps = args.get("max_steps")
        self.max_steps = max_steps if _finite(max_steps) and max_steps > 0 else None
        save = args.get("save_steps")
        self.save_steps = int(save) if _finite(save) and save >= 1 else None
        mgn = args.get("max_grad_norm")
        self.clip_assumed = mgn is None and bool(header.get("loss_logged"))
        # Trainer's default max_grad_norm is 1.0 (TrainingArguments); trainer_state.json
        # does not record it, so a Trainer source without arguments is judged against it.
        self.clip_threshold = 1.0 if self.clip_assumed else mgn
        # steps of the checkpoint-N folders a Trainer output dir held when it was read
        cks = header.get("checkpoints")
        self.checkpoints = ({int(c) for c in cks if _finite(c)} if isinstance(cks, list)
                            else None)
        self.scheduler = args.get("lr_scheduler_type")
        self.warmup_steps = args.get("warmup_steps")
        # message texts fixed by the header: formatted once, not per step
        self.lr_range_text = (f"{self.lr_low:g}..{self.lr_high:g} for {self.method} "
                              f"(rule {self.lr_rule})" if self.method else UNKNOWN_RANGE)
        try:
            self.clip_text: str | None = self._clip_text()
        except (TypeError, ValueError):  # a max_grad_norm that is no number: raise per step
            self.clip_text = None
        # training loss
        self.recent: deque[float] = deque(maxlen=SMOOTH)
        self.loss_start: float | None = None
        self.loss_best: float | None = None
        self.loss_best_step: int | None = None
        self.anchor: float | None = None
        self.since_best = 0
        self.rise_points = 0
        # learning rate
        self.prev_lr: float | None = None
        self.lr_rising = False
        self.lr_ref: float | None = None  # the rate when warmup ended (or the first rate)
        self.lr_max: float | None = None
        self.warmup_end_step: int | None = None
        self.warmup_seen = False
        self.prev_step: int | None = None
        # evaluation
        self.eval_loss: float | None = None
        self.eval_step: int | None = None
        self.eval_points = 0
        self.eval_best: float | None = None
        self.eval_best_step: int | None = None
        self.eval_since_best = 0
        self.loss_at_eval_best: float | None = None
        # clipping, loss scale, throughput
        self.clipped: deque[bool] = deque(maxlen=CLIP_WINDOW)
        self.clipped_count = 0  # True values in ``clipped`` (kept as it slides)
        self.prev_scale: float | None = None
        self.scale_drops: deque[int] = deque()
        self.tput_base: list[float] = []
        self.tput_now: deque[float] = deque(maxlen=TPUT_WINDOW)
        self.tput_points = 0

    def _clip_text(self) -> str:
        return (f"max_grad_norm {self.clip_threshold:g}"
                + (" (Trainer's default; this source does not record it)"
                   if self.clip_assumed else "")) if self.clip_threshold else "?"

    def _checkpoint_text(self, best: int) -> str:
        """Which checkpoint holds the model of step ``best``, as far as the source shows."""
        saved = self.save_steps is None or best % self.save_steps == 0
        on_disk = self.checkpoints
        if on_disk is not None and on_disk and best <= max(on_disk):
            if best in on_disk:
                return f"checkpoint-{best}"
            if saved:
                return (f"checkpoint-{best}, which is no longer on disk (save_total_limit "
                        "deleted it; with load_best_model_at_end=True Trainer keeps the best)")
        if saved:
            return f"checkpoint-{best}"
        kept = best // self.save_steps * self.save_steps  # type: ignore[operator]
        return (f"the checkpoint nearest step {best}: none was saved there (save_steps "
                f"{self.save_steps}); the nearest earlier is checkpoint-{kept}")

    # --- evaluations -----------------------------------------------------------------------
    def observe_log(self, ev: dict[str, Any]) -> None:
        """A ``log`` event: remember an evaluation loss."""
        logs = ev.get("logs") or {}
        value = logs.get("eval_loss")
        if not _finite(value):
            return
        step = ev.get("step")
        self.eval_loss = float(value)
        self.eval_step = int(step) if _finite(step) else self.eval_step
        self.eval_points += 1
        if self.eval_best is None or self.eval_loss < self.eval_best:
            self.eval_best, self.eval_best_step = self.eval_loss, self.eval_step
            self.eval_since_best = 0
            self.loss_at_eval_best = self._smooth()
        else:
            self.eval_since_best += 1

    # --- steps -----------------------------------------------------------------------------
    def _smooth(self) -> float | None:
        # a median: one spike (W106's business) does not move it, a trend does
        return statistics.median(self.recent) if self.recent else None

    def push(self, step: int, ev: dict[str, Any], throughput: float | None) -> dict[str, Any]:
        loss, lr, gn = ev.get("loss"), ev.get("lr"), ev.get("grad_norm")
        if _finite(loss):
            self.recent.append(float(loss))
            if self.loss_start is None and len(self.recent) == SMOOTH:
                self.loss_start = self._smooth()
        smooth = self._smooth() if len(self.recent) == SMOOTH else None
        if smooth is not None:
            # improvement is judged against the loss at the last improvement (the anchor),
            # so a slow steady decline adds up to 1 % and counts
            # during warmup a flat loss is expected: the plateau count starts after it
            if (self.anchor is None or smooth < self.anchor * (1 - IMPROVE)
                    or (_finite(lr) and self.prev_lr is not None and lr > self.prev_lr)):
                self.anchor, self.loss_best_step, self.since_best = smooth, step, 0
            else:
                self.since_best += 1
            self.loss_best = smooth if self.loss_best is None else min(self.loss_best, smooth)
            self.rise_points = self.rise_points + 1 if smooth > 1.5 * self.loss_best else 0

        if _finite(lr):
            rising = self.prev_lr is not None and lr > self.prev_lr * (1 + 1e-9)
            self.lr_max = max(self.lr_max or 0.0, float(lr)) if self.lr_ref is None else self.lr_max
            if rising:
                self.warmup_seen = True
            elif self.prev_lr is not None and self.lr_ref is None:
                # the first point that does not rise ends warmup (or shows there is none):
                # the rate reached then is the schedule's peak; later spikes do not move it
                self.lr_ref = self.lr_max
                if self.warmup_seen:
                    self.warmup_end_step = self.prev_step
            self.lr_rising = rising
            self.prev_lr = float(lr)
        self.prev_step = step
        lr_fraction = lr / self.lr_ref if _finite(lr) and self.lr_ref else None
        progress = step / self.max_steps if self.max_steps else None
        warmup_fraction = None
        if self.max_steps and self.warmup_seen:
            # while warming up: the steps so far; afterwards the step warmup ended at (a
            # later rise, such as a spike, is not warmup)
            end = step if self.lr_ref is None else self.warmup_end_step
            warmup_fraction = end / self.max_steps if end else None

        if _finite(gn) and _finite(self.clip_threshold) and self.clip_threshold > 0:
            clipped = gn > self.clip_threshold
            if len(self.clipped) == CLIP_WINDOW and self.clipped[0]:
                self.clipped_count -= 1
            self.clipped.append(clipped)
            self.clipped_count += clipped
        clip_fraction = (self.clipped_count / len(self.clipped)
                         if len(self.clipped) >= CLIP_WINDOW // 2 else None)

        scale = ev.get("loss_scale")
        if _finite(scale):
            if self.prev_scale is not None and scale < self.prev_scale:
                self.scale_drops.append(step)
            self.prev_scale = float(scale)
        while self.scale_drops and self.scale_drops[0] <= step - SCALE_WINDOW:
            self.scale_drops.popleft()

        decay = None
        if _finite(throughput):
            self.tput_points += 1
            if self.tput_points > TPUT_SKIP and len(self.tput_base) < TPUT_WINDOW:
                self.tput_base.append(float(throughput))  # type: ignore[arg-type]
            elif len(self.tput_base) >= TPUT_WINDOW:
                self.tput_now.append(float(throughput))  # type: ignore[arg-type]
            if len(self.tput_now) >= TPUT_WINDOW:
                base = statistics.median(self.tput_base)
                decay = statistics.median(self.tput_now) / base if base else None

        best_step = self.eval_best_step
        checkpoint = "?" if best_step is None else self._checkpoint_text(best_step)
        lr_peak = self.lr_ref
        too_low = lr_peak is not None and lr_peak < (self.lr_low or LR_TINY)
        clip_text = self.clip_text if self.clip_text is not None else self._clip_text()
        return {
            "loss_smooth": smooth,
            "loss_start": self.loss_start,
            "loss_best": self.loss_best,
            "loss_best_step": self.loss_best_step,
            "loss_drop": (1 - smooth / self.loss_start
                          if smooth is not None and self.loss_start else None),
            "loss_rise": smooth / self.loss_best if smooth is not None and self.loss_best else None,
            "loss_rise_points": self.rise_points,
            "plateau_points": self.since_best if smooth is not None else 0,
            "plateau_steps": (step - self.loss_best_step
                              if self.loss_best_step is not None else None),
            "lr_rising": self.lr_rising,
            "lr_peak": lr_peak,
            "lr_fraction": lr_fraction,
            "lr_too_low": too_low,
            "warmup_fraction": warmup_fraction,
            "lr_scheduler_type": self.scheduler,
            "warmup_steps": self.warmup_steps,
            "max_steps": self.max_steps,
            "progress": progress,
            "method": self.method,
            "lr_low": self.lr_low,
            "lr_high": self.lr_high,
            "lr_range_text": self.lr_range_text,
            "eval_loss": self.eval_loss,
            "eval_step": self.eval_step,
            "eval_points": self.eval_points,
            "eval_best_loss": self.eval_best,
            "eval_best_step": best_step,
            "eval_since_best": self.eval_since_best,
            "eval_loss_ratio": (self.eval_loss / self.eval_best
                                if self.eval_loss is not None and self.eval_best else None),
            "loss_since_eval_best": (smooth / self.loss_at_eval_best
                                     if smooth is not None and self.loss_at_eval_best else None),
            "best_checkpoint_text": checkpoint,
            "clip_fraction": clip_fraction,
            "clip_points": len(self.clipped),
            "clip_threshold": self.clip_threshold,
            "clip_text": clip_text,
            "loss_scale_drops": len(self.scale_drops),
            "throughput_decay_ratio": decay,
        }
