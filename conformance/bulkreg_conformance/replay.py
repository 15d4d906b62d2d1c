"""Replays: re-send the minimal sequence of bulk calls that led to a failure, in a fresh prefix.

A failure's replay record (``Ledger.replay_of``) holds its episode: every bulk call from the
start of the hypothesis example, the stateful sequence or the plan's unit up to the failure,
setup calls included, each with the reads that followed it, with the ids of the run that found
it. ``run`` sends the same
calls with the run's own (fresh) prefix in place of the old one, through the same checks and
read-backs, so the same check fails again against the same endpoint behaviour.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bulkreg_conformance.session import Session

__all__ = ["REPLAY_VERSION", "run", "steps"]

REPLAY_VERSION = 2


def steps(replay: dict[str, Any]) -> list[dict[str, Any]]:
    """The bulk calls of a replay record (a version 1 record holds one payload)."""
    listed = replay.get("steps")
    if isinstance(listed, list) and listed:
        return [s for s in listed if isinstance(s, dict)]
    return [{"raw": str(replay.get("payload", "")), "rule": replay.get("rule"),
             "readback": True, "api_version": replay.get("api_version")}]


def run(ctx: Session, replay: dict[str, Any]) -> None:
    """Send ``replay``'s calls in this run's prefix, each checked as in the original run."""
    old = str(replay.get("prefix") or "")
    new = ctx.client.prefix
    ctx.suite = "replay"
    ctx.episode()
    def moved(text: str) -> str:
        return text.replace(old, new) if old else text

    for step in steps(replay):
        version = step.get("api_version") or None
        rule = step.get("rule")
        reads = step.get("reads")
        # a step that recorded its reads is read back exactly so; an older one, as then
        readback = bool(step.get("readback", True)) and not isinstance(reads, list)
        if "entries" in step:
            entries = json.loads(moved(json.dumps(step["entries"], ensure_ascii=False)))
            cause = ctx.bulk_step(entries, rule=rule, readback=readback, api_version=version)
        else:
            raw = moved(str(step.get("raw", "")))
            cause = ctx.bulk_step(None, raw=raw.encode("utf-8", "surrogateescape"), rule=rule,
                                  readback=readback, api_version=version)
        for read in reads if isinstance(reads, list) else []:
            if isinstance(read, list) and len(read) == 3 and isinstance(read[0], str):
                ctx.read(moved(read[0]), cause, device=bool(read[1]), twin=bool(read[2]))
