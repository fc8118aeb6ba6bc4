"""The probe recipe: one training run of a setup, read top to bottom.

    choose the device -> build the model as the snippet does -> build Trainer's optimizer
    -> run steps (forward, backward, optimizer step), watching memory and numerics
    -> replay the memory timeline -> compare with the estimate -> diagnose.

Devices:
- ``cuda``: a real GPU. Per-phase peaks come from the CUDA caching allocator
  (``reset_peak_memory_stats`` / ``max_memory_allocated`` / ``max_memory_reserved`` at each
  phase boundary), device use from NVML (or ``cudaMemGetInfo``); the live-storage tracker runs
  as well to split the bytes into components.
- ``cpu``: real CPU tensors, counted by the tracker as CUDA would count them (512-byte blocks,
  foreach optimizer temporaries, host-side step counters excluded).
- ``fake``: the same step under ``FakeTensorMode`` on fake cpu tensors: nothing is allocated,
  every allocation is counted; a 7B step takes seconds. No values, so no numerics.

An out-of-memory error is caught and reported: real on cuda, emulated on cpu/fake when the
setup (or ``--gpu``) names a card and the tracked bytes pass what it can allocate.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from typing import Any

import torch

from vramdoc.errors import VramdocError
from vramdoc.probe import build, devices, optim
from vramdoc.probe.numerics import NumericsWatch
from vramdoc.probe.result import MemoryView, OomEvent, ProbeResult, StepRecord
from vramdoc.probe.tracker import PHASES, EmulatedOutOfMemory, MemoryTracker, Trace
from vramdoc.setup import TrainSetup

# `auto` runs real CPU steps below this many parameters, fake-tensor steps above it.
AUTO_CPU_MAX_PARAMS = 300_000_000
# CUDA context + library workspaces when the estimator cannot say (shared/REFERENCE.md
# section 1: "300-600 MiB on recent drivers with lazy loading").
DEFAULT_CUDA_CONTEXT_BYTES = 500 * 1024**2


def choose_device(requested: str, n_params: int) -> str:
    """``auto``: cuda when present, else cpu for small models, else fake."""
    if requested != "auto":
        return requested
    if torch.cuda.is_available():
        return "cuda"
    return "cpu" if n_params < AUTO_CPU_MAX_PARAMS else "fake"


def synthetic_batch(setup: TrainSetup, vocab_size: int, device: str,
                    generator: torch.Generator | None) -> dict[str, torch.Tensor]:
    """A micro-batch of the planned shape: random token ids, labels as Trainer would pass them.

    No attention_mask: a full-length, unpadded batch, for which transformers builds no mask
    (causal SDPA), as for packed or equal-length data.
    """
    b, s = setup.training.per_device_train_batch_size, setup.max_seq_length
    dev = "cpu" if device == "fake" else device
    ids = torch.randint(0, vocab_size, (b, s), device=dev, generator=generator)
    if setup.task == "sequence-classification":
        labels = torch.randint(0, setup.num_labels, (b,), device=dev, generator=generator)
    else:
        labels = ids.clone()  # the collator gives labels their own tensor
    return {"input_ids": ids, "labels": labels}


def _memory_view(trace: Trace, cuda: devices.CudaMeter | None) -> MemoryView:
    phases = {p: trace.phases[p].allocated_bytes for p in PHASES if p in trace.phases}
    comps = {p: dict(trace.phases[p].components) for p in phases}
    reserved = None
    if cuda is not None and cuda.allocated:
        # the allocator's figures are the measurement; the tracker only splits them (bytes
        # the tracker cannot see, e.g. cuBLAS workspaces, are the difference)
        phases = {p: cuda.allocated.get(p, phases.get(p, 0)) for p in phases}
        reserved = max(cuda.reserved.values())
    peak_phase = max(phases, key=lambda p: phases[p])
    return MemoryView(peak_allocated_bytes=phases[peak_phase], peak_phase=peak_phase,
                      phases=phases, components=comps[peak_phase], phase_components=comps,
                      paged_bytes=trace.paged_bytes, peak_reserved_bytes=reserved)


def estimate_view(setup: TrainSetup, spec: Any, gpu: Any) -> tuple[MemoryView | None, Any, str]:
    """The estimator's figures for the same setup, or why there are none."""
    try:
        from vramdoc.estimate import estimate

        est = estimate(setup, model=spec, gpu=gpu)
        view = MemoryView(
            peak_allocated_bytes=int(est.peak_allocated_bytes), peak_phase=est.peak_phase,
            phases={p: int(v) for p, v in est.phases.items()},
            components={c: int(v) for c, v in est.components.items()},
            phase_components={p: {c: int(v) for c, v in cs.items()}
                              for p, cs in est.phase_components.items()},
            paged_bytes=int(getattr(est, "paged_bytes", 0) or 0),
            peak_reserved_bytes=getattr(est, "peak_reserved_bytes", None),
            device_bytes=getattr(est, "device_bytes", None))
        return view, est, ""
    except Exception as exc:  # the estimator is a separate area: never let it sink a probe
        return None, None, f"{type(exc).__name__}: {exc}"


def emulated_limit(gpu: Any, est: Any) -> int:
    """What a card lets torch allocate: its memory minus the CUDA context (modelled)."""
    context = getattr(est, "cuda_context_bytes", None) or DEFAULT_CUDA_CONTEXT_BYTES
    return int(gpu.memory_bytes) - int(context)


def run_probe(setup: TrainSetup, spec: Any, *, device: str = "auto", steps: int = 2,
              gpu: Any = None, weights: str | None = None, seed: int = 0,
              emulate_oom: bool = True, detail: bool = False,
              progress: Callable[[int, int, float], None] | None = None,
              sharded: Any = None, extrapolate: bool = False) -> ProbeResult:
    """Run ``steps`` optimizer steps of ``setup`` on ``device`` and measure them.

    Args:
        setup: the run to probe.
        spec: its ModelSpec (``spec.config`` is what the model is built from).
        device: auto | cuda | cpu | fake.
        steps: optimizer steps (each of ``gradient_accumulation_steps`` micro-batches).
        gpu: a GpuSpec to compare with (and, on cpu/fake, to emulate out-of-memory against).
        weights: a local checkpoint directory (real devices only).
        seed: seeds the weights and the synthetic batches.
        emulate_oom: raise an emulated OOM on cpu/fake when the card's limit is passed.
        detail: keep each saved tensor's op, shape and dtype (``saved_tensors_by_layer``).
        progress: called after each step with (steps done, steps asked, seconds so far).
        sharded: a :class:`vramdoc.probe.sharded.ShardedRun`: trace one rank of an FSDP2 run
            (fake device only; the figures are per rank).
        extrapolate: on fake tensors, when every decoder layer is identical, trace 2-, 3- and
            4-layer builds and build the full timeline from them (:mod:`.segments`: the same
            bytes as a full trace); otherwise, or when a check fails, trace every layer.

    A KeyboardInterrupt (Ctrl-C, SIGINT) between or inside steps stops the run: the result
    covers the steps done, with ``interrupted`` set. An exception a library raises (while
    building the model or in a step) becomes ``step_error`` (doctor rule D190), not a crash.
    """
    device = choose_device(device, int(getattr(spec, "n_params", 0) or 0))
    kwargs: dict[str, Any] = dict(device=device, steps=steps, gpu=gpu, weights=weights, seed=seed,
                                  emulate_oom=emulate_oom, detail=detail)
    why = ""
    if extrapolate and device == "fake" and sharded is None:
        from vramdoc.probe import segments

        plan, why = segments.plan(setup, spec)
        if plan is not None:
            est_view, est, est_error = estimate_view(setup, spec, gpu)
            full_limit = emulated_limit(gpu, est) if gpu is not None and emulate_oom else None

            def shallow(s: Any, last: bool) -> segments.Shallow:
                got = _steps(setup, s, progress=progress if last else None, sharded=None,
                             **kwargs)
                return segments.Shallow(got[0], got[1])

            got, why = segments.run(plan, shallow, full_limit)
            if got is not None:
                result, trace = got
                # the full model's estimate (a shallow spec's config is not what it estimates)
                result.estimate, result.estimate_error = est_view, est_error or None
                result.limit_bytes = full_limit
                if trace is None:  # interrupted
                    from vramdoc.probe import doctor

                    doctor.diagnose(result, setup, spec, gpu)
                    return result
                return _conclude(result, trace, setup, spec, gpu, None, None, [], device)
    result, tracker, cuda, watch, phase_seconds = _steps(setup, spec, progress=progress,
                                                         sharded=sharded, **kwargs)
    if why:
        result.notes.append(f"traced every layer: {why}")
    if tracker is None:  # the build raised
        from vramdoc.probe import doctor

        doctor.diagnose(result, setup, spec, gpu)
        return result
    return _conclude(result, tracker.trace(), setup, spec, gpu, cuda, watch, phase_seconds,
                     device)


def _steps(setup: TrainSetup, spec: Any, *, device: str, steps: int, gpu: Any,
           weights: str | None, seed: int, emulate_oom: bool, detail: bool,
           progress: Callable[[int, int, float], None] | None, sharded: Any
           ) -> tuple[ProbeResult, MemoryTracker | None, devices.CudaMeter | None,
                      NumericsWatch | None, list[float]]:
    """Build the model and run the steps under the tracker (the tracker is None when the
    build raised: ``step_error`` says why)."""
    t = setup.training
    notes: list[str] = []
    measured_items = ["allocated bytes per phase and component (live-storage tracker)"]
    modelled_items: list[str] = []
    if device == "cuda":
        measured_items.append("per-phase allocator peaks (max_memory_allocated/reserved)")
    else:
        modelled_items += [
            "CUDA's 512-byte block rounding applied to every storage",
            "CUDA context and library workspaces (not part of allocated)",
            "allocator reservation and fragmentation (reserved > allocated)",
            "foreach optimizer temporaries (CPU runs them through the same foreach ops)",
            "attention dropout inside SDPA (run without it: a GPU's fused kernels keep no "
            "dropout mask, CPU's math fallback would)",
        ]
    est_view, est, est_error = estimate_view(setup, spec, gpu)

    # 1. The tracker: exact bytes on cpu/fake; on CUDA it splits the allocator's bytes.
    limit = None
    if gpu is not None and device != "cuda" and emulate_oom:
        limit = emulated_limit(gpu, est)
        modelled_items.append("out-of-memory: allocated bytes vs the card's memory minus the "
                              "CUDA context")
    # ops: each storage's aten op, to align the timelines of shallow builds (segments)
    tracker = MemoryTracker(round_to=512, limit_bytes=limit, detail=detail, ops=True)
    torch.manual_seed(seed)
    generator = None if device == "fake" else torch.Generator(
        device="cpu" if device != "cuda" else "cuda").manual_seed(seed)
    cuda = devices.CudaMeter() if device == "cuda" else None
    if cuda is not None:
        torch.cuda.reset_peak_memory_stats()
    result = ProbeResult(
        model=spec.name, device=device, device_name=devices.device_name(device),
        method=setup.method,
        batch_size=t.per_device_train_batch_size, seq_len=setup.max_seq_length,
        steps_requested=steps, steps_run=0, n_params=0, n_trainable=0, measured=None,
        estimate=est_view, estimate_error=est_error or None, limit_bytes=limit,
        measured_items=measured_items, modelled_items=modelled_items, notes=notes)
    if gpu is not None:
        result.gpu = {"name": gpu.name, "memory_bytes": int(gpu.memory_bytes),
                      "bf16": bool(gpu.bf16),
                      "compute_capability": list(getattr(gpu, "compute_capability", ()))}

    watch: NumericsWatch | None = None

    sigint: _SigintFlag | None = None
    opt: optim.OptimizerRun | None = None
    phase_seconds: list[float] = []
    run_started = time.perf_counter()
    try:
        build.preload(setup, spec.model_type, spec.config)
        meta = build.build_meta(setup, spec.model_type, spec.config, spec.checkpoint_dtype) \
            if device == "fake" else None
    except VramdocError:
        raise
    except Exception as exc:  # noqa: BLE001 - a library refusing the setup is a finding
        result.step_error = _first_line(exc)
        return result, None, cuda, watch, phase_seconds
    if sharded is not None:
        from vramdoc.probe import sharded as sharding

        result.sharding = sharded.to_json()
        measured_items[0] = (f"allocated bytes per phase and component of rank {sharded.rank} "
                             f"of {sharded.world} ({sharded.label}, fake process group)")
    with contextlib.ExitStack() as stack:
        if sharded is not None:
            sharded.mesh = stack.enter_context(sharding.fake_process_group(sharded))
        stack.enter_context(devices.modes(device, tracker))
        if sharded is not None:
            stack.enter_context(sharding.fsdp_roles(tracker, sharded))
        try:
            # 2. Load: the model exactly as the snippet builds it.
            if meta is not None:
                built = meta
                build.materialize_fake(built)
            else:
                built = build.build_real(setup, spec.model_type, spec.config,
                                         spec.checkpoint_dtype, device, weights)
            build.tag_model(built, tracker.tag)
            notes += built.notes
            if sharded is not None:
                sharding.shard_model(built, setup, sharded, tracker)
                notes += sharded.notes
            result.n_params, result.n_trainable = built.n_params, built.n_trainable
            model = built.model
            trainable = [p for p in model.parameters() if p.requires_grad]
            result.trainable_dtypes = sorted({str(p.dtype).replace("torch.", "")
                                              for p in trainable})

            # 3. Trainer's optimizer and schedule; mixed precision as accelerate sets it up.
            opt = optim.build_optimizer(model, setup, emulate_cuda=device != "cuda",
                                        probe_steps=steps, fake=device == "fake")
            notes += opt.notes
            amp_dtype = torch.bfloat16 if t.bf16 else torch.float16 if t.fp16 else None
            amp_device = "cuda" if device == "cuda" else "cpu"
            scaler = None
            if t.fp16:
                scaler = (devices.TracedGradScaler if device == "fake" else torch.amp.GradScaler)(
                    amp_device)
            _install_context_hooks(built, tracker)
            if device != "fake":
                watch = NumericsWatch(model, pause=tracker.paused)
            vocab = int(getattr(built.hf_model.config, "vocab_size", 0) or 32)
            ga = t.gradient_accumulation_steps
            if cuda is not None:  # load = what stays resident, as on the other devices
                torch.cuda.synchronize()
                cuda.allocated["load"] = int(torch.cuda.memory_allocated())
                cuda.reserved["load"] = int(torch.cuda.memory_reserved())
                cuda.switch(None)

            # 4. The steps.
            sigint = _SigintFlag()
            for step in range(steps):
                if sigint.requested:  # a library swallowed the KeyboardInterrupt: stop now
                    raise KeyboardInterrupt
                started = time.perf_counter()
                for _micro in range(ga):
                    _phase("forward", step, tracker, cuda)
                    batch = synthetic_batch(setup, vocab, device, generator)
                    if watch is not None:
                        watch.begin_forward(step)
                    with torch.autocast(amp_device, dtype=amp_dtype or torch.float32,
                                        enabled=amp_dtype is not None):
                        out = model(**batch)
                    if amp_dtype is not None:
                        # accelerate wraps forward in convert_outputs_to_fp32 under AMP
                        from accelerate.utils import convert_to_fp32

                        out = convert_to_fp32(out)
                    loss = out["loss"] / ga if ga > 1 else out["loss"]
                    del out
                    if watch is not None:
                        watch.end_forward(loss)
                    _phase("backward", step, tracker, cuda)
                    tracker.ctx = "logits"  # the loss and logits' backward come first
                    (scaler.scale(loss) if scaler is not None else loss).backward()
                    del loss, batch
                for p in trainable:
                    tracker.tag(p.grad, sharded.placed("gradients") if sharded is not None
                                else "gradients")
                _phase("optimizer_step", step, tracker, cuda)
                if sharded is not None and sharded.cpu_offload:
                    tracker.role = "host"  # clipping and the step run on the host shards
                if scaler is not None:
                    scaler.unscale_(opt.optimizer)
                if watch is not None:
                    watch.check_gradients(model)
                grad_norm = None
                if t.max_grad_norm and t.max_grad_norm > 0:
                    grad_norm = torch.nn.utils.clip_grad_norm_(trainable, t.max_grad_norm)
                elif watch is not None:
                    with tracker.paused(), torch.no_grad():
                        grad_norm = torch.nn.utils.get_total_norm(
                            [p.grad for p in trainable if p.grad is not None])
                values = device != "fake"
                scale_before = scaler.get_scale() if scaler is not None and values else None
                lr = float(opt.optimizer.param_groups[0]["lr"])
                skipped = False
                if scaler is not None:
                    scaler.step(opt.optimizer)
                    scaler.update()
                    skipped = values and scaler.get_scale() < (scale_before or 0)
                    tracker.tag(scaler._scale, "optimizer_states")
                    tracker.tag(scaler._growth_tracker, "optimizer_states")
                else:
                    opt.optimizer.step()
                if not skipped:
                    opt.scheduler.step()
                for tensor, role in opt.state_roles():
                    tracker.tag(tensor, sharded.placed(role) if sharded is not None else role)
                model.zero_grad(set_to_none=True)
                if watch is not None:
                    watch.check_parameters(model)
                tracker.role = None
                _phase("", step, tracker, cuda)
                seconds = time.perf_counter() - started
                phase_seconds.append(seconds)
                result.steps.append(_step_record(step, watch, grad_norm, lr, seconds, scaler,
                                                 skipped, device))
                result.steps_run = step + 1
                if progress is not None:
                    progress(step + 1, steps, time.perf_counter() - run_started)
        except EmulatedOutOfMemory as exc:
            result.oom = _oom_event(exc.phase, exc.step, exc.allocated_bytes, exc.request_bytes,
                                    exc.limit_bytes, True, tracker)
        except torch.OutOfMemoryError as exc:
            phase = tracker.phase or "load"
            total = int(torch.cuda.get_device_properties(0).total_memory)
            result.oom = _oom_event(phase, tracker.step, int(torch.cuda.memory_allocated()),
                                    devices.requested_bytes(str(exc)), total, False, tracker)
        except KeyboardInterrupt:
            result.interrupted = True
            notes.append(f"interrupted (Ctrl-C) after {result.steps_run} of {steps} step(s): "
                         "the figures cover the steps done")
        except VramdocError:
            raise
        except Exception as exc:  # noqa: BLE001 - a library raising (the build or a step) is a
            # finding (D190) with its message, never a traceback of the tool
            result.step_error = _first_line(exc)
        finally:
            tracker.limit_bytes = None
            if watch is not None:
                watch.close()
            if sigint is not None:
                sigint.restore()

    tracker.close()  # the timeline ends here, before this function's locals are freed
    return result, tracker, cuda, watch, phase_seconds


def _conclude(result: ProbeResult, trace: Trace, setup: TrainSetup, spec: Any, gpu: Any,
              cuda: devices.CudaMeter | None, watch: NumericsWatch | None,
              phase_seconds: list[float], device: str) -> ProbeResult:
    """The figures of the replayed timeline, then the doctor's findings."""
    t = setup.training
    notes, measured_items = result.notes, result.measured_items
    # 5. Replay the timeline: per-phase peaks and what was live at each.
    if not any(p in trace.phases for p in PHASES):  # nothing ran (the build raised)
        from vramdoc.probe import doctor

        doctor.diagnose(result, setup, spec, gpu)
        return result
    result.measured = _memory_view(trace, cuda)
    result.saved_activation_bytes_per_layer = trace.saved_activation_bytes_per_layer
    result.saved_tensors_by_layer = trace.saved_in_layer
    if device == "cuda":
        tracked = sum(result.measured.components.values())
        if result.measured.peak_allocated_bytes > tracked:
            notes.append(f"{result.measured.peak_allocated_bytes - tracked} bytes of the "
                         "allocator's peak were not allocated by torch ops the tracker sees "
                         "(cuBLAS/cuDNN workspaces, library buffers)")
        used = devices.device_used_bytes()
        result.measured = _with_device(result.measured, used)
        result.cuda_stats = devices.cuda_stats()
        measured_items.append("device memory used (NVML / cudaMemGetInfo)")
    if watch is not None:
        for rec in watch.steps:
            for name, v in rec.module_absmax.items():
                old = result.module_absmax.get(name)
                if old is None or not math.isfinite(v) or (math.isfinite(old) and v > old):
                    result.module_absmax[name] = v
            result.module_dtype.update(rec.module_dtype)
    pc = result.measured.phase_components
    if (result.steps_run >= 2 and pc.get("optimizer_step", {}).get("optimizer_states")
            and not pc.get("forward", {}).get("optimizer_states")):
        notes.append("forward and backward were measured before any optimizer state existed "
                     "(every earlier optimizer step was skipped): a healthy run holds the state "
                     "through them")
    timed = phase_seconds[1:] or phase_seconds
    if timed and device != "fake":
        per_step = sum(timed) / len(timed)
        result.steps_per_s = 1.0 / per_step if per_step > 0 else None
        tokens = t.per_device_train_batch_size * setup.max_seq_length * \
            t.gradient_accumulation_steps
        result.tokens_per_s = tokens / per_step if per_step > 0 else None

    # 6. Diagnose: the doctor rules over what the run showed.
    from vramdoc.probe import doctor

    doctor.diagnose(result, setup, spec, gpu)
    return result


def _first_line(exc: BaseException) -> str:
    """``Type: first line of the message``: what D190 reports."""
    text = str(exc).strip()
    first = text.splitlines()[0] if text else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def _phase(name: str, step: int, tracker: MemoryTracker, cuda: devices.CudaMeter | None) -> None:
    if name:
        tracker.set_phase(name, step)
    if cuda is not None:
        torch.cuda.synchronize()
        cuda.switch(name or None)


def _install_context_hooks(built: build.BuiltModel, tracker: MemoryTracker) -> None:
    """Label allocations: logits from the output head on, per-layer index in the blocks."""
    head = built.output_module

    def to_activations(grad: torch.Tensor) -> None:
        tracker.ctx = "activations"

    if head is not None:
        def head_pre(module: Any, args: Any) -> None:
            if tracker.phase != "forward":
                return
            tracker.ctx = "logits"
            x = args[0] if args else None
            if isinstance(x, torch.Tensor) and x.requires_grad:
                x.register_hook(to_activations)  # its gradient ends the logits' backward

        head.register_forward_pre_hook(head_pre)
    for i, layer in enumerate(built.decoder_layers()):
        def pre(module: Any, args: Any, i: int = i) -> None:
            if tracker.phase == "forward":
                tracker.layer = i

        def post(module: Any, args: Any, out: Any) -> None:
            tracker.layer = None

        layer.register_forward_pre_hook(pre)
        layer.register_forward_hook(post)


def _step_record(step: int, watch: NumericsWatch | None, grad_norm: Any, lr: float,
                 seconds: float, scaler: Any, skipped: bool, device: str) -> StepRecord:
    gn = None
    if grad_norm is not None and device != "fake":
        gn = float(grad_norm)
    rec = watch.steps[-1] if watch is not None and watch.steps else None
    return StepRecord(
        step=step, loss=rec.loss if rec else None, grad_norm=gn, lr=lr, seconds=seconds,
        scale=float(scaler.get_scale()) if scaler is not None and device != "fake" else None,
        skipped=skipped,
        first_nonfinite_module=rec.first_nonfinite_module if rec else None,
        first_nonfinite_value=rec.first_nonfinite_value if rec else None,
        nonfinite_grad_params=tuple(rec.nonfinite_grad_params) if rec else (),
        nonfinite_params_after=tuple(rec.nonfinite_params_after) if rec else ())


def _oom_event(phase: str, step: int, allocated: int, request: int, limit: int, emulated: bool,
               tracker: MemoryTracker) -> OomEvent:
    trace = tracker.trace()
    comps = dict(trace.phases[phase].components) if phase in trace.phases else {}
    return OomEvent(phase=phase, step=step, allocated_bytes=allocated, request_bytes=request,
                    limit_bytes=limit, emulated=emulated, components=comps)


def _with_device(view: MemoryView, used: int | None) -> MemoryView:
    from dataclasses import replace

    return replace(view, device_bytes=used)


class _SigintFlag:
    """Ctrl-C during the steps: the flag stays set even when a library catches the
    KeyboardInterrupt the handler raises, so the next step boundary stops the run."""

    def __init__(self) -> None:
        import signal
        import threading

        self.requested = False
        self._previous: Any = None
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum: int, frame: Any) -> None:
        self.requested = True
        raise KeyboardInterrupt

    def restore(self) -> None:
        import signal

        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None
