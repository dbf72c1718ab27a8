"""Read an offline W&B run back into plain dicts, so tests can check what a run logged.

The Go service (wandb-core) writes run-<id>.wandb, and the installed wandb (0.31) ships no public Python reader for
it: wandb.sdk.internal.datastore.DataStore went with the old Python service, and `wandb sync` only uploads. So the
framing is parsed here and each record is decoded with wandb's own protobuf, wandb.proto.wandb_internal_pb2.Record.
Only the tests use this, so it lives with them rather than in the package.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

# The framing is LevelDB's log format: a 7-byte file header (":W&B", magic 0xBEE1, version 0), then 32 KiB
# blocks of chunks, each with a 7-byte header (crc32c, length, type); a record too large for a block is split
# into FIRST/MIDDLE/LAST.
# The CRC (crc32c) is not checked: the stdlib has no crc32c, and a torn tail just ends the read.

_BLOCK = 32 * 1024
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


def _records(path: Path):
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    if data[:4] != b":W&B":
        raise ValueError(f"{path} is not a W&B transaction log")
    pos, pending = 7, b""
    while True:
        if _BLOCK - pos % _BLOCK < 7:  # block tails too short for a header are zero padding
            pos += _BLOCK - pos % _BLOCK
        if pos + 7 > len(data):
            return
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        chunk = data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if len(chunk) < length or kind not in (_FULL, _FIRST, _MIDDLE, _LAST):
            return  # truncated file (crashed run) or unwritten space
        if kind == _FULL:
            payload = chunk
        elif kind == _LAST:
            payload, pending = pending + chunk, b""
        else:  # _FIRST starts a record, _MIDDLE continues it
            pending = chunk if kind == _FIRST else pending + chunk
            continue
        record = wandb_internal_pb2.Record()
        record.ParseFromString(payload)
        yield record


def _set(target: dict, item: Any) -> None:
    """Apply one config/history/summary item; nested_key (a path) is what wandb-core writes, key the SDK."""
    path = list(item.nested_key) or [item.key]
    for part in path[:-1]:
        target = target.setdefault(part, {})
    target[path[-1]] = json.loads(item.value_json)


def _drop(target: dict, item: Any) -> None:
    path = list(item.nested_key) or [item.key]
    for part in path[:-1]:
        target = target.get(part, {})
    target.pop(path[-1], None)


def read_offline_run(run_dir: str | Path) -> dict:
    """Read the offline W&B run under run_dir/wandb into {"id", "name", "project", "entity", "group", "job_type",
    "tags", "config", "history", "summary", "metrics", "artifacts", "exit_code"}.

    metrics: {name or glob: step metric} from define_metric; artifacts: [{"name", "type", "metadata", "files"}].

    A resumed run leaves one offline-run-* directory per session; they are merged in time order.
    exit_code is the last session's (nonzero: failed), None if that session never finished.
    Keys starting with "_" (wandb's bookkeeping such as _runtime) are dropped, except "_step" in history rows.
    """
    files = sorted(Path(run_dir).glob("wandb/offline-run-*/run-*.wandb"))
    if not files:
        raise FileNotFoundError(f"no offline W&B run under {Path(run_dir) / 'wandb'}")
    run_id = name = exit_code = None
    run_info: dict = {}
    metrics: dict = {}
    artifacts: list[dict] = []
    config: dict = {}
    history: list[dict] = []
    summary: dict = {}
    for path in files:
        exit_code = None  # a session that ended without an exit record never finished
        for record in _records(path):
            kind = record.WhichOneof("record_type")
            if kind == "run":
                run_id, name = record.run.run_id, record.run.display_name
                run_info = {"project": record.run.project, "entity": record.run.entity or None,
                            "group": record.run.run_group, "job_type": record.run.job_type,
                            "tags": list(record.run.tags)}
                for item in record.run.config.update:
                    _set(config, item)
            elif kind == "config":
                for item in record.config.update:
                    _set(config, item)
                for item in record.config.remove:
                    _drop(config, item)
            elif kind == "history":
                row: dict = {}
                for item in record.history.item:
                    _set(row, item)
                history.append(row)
            elif kind == "summary":
                for item in record.summary.update:
                    _set(summary, item)
                for item in record.summary.remove:
                    _drop(summary, item)
            elif kind == "metric":
                metrics[record.metric.name or record.metric.glob_name] = record.metric.step_metric
            elif kind == "artifact":
                artifacts.append({"name": record.artifact.name, "type": record.artifact.type,
                                  "metadata": json.loads(record.artifact.metadata or "{}"),
                                  "files": sorted(e.path for e in record.artifact.manifest.contents)})
            elif kind == "exit":
                exit_code = record.exit.exit_code

    def public(d: dict, keep: tuple[str, ...] = ()) -> dict:
        return {k: v for k, v in d.items() if not k.startswith("_") or k in keep}

    return {
        "id": run_id,
        "name": name,
        **run_info,
        "config": public(config),
        "history": [public(row, keep=("_step",)) for row in history],
        "summary": public(summary),
        "metrics": metrics,
        "artifacts": artifacts,
        "exit_code": exit_code,
    }


def referenced_keys(spec: dict) -> dict[str, set[str]]:
    """Every W&B key the workspace reads, by where a run holds it: {"config": dotted paths, "summary": names,
    "history": names, "run": run attributes}. tests/test_dashboard.py checks each against a real offline run."""
    keys: dict[str, set[str]] = {"config": set(), "summary": set(), "history": set(), "run": set()}

    def backend(name: str | None, history: bool) -> None:  # panel metric names: config.x.value.y, summary_metrics.x
        if not name:
            return
        if name.startswith(("summary:", "config:")):  # scatter plots name their axes like parallel coordinates
            accessor(name)
        elif name.startswith("config."):
            keys["config"].add(name.removeprefix("config.").replace(".value", "", 1))
        elif name.startswith("summary_metrics."):
            keys["summary"].add(name.removeprefix("summary_metrics."))
        elif not name.startswith("_"):
            keys["history" if history else "summary"].add(name)

    def accessor(name: str) -> None:  # parallel coordinates: config:x.value.y, summary:x
        section, _, key = name.partition(":")
        keys["config" if section == "config" else section].add(key.replace(".value", "", 1))

    def key(k: dict) -> None:  # runset filters, grouping and sort: {"section", "name"}
        keys[k["section"]].add(k["name"].replace(".value", "", 1))

    section = spec["spec"]["section"]
    backend(section["settings"].get("xAxis"), history=True)
    for bank in section["panelBankConfig"]["sections"]:
        for panel in bank["panels"]:
            config, kind = panel["config"], panel["viewType"]
            history = kind == "Run History Line Plot"
            for name in config.get("metrics", []):
                backend(name, history)
            for axis in ("xAxis", "yAxis", "zAxis"):
                backend(config.get(axis), history)
            if config.get("groupBy"):
                keys["config"].add(config["groupBy"].replace(".value", "", 1))
            for column in config.get("columns", []):
                accessor(column["accessor"])
    for runset in section["runSets"]:
        for item in runset["filters"]["filters"]:
            key(item["key"])
        for group in runset["grouping"]:
            key(group)
        for sort in runset["sort"]["keys"]:
            key(sort["key"])
        for column in runset["runFeed"]["columnOrder"]:
            section_name, _, name = column.partition(":")
            if section_name != "run":
                keys[section_name].add(name.replace(".value", "", 1) if section_name == "config" else name)
    return keys
