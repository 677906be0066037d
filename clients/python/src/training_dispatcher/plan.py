"""The plan's ``TrainingJob.status`` column (pending/running/completed/failed/stopped) from the
dispatcher's finer phases, and the error text a failed row shows."""

from __future__ import annotations

from typing import Literal

PlanStatus = Literal["pending", "running", "completed", "failed", "stopped"]

_PLAN_STATUS: dict[str, PlanStatus] = {
    "pending": "pending",
    # Waiting for a node (with the scheduler's reason) or for its image: not running yet.
    "queued": "pending",
    "starting": "pending",
    "running": "running",
    # An attempt failed and another is coming: the run goes on (the plan's `failed > 0` got this wrong).
    "retrying": "running",
    "completed": "completed",
    "failed": "failed",
    "stopped": "stopped",
}


def plan_status(phase: str) -> PlanStatus:
    """The plan's status for a dispatcher phase; an unknown phase (a newer dispatcher) raises ValueError."""
    try:
        return _PLAN_STATUS[phase]
    except KeyError:
        raise ValueError(f"unknown dispatcher phase {phase!r}; expected one of {', '.join(_PLAN_STATUS)}") from None


def error_message(phase: str, reason: str, message: str | None, exit_code: int | None = None) -> str | None:
    """What the row's error column says: for a failed job its reason, message and exit code; else None."""
    if phase != "failed":
        return None
    parts = [reason]
    if message:
        parts.append(message)
    if exit_code is not None and f"code {exit_code}" not in (message or ""):
        parts.append(f"exit code {exit_code}")
    return ": ".join(parts)
