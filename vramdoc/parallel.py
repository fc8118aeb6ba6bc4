"""The option vocabularies of the data-parallel engines, read from a setup: FSDP and DeepSpeed.

Names are the engines' own. FSDP: TrainingArguments ``fsdp`` (space-joined options) and
``fsdp_config`` (transformers 5.24 ``TrainingArguments._process_fsdp_args``: an ``fsdp_``
prefix is dropped, ``version`` defaults to 2, FSDP2 takes only full_shard / shard_grad_op as
``reshard_after_forward`` True / False, FSDP1's ``backward_prefetch`` defaults to
NO_PREFETCH, ``use_orig_params`` and ``sync_module_states`` to true). DeepSpeed: the
``deepspeed`` JSON (``zero_optimization`` keys and defaults of deepspeed 0.19
``runtime/zero/config.py`` ``DeepSpeedZeroConfig`` and ``offload_config.py``), with
``"auto"`` resolved as transformers' ``HfTrainerDeepSpeedConfig`` does
(``integrations/deepspeed.py``: ``reduce_bucket_size`` = hidden_size², ZeRO-3
``stage3_prefetch_bucket_size`` = int(0.9 · hidden_size²), ``stage3_param_persistence_threshold``
= 10 · hidden_size; batch, accumulation, fp16/bf16 and clipping from TrainingArguments).

Pure Python: the estimator, the planner and the emitters read these; nothing here imports an
engine.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from vramdoc.safeload import show

FSDP1_STRATEGIES = ("FULL_SHARD", "SHARD_GRAD_OP", "NO_SHARD", "HYBRID_SHARD",
                    "_HYBRID_SHARD_ZERO2")
# Trainer's fsdp words -> FSDP1 ShardingStrategy (transformers FSDPOption)
_WORD_STRATEGY = {"full_shard": "FULL_SHARD", "shard_grad_op": "SHARD_GRAD_OP",
                  "no_shard": "NO_SHARD", "hybrid_shard": "HYBRID_SHARD",
                  "hybrid_shard_zero2": "_HYBRID_SHARD_ZERO2"}
BACKWARD_PREFETCH = ("BACKWARD_PRE", "BACKWARD_POST", "NO_PREFETCH")
# fsdp_config keys transformers 5.24 reads (after dropping "fsdp_"), plus accelerate's plugin
# names a user copies from an accelerate config (sharding_strategy, offload_params)
FSDP_CONFIG_KEYS = (
    "version", "min_num_params", "transformer_layer_cls_to_wrap", "auto_wrap_policy",
    "backward_prefetch", "forward_prefetch", "limit_all_gathers", "use_orig_params",
    "sync_module_states", "cpu_ram_efficient_loading", "activation_checkpointing",
    "cpu_offload", "offload_params", "state_dict_type", "reshard_after_forward",
    "sharding_strategy", "xla", "xla_fsdp_v2", "xla_fsdp_grad_ckpt", "xla_fsdp_settings",
)


def _truth(value: Any) -> bool:
    return str(value).strip().lower() in ("1", "true", "yes", "y", "t", "on")


@dataclass(frozen=True)
class FsdpOptions:
    """One FSDP run as accelerate builds it from TrainingArguments."""

    version: int  # 1 (FullyShardedDataParallel) or 2 (fully_shard)
    strategy: str  # an FSDP1 ShardingStrategy name (FSDP2: FULL_SHARD or SHARD_GRAD_OP)
    cpu_offload: bool
    backward_prefetch: str
    forward_prefetch: bool
    use_orig_params: bool
    limit_all_gathers: bool
    activation_checkpointing: bool
    cpu_ram_efficient_loading: bool

    @property
    def reshard_after_forward(self) -> bool:
        return self.strategy in ("FULL_SHARD", "HYBRID_SHARD")


@lru_cache(maxsize=256)
def _fsdp(fsdp: str, fsdp_config: str, tf_major: int) -> tuple[FsdpOptions | None, tuple[str, ...]]:
    problems: list[str] = []
    raw = json.loads(fsdp_config) if fsdp_config else {}
    cfg = {(k[5:] if k.startswith("fsdp_") else k): v for k, v in raw.items()}
    for k in cfg:
        if k not in FSDP_CONFIG_KEYS:
            import difflib

            close = difflib.get_close_matches(k, FSDP_CONFIG_KEYS, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            problems.append(f"training.fsdp_config.{k}: not an fsdp_config key{hint}")
    if not fsdp:
        if cfg:
            problems.append("training.fsdp_config: given without training.fsdp; add fsdp: "
                            "full_shard auto_wrap (or shard_grad_op ...)")
        return None, tuple(problems)
    words = fsdp.split()
    version = int(cfg.get("version", 2 if tf_major >= 5 else 1))
    if version not in (1, 2):
        problems.append(f"training.fsdp_config.version: {version} must be 1 or 2")
        version = 2
    strategy = next((_WORD_STRATEGY[w] for w in words if w in _WORD_STRATEGY), None)
    if strategy is None and "sharding_strategy" in cfg:
        val = cfg["sharding_strategy"]
        # accelerate also takes the enum's number: 1 FULL_SHARD ... 5 _HYBRID_SHARD_ZERO2
        strategy = (FSDP1_STRATEGIES[int(val) - 1] if str(val).isdigit() and 1 <= int(val) <= 5
                    else str(val).upper())
    if strategy is None and "reshard_after_forward" in cfg:
        val = cfg["reshard_after_forward"]
        strategy = (str(val).upper() if str(val).upper() in FSDP1_STRATEGIES
                    else "FULL_SHARD" if _truth(val) else "SHARD_GRAD_OP")
    strategy = strategy or "FULL_SHARD"
    if strategy not in FSDP1_STRATEGIES:
        problems.append(f"training.fsdp_config: sharding strategy {strategy!r} is not one of "
                        f"{', '.join(FSDP1_STRATEGIES)}")
        strategy = "FULL_SHARD"
    if version == 2 and strategy not in ("FULL_SHARD", "SHARD_GRAD_OP"):
        problems.append(f"training.fsdp: {strategy.lower().lstrip('_')} is FSDP1-only in "
                        "transformers 5 (FSDP2 takes full_shard or shard_grad_op); set "
                        "fsdp_config: {version: 1} or choose full_shard")
    bp = str(cfg.get("backward_prefetch", "NO_PREFETCH")).upper()
    if bp not in BACKWARD_PREFETCH:
        problems.append(f"training.fsdp_config.backward_prefetch: {bp!r} must be one of "
                        f"{', '.join(BACKWARD_PREFETCH)}")
        bp = "NO_PREFETCH"
    opts = FsdpOptions(
        version=version, strategy=strategy,
        cpu_offload="offload" in words or _truth(cfg.get("cpu_offload", False))
        or _truth(cfg.get("offload_params", False)),
        backward_prefetch=bp, forward_prefetch=_truth(cfg.get("forward_prefetch", False)),
        use_orig_params=_truth(cfg.get("use_orig_params", True)),
        limit_all_gathers=_truth(cfg.get("limit_all_gathers", True)),
        activation_checkpointing=_truth(cfg.get("activation_checkpointing", False)),
        cpu_ram_efficient_loading=_truth(cfg.get("cpu_ram_efficient_loading", False)),
    )
    return opts, tuple(problems)


def fsdp_options(training: Any, tf_major: int = 5) -> FsdpOptions | None:
    """The FSDP options of a TrainingSetup (None without ``fsdp``)."""
    return _fsdp(training.fsdp, training.fsdp_config, tf_major)[0]


def split_gpu_count(text: str) -> tuple[int | None, str]:
    """``"8xA100-80GB"`` -> ``(8, "A100-80GB")``; ``"A100"`` -> ``(None, "A100")``.

    >>> split_gpu_count("8xA100-80GB")
    (8, 'A100-80GB')
    >>> split_gpu_count("4 x H100")
    (4, 'H100')
    >>> split_gpu_count("RTX-4090")
    (None, 'RTX-4090')
    """
    import re

    m = re.match(r"^\s*(\d+)\s*[x×]\s*(\S.*)$", text, re.IGNORECASE)
    if not m:
        return None, text
    count = int(m.group(1))
    if count <= 0:
        raise ValueError("the GPU count must be larger than zero")
    return count, m.group(2).strip()


# --- DeepSpeed ---------------------------------------------------------------------------

# deepspeed 0.19 DeepSpeedZeroConfig field names and aliases that change memory or speed
ZERO_KEYS = (
    "stage", "contiguous_gradients", "reduce_scatter", "reduce_bucket_size",
    "allgather_partitions", "allgather_bucket_size", "overlap_comm", "load_from_fp32_weights",
    "elastic_checkpoint", "offload_param", "offload_optimizer", "sub_group_size",
    "cpu_offload_param", "cpu_offload_use_pin_memory", "cpu_offload",
    "stage3_prefetch_bucket_size", "prefetch_bucket_size", "stage3_param_persistence_threshold",
    "param_persistence_threshold", "stage3_model_persistence_threshold",
    "model_persistence_threshold", "stage3_max_live_parameters", "max_live_parameters",
    "stage3_max_reuse_distance", "max_reuse_distance", "stage3_gather_16bit_weights_on_model_save",
    "gather_16bit_weights_on_model_save", "stage3_gather_fp16_weights_on_model_save",
    "ignore_unused_parameters", "legacy_stage1", "round_robin_gradients", "zero_hpz_partition_size",
    "zero_quantized_weights", "zero_quantized_nontrainable_weights", "zero_quantized_gradients",
    "mics_shard_size", "mics_hierarchical_params_gather", "memory_efficient_linear",
    "pipeline_loading_checkpoint", "override_module_apply", "log_trace_cache_warnings",
    "stage3_module_granularity_threshold", "module_granularity_threshold",
    "stage3_use_all_reduce_for_fetch_params", "use_all_reduce_for_fetch_params",
    "stage3_allgather_sequential", "allgather_sequential", "leaf_module",
)
OFFLOAD_DEVICES = ("none", "cpu", "nvme")


@dataclass(frozen=True)
class ZeroOptions:
    """A DeepSpeed config as the HF integration runs it, "auto" resolved."""

    stage: int
    half: str | None  # "bfloat16" | "float16" | None (fp32 training)
    offload_optimizer: str  # none | cpu | nvme
    offload_param: str  # none | cpu | nvme (ZeRO-3 only)
    pin_memory: bool
    reduce_bucket_size: int  # elements
    allgather_bucket_size: int
    prefetch_bucket_size: int  # ZeRO-3
    param_persistence_threshold: int  # ZeRO-3: parameters below this many elements stay whole
    max_live_parameters: int  # ZeRO-3
    contiguous_gradients: bool
    overlap_comm: bool
    sub_group_size: int
    ds_optimizer: str | None  # the config's "optimizer.type" (None: Trainer's optim)
    nvme_buffer_count: int
    nvme_buffer_size: int
    raw: str  # the config as given (canonical JSON)


def _auto(value: Any, resolved: Any) -> Any:
    return resolved if value == "auto" else value


@lru_cache(maxsize=256)
def _zero(ds: str, bf16: bool, fp16: bool, batch: int, accum: int, hidden: int
          ) -> tuple[ZeroOptions | None, tuple[str, ...]]:
    if not ds:
        return None, ()
    problems: list[str] = []
    cfg = json.loads(ds)
    zo = cfg.get("zero_optimization") or {}
    if not isinstance(zo, dict):
        problems.append("training.deepspeed.zero_optimization: expected a mapping")
        zo = {}
    for k in zo:
        if k not in ZERO_KEYS:
            import difflib

            close = difflib.get_close_matches(k, ZERO_KEYS, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            problems.append(f"training.deepspeed.zero_optimization.{k}: not a DeepSpeed ZeRO "
                            f"key{hint}")
    stage = zo.get("stage", 0)
    if isinstance(stage, bool) or stage not in (0, 1, 2, 3):  # True == 1 in Python, not here
        problems.append(f"training.deepspeed.zero_optimization.stage: {stage!r} must be 0-3")
        stage = 0

    def enabled(section: str, trainer: bool) -> bool:
        sec = cfg.get(section) or {}
        if not isinstance(sec, dict):
            problems.append(f"training.deepspeed.{section}: {show(sec)} is not a mapping; write "
                            f'"{section}": {{"enabled": "auto"}}')
            return trainer
        val = sec.get("enabled", False)
        if val == "auto":
            return trainer
        if not isinstance(val, bool):
            problems.append(f"training.deepspeed.{section}.enabled: {show(val)} is not true, "
                            'false or "auto"; write "auto"')
            return trainer
        if bool(val) != trainer and (trainer or section in cfg):
            problems.append(f"training.deepspeed.{section}.enabled is {val!r} but "
                            f"TrainingArguments {section}={trainer}; transformers refuses the "
                            f"mismatch: set it to \"auto\"")
        return bool(val)

    legacy = cfg.get("bfloat16")  # DeepSpeed's older spelling of the bf16 section
    use_bf16 = enabled("bf16", bf16) or isinstance(legacy, dict) and legacy.get("enabled") is True
    use_fp16 = enabled("fp16", fp16)
    if use_bf16 and use_fp16:
        problems.append("training.deepspeed: fp16 and bf16 are both enabled; choose one")
    for key, trainer in (("train_micro_batch_size_per_gpu", batch),
                         ("gradient_accumulation_steps", accum)):
        val = cfg.get(key, "auto")
        if val != "auto" and val != trainer:
            problems.append(f"training.deepspeed.{key} is {val!r} but TrainingArguments gives "
                            f"{trainer}; transformers refuses the mismatch: set it to \"auto\"")

    def offload(key: str) -> tuple[str, bool, int, int]:
        sec = zo.get(key) or {}
        if not isinstance(sec, dict):
            problems.append(f"training.deepspeed.zero_optimization.{key}: {show(sec)} is not a "
                            'mapping; write e.g. {"device": "cpu"}')
            return "none", True, 0, 0
        dev = sec.get("device", "none")
        dev = dev.lower() if isinstance(dev, str) else show(dev)
        if dev not in OFFLOAD_DEVICES:
            problems.append(f"training.deepspeed.zero_optimization.{key}.device: {dev!r} must "
                            f"be one of {', '.join(OFFLOAD_DEVICES)}")
            dev = "none"
        # offload_config.py: param buffer_count 5, optimizer buffer_count 4, buffer_size 1e8
        count = whole(sec.get("buffer_count", 5 if key == "offload_param" else 4),
                      f"{key}.buffer_count", 4)
        return dev, bool(sec.get("pin_memory", True)), count, whole(
            sec.get("buffer_size", 10**8), f"{key}.buffer_size", 10**8)

    def whole(val: Any, name: str, default: float) -> int:
        """A count or size in the config: a finite number >= 0 (1e400 and NaN refused)."""
        try:
            f = float(val)
            if isinstance(val, bool) or not 0 <= f < 2**63:
                raise ValueError
            return int(f)
        except (TypeError, ValueError):
            problems.append(f"training.deepspeed.zero_optimization.{name}: {show(val)} is not "
                            'a number >= 0 or "auto"')
            return int(default)

    opt_dev, opt_pin, opt_count, opt_size = offload("offload_optimizer")
    par_dev, par_pin, par_count, par_size = offload("offload_param")
    if zo.get("cpu_offload") is True:  # deprecated spelling of offload_optimizer cpu
        opt_dev = "cpu"
    if par_dev != "none" and stage != 3:
        problems.append("training.deepspeed.zero_optimization.offload_param: parameters are "
                        "offloaded by ZeRO-3 only; set stage 3 or drop offload_param")
        par_dev = "none"
    if opt_dev != "none" and stage == 0:
        problems.append("training.deepspeed.zero_optimization.offload_optimizer: needs ZeRO "
                        "stage 1, 2 or 3")
        opt_dev = "none"
    h2 = hidden * hidden

    def num(key: str, alias: str, default: float, auto: float) -> int:
        val = zo.get(key, zo.get(alias, default))
        return whole(_auto(val, auto), key, default)

    opt = cfg.get("optimizer")
    overlap = zo.get("overlap_comm")
    zoo = ZeroOptions(
        stage=int(stage), half="bfloat16" if use_bf16 else "float16" if use_fp16 else None,
        offload_optimizer=opt_dev, offload_param=par_dev, pin_memory=opt_pin and par_pin,
        reduce_bucket_size=num("reduce_bucket_size", "reduce_bucket_size", 5e8, h2),
        allgather_bucket_size=num("allgather_bucket_size", "allgather_bucket_size", 5e8, 5e8),
        prefetch_bucket_size=num("stage3_prefetch_bucket_size", "prefetch_bucket_size", 5e7,
                                 int(0.9 * h2)),
        param_persistence_threshold=num("stage3_param_persistence_threshold",
                                        "param_persistence_threshold", 1e5, 10 * hidden),
        max_live_parameters=num("stage3_max_live_parameters", "max_live_parameters", 1e9, 1e9),
        contiguous_gradients=bool(zo.get("contiguous_gradients", True)),
        # DeepSpeedZeroConfig.overlap_comm_valid: unset means True for ZeRO-3, else False
        overlap_comm=bool(overlap) if overlap is not None else stage == 3,
        sub_group_size=num("sub_group_size", "sub_group_size", 1e9, 1e9),
        ds_optimizer=str(opt.get("type")) if isinstance(opt, dict) and opt.get("type") else None,
        nvme_buffer_count=opt_count if opt_dev == "nvme" else par_count,
        nvme_buffer_size=opt_size if opt_dev == "nvme" else par_size,
        raw=ds,
    )
    return zoo, tuple(problems)


def zero_options(setup: Any, hidden_size: int = 4096) -> ZeroOptions | None:
    """The DeepSpeed options of a TrainSetup (None without ``deepspeed``); "auto" resolved
    with the setup's TrainingArguments and the model's ``hidden_size``."""
    t = setup.training
    return _zero(t.deepspeed, t.bf16, t.fp16, t.per_device_train_batch_size,
                 t.gradient_accumulation_steps, hidden_size)[0]


def engine_problems(training: Any, tf_major: int = 5) -> list[str]:
    """Every problem in a setup's fsdp / fsdp_config / deepspeed sections."""
    out = list(_fsdp(training.fsdp, training.fsdp_config, tf_major)[1])
    out += _zero(training.deepspeed, training.bf16, training.fp16,
                 training.per_device_train_batch_size, training.gradient_accumulation_steps,
                 4096)[1]
    return out
