"""Hostile input for the tracker sources of ``vramdoc watch --once``: TensorBoard event files
truncated or garbage, W&B offline ``.wandb`` files with bad CRCs or cut records, MLflow
stores with odd metric files, and Trainer output dirs whose ``trainer_state.json`` holds NaN
losses, wrong types or a huge history.

A source that is damaged but still holds steps is read (exit 0/1: the damage is named); one
that holds nothing readable is exit 2 with one message. Never a traceback, never non-JSON on
stdout with ``--json`` (see tests/hostile/sweep.py for what each row checks).
"""

from __future__ import annotations

import json
import struct
import zlib
from functools import cache
from pathlib import Path

import pytest

from tests.hostile.sweep import ANSWER, DIR, H, row, run_row

ROWS: list[H] = []
add = ROWS.append
ANY = (0, 1, 2)
DATA = Path(__file__).parent.parent / "monitor" / "data"


def watch(rel: str, *extra: str) -> list[str]:
    return ["watch", "{d}/" + rel, "--once", *extra]


# --- trainer_state.json ------------------------------------------------------------------
def state(history: object, **top: object) -> str:
    return json.dumps({"global_step": 3, "max_steps": 10, "log_history": history, **top})


GOOD_HISTORY = [{"step": i, "loss": 2.0 - i / 10, "grad_norm": 0.5, "learning_rate": 1e-4}
                for i in range(1, 4)]
for name, text, codes in (
    ("nan-loss", '{"global_step": 2, "log_history": [{"step": 1, "loss": NaN}, '
                 '{"step": 2, "loss": Infinity, "grad_norm": -Infinity}]}', ANSWER),
    ("loss-str", state([{"step": 1, "loss": "2.0"}, {"step": 2, "loss": "nan"}]), ANY),
    ("loss-bool", state([{"step": 1, "loss": True}]), ANY),
    ("step-float", state([{"step": 1.5, "loss": 1.0}]), ANY),
    ("step-neg", state([{"step": -3, "loss": 1.0}]), ANY),
    ("step-huge", state([{"step": 10**30, "loss": 1.0}]), ANY),
    ("step-bigint", '{"log_history": [{"step": 1' + "0" * 5000 + ', "loss": 1}]}', ANY),
    ("loss-bigint", '{"log_history": [{"step": 1, "loss": 1' + "0" * 5000 + "}]}", ANY),
    ("history-dict", state({"step": 1}), ANY), ("history-null", state(None), ANY),
    ("entries-mixed", state([None, "x", 5, [1], {"step": 1, "loss": 1.0}]), ANY),
    ("global-step-str", state(GOOD_HISTORY, global_step="3"), ANY),
    ("max-steps-nan", state(GOOD_HISTORY).replace('"max_steps": 10', '"max_steps": NaN'), ANY),
    ("max-steps-list", state(GOOD_HISTORY, max_steps=[10]), ANY),
    ("batch-str", state(GOOD_HISTORY, train_batch_size="8"), ANY),
    ("huge-history", state([{"step": i, "loss": 1.0 + (i % 7) / 10, "grad_norm": 0.3}
                            for i in range(1, 100_001)]), ANSWER),
    ("deep", '{"log_history": ' + "[" * 100_000 + "]" * 100_000 + "}", ANY),
    ("latin1", '{"log_history": [], "x": "caf\xe9"}'.encode("latin-1"), ANY),
    ("empty", "", ANY), ("truncated", state(GOOD_HISTORY)[:40], ANY),
    ("top-list", "[1, 2]", ANY), ("utf16", state(GOOD_HISTORY).encode("utf-16"), ANY),
):
    files = {"out/checkpoint-3/trainer_state.json": text}
    says = "damaged" if name in ("entries-mixed", "step-float") else ()
    add(row(f"ts-{name}", watch("out"), files, codes, says))
    add(row(f"ts-{name}-json", watch("out", "--json"), files, codes, says))
add(row("ts-state-is-dir", watch("out"), {"out/checkpoint-3/trainer_state.json": DIR}, ANY))
add(row("ts-checkpoint-bigint-name", watch("out"),
        {f"out/checkpoint-{'9' * 240}/trainer_state.json": state(GOOD_HISTORY)}, ANY))
add(row("ts-two-checkpoints-one-bad", watch("out", "--json"),
        {"out/checkpoint-2/trainer_state.json": state(GOOD_HISTORY[:2]),
         "out/checkpoint-3/trainer_state.json": "{broken"}, ANY))

# --- MLflow ------------------------------------------------------------------------------
META = "artifact_uri: file:///x\nexperiment_id: '0'\nlifecycle_stage: active\nrun_id: abc\n" \
       "status: 3\nstart_time: 1700000000000\nend_time: 1700000100000\n"
RUN = "mlruns/0/abc"
for name, files, codes in (
    ("metric-nonnumeric", {"metrics/loss": "1700000000000 lots 1\n"}, ANY),
    ("metric-nan", {"metrics/loss": "1700000000000 nan 1\n1700000000001 NaN 2\n"}, ANY),
    ("metric-inf", {"metrics/loss": "1700000000000 inf 1\n1700000000001 -Infinity 2\n"}, ANY),
    ("metric-step-huge", {"metrics/loss": "1700000000000 1.0 " + "9" * 5000 + "\n"}, ANY),
    ("metric-step-1e30", {"metrics/loss": "1700000000000 1.0 1e30\n"}, ANY),
    ("metric-step-neg", {"metrics/loss": "1700000000000 1.0 -5\n"}, ANY),
    ("metric-step-float", {"metrics/loss": "1700000000000 1.0 2.5\n"}, ANY),
    ("metric-ts-huge", {"metrics/loss": "9" * 5000 + " 1.0 1\n"}, ANY),
    ("metric-one-field", {"metrics/loss": "1.0\n"}, ANY),
    ("metric-many-fields", {"metrics/loss": "1 2 3 4 5 6\n"}, ANY),
    ("metric-latin1", {"metrics/loss": "1700000000000 1.0 1 caf\xe9\n".encode("latin-1")}, ANY),
    ("metric-binary", {"metrics/loss": bytes(range(256))}, ANY),
    ("metric-is-dir", {"metrics/loss": DIR}, ANY),
    ("metric-nested", {"metrics/train/loss": "1700000000000 1.0 1\n"}, ANY),
    ("metric-crlf", {"metrics/loss": "1700000000000 1.0 1\r\n1700000000001 0.9 2\r\n"}, ANSWER),
    ("metric-huge-file", {"metrics/loss": "".join(f"1700000000000 {1 + i % 5} {i}\n"
                                                   for i in range(200_000))}, ANSWER),
    ("metrics-missing", {}, ANY),
    ("metrics-is-file", {"metrics": "x"}, ANY),
    ("params-odd", {"metrics/loss": "1700000000000 1.0 1\n", "params/max_steps": "lots",
                    "params/learning_rate": "nan", "params/max_grad_norm": b"\xff\xfe"}, ANY),
    ("params-is-dir", {"metrics/loss": "1700000000000 1.0 1\n", "params/max_steps": DIR}, ANY),
    ("meta-missing-metrics-ok", {"metrics/loss": "1700000000000 1.0 1\n"}, ANSWER),
):
    full = {f"{RUN}/meta.yaml": META} if name != "metrics-missing" else {f"{RUN}/meta.yaml": META,
                                                                          f"{RUN}/tags": DIR}
    full.update({f"{RUN}/{k}": v for k, v in files.items()})
    says = "damaged" if name in ("metric-nonnumeric", "metric-step-huge", "metric-step-1e30",
                                 "metric-step-float", "metric-ts-huge", "metric-one-field",
                                 "metric-binary") else ()
    add(row(f"mlflow-{name}", watch(RUN), full, codes, says))
    add(row(f"mlflow-{name}-json", watch(RUN, "--json"), full, codes, says))
for name, meta in (("meta-alias-bomb", "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{k}: &{k} [{', '.join(['*' + p] * 9)}]\n" for p, k in
        zip("abcdefgh", "bcdefghi", strict=True))), ("meta-bad-yaml", "status: [\n"),
        ("meta-latin1", "status: caf\xe9\n".encode("latin-1"))):
    add(row(f"mlflow-{name}", watch(RUN), {f"{RUN}/meta.yaml": meta,
                                           f"{RUN}/metrics/loss": "1700000000000 1.0 1\n"}, ANY))


# --- TensorBoard -------------------------------------------------------------------------
@cache
def tb_bytes() -> bytes:
    """One event file as transformers' TensorBoardCallback writes it (torch's SummaryWriter)."""
    import tempfile

    from torch.utils.tensorboard import SummaryWriter

    with tempfile.TemporaryDirectory() as d:
        w = SummaryWriter(log_dir=d)
        w.add_text("args", json.dumps({"max_steps": 10, "max_grad_norm": 1.0}))
        for step in range(1, 6):
            w.add_scalar("train/loss", 2.0 - step / 10, step)
            w.add_scalar("train/grad_norm", 0.5, step)
        w.close()
        return next(Path(d).glob("events.out.tfevents.*")).read_bytes()


TB = "runs/Dec02_10-00-00_host/events.out.tfevents.1700000000.host.1.0"
TB_CASES: dict[str, object] = {
    "empty": b"", "garbage": bytes(range(256)) * 16, "text": b"hello world\n" * 100,
    "huge-length": struct.pack("<Q", 2**62) + b"\x00" * 12,
}


def tb_case(name: str) -> bytes:
    if name in TB_CASES:
        return TB_CASES[name]  # type: ignore[return-value]
    good = tb_bytes()
    if name == "truncated-half":
        return good[: len(good) // 2]
    if name == "truncated-header":
        return good[:5]
    if name == "flipped-crc":
        b = bytearray(good)
        b[9] ^= 0xFF
        return bytes(b)
    if name == "flipped-middle":
        b = bytearray(good)
        b[len(b) // 2] ^= 0xFF
        return bytes(b)
    if name == "garbage-appended":
        return good + bytes(range(256)) * 4
    return good


for name in ("empty", "garbage", "text", "huge-length", "truncated-half", "truncated-header",
             "flipped-crc", "flipped-middle", "garbage-appended"):
    says = "damaged" if name in ("garbage", "text", "huge-length", "flipped-crc",
                                 "flipped-middle", "garbage-appended") else ()
    add(row(f"tb-{name}", watch(TB.rsplit("/", 1)[0]), {TB: f"@tb:{name}"}, ANY, says))
    add(row(f"tb-{name}-json", watch(TB.rsplit("/", 1)[0], "--json"), {TB: f"@tb:{name}"}, ANY,
            says))
add(row("tb-event-file-is-dir", watch(TB.rsplit("/", 1)[0]), {TB: DIR}, ANY))
add(row("tb-good", watch(TB.rsplit("/", 1)[0], "--json"), {TB: "@tb:good"}, ANSWER))


# --- W&B offline runs --------------------------------------------------------------------
@cache
def wandb_bytes() -> bytes:
    return next((DATA / "wandb-offline-run").glob("*.wandb")).read_bytes()


def wandb_case(name: str) -> bytes:
    good = wandb_bytes()
    if name == "empty":
        return b""
    if name == "header-only":
        return good[:7]
    if name == "bad-header":
        return b"XXXX" + good[4:]
    if name == "truncated-half":
        return good[: len(good) // 2]
    if name == "truncated-first-block":
        return good[:100]
    if name == "flipped-crc":
        b = bytearray(good)
        b[7] ^= 0xFF
        return bytes(b)
    if name == "flipped-many":
        b = bytearray(good)
        for i in range(50, len(b), 97):
            b[i] ^= 0x5A
        return bytes(b)
    if name == "huge-length":
        b = bytearray(good)
        struct.pack_into("<H", b, 11, 0xFFFF)
        return bytes(b)
    if name == "garbage":
        return good[:7] + bytes(range(256)) * 64
    if name == "valid-crc-garbage-payload":
        payload = b"\x08\x96\x01garbage-protobuf"
        crc = zlib.crc32(payload, zlib.crc32(bytes([1]))) & 0xFFFFFFFF
        return good[:7] + struct.pack("<IHB", crc, len(payload), 1) + payload
    return good


WB = "wandb/offline-run-20261202_100000-abc123/run-abc123.wandb"
for name in ("empty", "header-only", "bad-header", "truncated-half", "truncated-first-block",
             "flipped-crc", "flipped-many", "huge-length", "garbage",
             "valid-crc-garbage-payload"):
    says = "damaged" if name in ("flipped-crc", "flipped-many", "garbage",
                                 "valid-crc-garbage-payload") else ()
    add(row(f"wandb-{name}", watch(WB.rsplit("/", 1)[0]), {WB: f"@wandb:{name}"}, ANY, says))
    add(row(f"wandb-{name}-json", watch(WB.rsplit("/", 1)[0], "--json"), {WB: f"@wandb:{name}"},
            ANY, says))
add(row("wandb-file-is-dir", watch(WB.rsplit("/", 1)[0]), {WB: DIR}, ANY))
add(row("wandb-good", watch(WB.rsplit("/", 1)[0], "--json"), {WB: "@wandb:good"}, ANSWER))


def _materialize(h: H) -> H:
    """Rows name generated binaries as "@tb:NAME" / "@wandb:NAME"; build them on use."""
    files: dict[str, object] = {}
    for k, v in h.files.items():
        if isinstance(v, str) and v.startswith("@tb:"):
            pytest.importorskip("tensorboard")
            v = tb_case(v[4:])
        elif isinstance(v, str) and v.startswith("@wandb:"):
            pytest.importorskip("wandb")
            v = wandb_case(v[7:])
        files[k] = v
    return H(h.id, h.argv, files, h.codes, h.says)


def test_at_least_a_hundred_rows() -> None:
    assert len(ROWS) >= 100
    assert len({h.id for h in ROWS}) == len(ROWS)


@pytest.mark.parametrize("h", ROWS, ids=[h.id for h in ROWS])
def test_tracker_hostile(h: H, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_row(_materialize(h), tmp_path, capsys) == []
