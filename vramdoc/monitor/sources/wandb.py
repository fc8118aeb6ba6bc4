"""A W&B offline run: ``wandb/offline-run-<date>-<id>/run-<id>.wandb``.

The ``.wandb`` file is W&B's transaction log: a 7-byte header (``:W&B``, magic ``0xBEE1``
little-endian, a version byte), then 32 KiB blocks of records framed as in LevelDB's log
format (a header of CRC-32 (4 bytes), length (2), type (1: full, 2: first, 3: middle,
4: last), then the payload; a block's last < 7 bytes are zero padding). Each payload is a
``wandb.proto.wandb_internal_pb2.Record`` protobuf message: ``history`` records hold one
``wandb.log`` call as key / JSON-value items, ``config`` and ``run`` records the config,
``exit`` the end of the run. Framing checked against wandb 0.31's offline runs (this reader
parses the framing itself; the protobuf classes come from the wandb package, extra
``wandb``). transformers' ``WandbCallback`` logs ``train/loss``, ``train/grad_norm``,
``train/learning_rate``, ``train/epoch``, ``eval/loss`` with ``train/global_step`` as the
step, and the TrainingArguments in the config.
"""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path
from typing import Any

from vramdoc.errors import MissingDependencyError, UsageError
from vramdoc.monitor.sources._events import Row, SourceRun, number, pick_args
from vramdoc.monitor.sources.tensorboard import trainer_name

BLOCK = 32768
HEADER = struct.Struct("<4sHB")  # ident, magic, version
RECORD = struct.Struct("<IHB")  # crc32, length, type
IDENT, MAGIC = b":W&B", 0xBEE1
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def run_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path] if path.suffix == ".wandb" else []
    return sorted(path.glob("run-*.wandb")) if path.is_dir() else []


def is_wandb_run(path: Path) -> bool:
    return bool(run_files(path))


def records(data: bytes) -> tuple[list[bytes], int]:
    """Payloads of the complete records in ``data``, and the count of corrupt ones.

    A record cut off at the end (a live run mid-write) is left out, not counted corrupt.
    """
    if len(data) < HEADER.size:
        return [], 0
    ident, magic, _version = HEADER.unpack_from(data, 0)
    if ident != IDENT or magic != MAGIC:
        raise UsageError("not a W&B run file (no :W&B header)", "give the offline-run-* folder")
    out: list[bytes] = []
    corrupt = 0
    pos, pending = HEADER.size, b""
    while pos + RECORD.size <= len(data):
        left = BLOCK - pos % BLOCK
        if left < RECORD.size:
            pos += left
            continue
        crc, length, rtype = RECORD.unpack_from(data, pos)
        if rtype == 0 and length == 0:  # zero padding to the block's end
            pos += left
            continue
        start = pos + RECORD.size
        if start + length > len(data):
            break  # cut off: a live run writing
        payload = data[start:start + length]
        pos = start + length
        if zlib.crc32(payload, zlib.crc32(bytes([rtype]))) & 0xFFFFFFFF != crc:
            corrupt += 1
            pending = b""
            continue
        if rtype == FULL:
            out.append(payload)
        elif rtype == FIRST:
            pending = payload
        elif rtype == MIDDLE:
            pending += payload
        elif rtype == LAST:
            out.append(pending + payload)
            pending = b""
        else:
            corrupt += 1
    return out, corrupt


def _key(item: Any) -> str:
    return item.key or "/".join(item.nested_key)


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def read(path: str | Path) -> SourceRun:
    """The history and config of one offline run folder (or its ``.wandb`` file)."""
    p = Path(path)
    files = run_files(p)
    if not files:
        raise UsageError(f"no run-*.wandb file in {p}", "give a wandb/offline-run-* folder")
    try:
        from wandb.proto import wandb_internal_pb2 as pb
    except ImportError as exc:
        raise MissingDependencyError("wandb", "wandb", "reading W&B run files") from exc
    try:
        data = files[-1].read_bytes()
    except OSError as exc:
        raise UsageError(f"{files[-1]}: cannot be read: {exc.strerror or exc}",
                         "check the path and its permissions") from None
    payloads, corrupt = records(data)
    run = SourceRun(source="wandb", path=str(files[-1]))
    config: dict[str, Any] = {}
    for payload in payloads:
        rec = pb.Record()
        try:
            rec.ParseFromString(payload)
        except Exception:  # noqa: BLE001 - google.protobuf.message.DecodeError
            corrupt += 1
            continue
        kind = rec.WhichOneof("record_type")
        if kind in ("run", "config"):
            items = rec.run.config.update if kind == "run" else rec.config.update
            for item in items:
                config[_key(item)] = _value(item.value_json)
        elif kind == "history":
            values = {_key(i): _value(i.value_json) for i in rec.history.item}
            step = number(values.get("train/global_step"))
            if step is None:
                step = number(values.get("_step"))
            logged = {trainer_name(k): v for k, v in values.items()
                      if not k.startswith("_") and k != "train/global_step"}
            if step is not None and logged:
                run.rows.append(Row(step=int(step), values=logged,
                                    time=number(values.get("_timestamp"))))
        elif kind == "exit":
            code = rec.exit.exit_code
            run.ended = "completed" if code == 0 else f"exit code {code}"
    run.args = pick_args(config)
    run.facts = {"corrupt_records": corrupt}
    return run
