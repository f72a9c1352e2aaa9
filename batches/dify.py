"""Dify Service API client (workflow, completion and chat apps; streaming and blocking)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class AppSettings:
    """What a call needs to reach one Dify app; built from a batch's snapshot plus the workflow's API key."""

    mode: str  # workflow | completion | chat
    base_url: str  # e.g. http://127.0.0.1:5001/v1
    api_key: str = field(repr=False)
    response_mode: str = "streaming"  # streaming | blocking
    timeout: float = 300.0  # total seconds for one call


@dataclass(frozen=True)
class InputVariable:
    """One entry of the app's `user_input_form` (GET /v1/parameters)."""

    variable: str
    label: str
    required: bool = False
    type: str = "text-input"


@dataclass
class CallResult:
    """How one call ended. `error_type` is empty on success, else one of models.ErrorType's values."""

    ok: bool
    outputs: dict[str, Any] | None = None
    error_type: str = ""
    error: str = ""
    http_status: int | None = None
    workflow_run_id: str = ""
    task_id: str = ""  # task_id (workflow) or message_id (completion/chat)
    total_tokens: int = 0
    elapsed: float | None = None  # upstream's own elapsed_time
    upstream_status: str = ""  # e.g. succeeded, partial-succeeded, failed, stopped, running
    retry_after: float | None = None
    latency: float = 0.0  # measured by us, seconds
