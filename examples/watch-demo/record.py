"""Record the watch demo: a tiny Llama trained on CPU for 54 steps with VramdocCallback.

    python examples/watch-demo/record.py            # writes examples/watch-demo/run/
    vramdoc watch examples/watch-demo/run

Everything is real: a Llama built from a config with random weights (no download), trained by
transformers' Trainer on synthetic token sequences it can learn (arithmetic progressions), and
recorded by the same callback you would add to your own Trainer. Three things go wrong on
purpose, late in the run, so the watch has something to show:

- steps 30-31: the learning rate is multiplied by 300 (a warmup mistake): the loss spikes and
  the gradient norm explodes (W106, W107);
- steps 40-47: each step waits 250 ms, as a starved data loader would (W111);
- step 52: one batch's loss is NaN. Trainer's default ``logging_nan_inf_filter`` logs a finite
  average in its place, the NaN gradients poison the weights, and every later loss is NaN
  (W102: masked NaN).

The run trains on CPU, so there are no CUDA allocator or NVML figures: the memory panel shows
the plan (the estimate for the same tiny model on a T4) and says that nothing was measured.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

import torch
from transformers import LlamaConfig, LlamaForCausalLM, Trainer, TrainerCallback, TrainingArguments

from vramdoc.monitor import VramdocCallback

HERE = Path(__file__).resolve().parent
VOCAB, SEQ = 512, 64
SPIKE_STEPS, SPIKE_FACTOR = (30, 31), 300.0
SLOW_STEPS, SLOW_S = range(40, 48), 0.25
NAN_STEP, MAX_STEPS = 52, 54

CONFIG = dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
              num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=SEQ,
              model_type="llama")


class Progressions(torch.utils.data.Dataset):
    """Token sequences start, start+d, start+2d ... (mod vocab): learnable, deterministic."""

    def __len__(self) -> int:
        return 100_000

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        start, d = (i * 7919) % VOCAB, 1 + (i % 5)
        ids = (start + d * torch.arange(SEQ)) % VOCAB
        return {"input_ids": ids, "labels": ids.clone()}


class Mishaps(TrainerCallback):
    """The learning-rate spike and the slow data loader (see the module docstring)."""

    def on_step_begin(self, args, state, control, optimizer=None, **kwargs):
        step = state.global_step + 1
        if step in SPIKE_STEPS and optimizer is not None:
            for group in optimizer.param_groups:  # the scheduler resets it after the step
                group["lr"] *= SPIKE_FACTOR
        if step in SLOW_STEPS:
            time.sleep(SLOW_S)


class NanOnce(Trainer):
    """A NaN loss on one step, as an fp16 overflow or an empty batch would give."""

    def compute_loss(self, model, inputs, **kwargs):
        loss = super().compute_loss(model, inputs, **kwargs)
        if self.state.global_step + 1 == NAN_STEP:
            loss = loss * float("nan")
        return loss


def write_plan(out: Path) -> Path | None:
    """The estimate for this model and setup on a T4 (None if the estimator fails)."""
    cfg_dir = out.parent / "tiny-llama"
    cfg_dir.mkdir(exist_ok=True)
    (cfg_dir / "config.json").write_text(json.dumps(CONFIG, indent=2) + "\n")
    try:
        from vramdoc.estimate import estimate
        from vramdoc.setup import setup_from_mapping

        setup = setup_from_mapping({
            "model": str(cfg_dir / "config.json"), "gpu": "T4", "max_seq_length": SEQ,
            "model_kwargs": {"dtype": "float32", "attn_implementation": "sdpa"},
            "training": {"per_device_train_batch_size": 8, "optim": "adamw_torch_fused",
                         "learning_rate": 3e-3},
        })
        doc = estimate(setup).to_json()
    except Exception as exc:  # noqa: BLE001 - the demo still records without a plan
        print(f"no plan: {type(exc).__name__}: {exc}")
        return None
    # keep the local checkout's path out of the committed files
    doc["model"] = doc["setup"]["model"] = "tiny-llama (examples/watch-demo/tiny-llama)"
    path = out.parent / "plan.json"
    path.write_text(json.dumps(doc, indent=2) + "\n")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "run")
    ns = parser.parse_args()
    ns.out = ns.out.resolve()
    shutil.rmtree(ns.out, ignore_errors=True)
    plan = write_plan(ns.out)
    os.chdir(HERE)  # the header records the plan's path as given: keep it relative
    plan = Path(plan.name) if plan is not None and plan.parent == HERE else plan
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(**{k: v for k, v in CONFIG.items()
                                            if k != "model_type"}))
    args = TrainingArguments(
        output_dir=str(HERE / ".trainer-out"), use_cpu=True, max_steps=MAX_STEPS,
        per_device_train_batch_size=8, learning_rate=3e-3, warmup_steps=5,
        logging_steps=1, save_strategy="no", report_to="none", seed=0, disable_tqdm=True,
        dataloader_num_workers=0,
    )
    trainer = NanOnce(model=model, args=args, train_dataset=Progressions(),
                      callbacks=[VramdocCallback(ns.out, plan=plan), Mishaps()])
    trainer.train()
    shutil.rmtree(HERE / ".trainer-out", ignore_errors=True)
    print(f"recorded {ns.out / 'events.jsonl'}; now: vramdoc watch {ns.out}")
    check(ns.out)


EXPECTED = ["W106", "W107", "W111", "W102"]


def check(run_dir: Path) -> None:
    """Say whether the recording shows exactly the mishaps above (a busy machine adds stalls)."""
    from vramdoc.monitor import RunState
    from vramdoc.monitor.follower import iter_events

    state = RunState.with_rules()
    state.feed(list(iter_events(run_dir)))
    got = [a.code for a in state.alerts]
    if got != EXPECTED:
        print(f"alerts {got}, expected {EXPECTED}: other work on this machine slowed some "
              "steps; record again on a quieter machine for a clean demo")


if __name__ == "__main__":
    main()
