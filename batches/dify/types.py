"""What a call to Dify needs and gives back: the app's settings, its input variables, a call's result, and the
limits the client keeps. Plain data: importing it loads no HTTP library."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

MAX_RESPONSE_BYTES = 10 * 1024 * 1024
STREAM_FACTOR = 10  # a stream may carry this many times the answer cap in events the client does not keep
MAX_PARAMETERS_BYTES = 1024 * 1024
MAX_ID_CHARS = 64  # the id columns' width; Dify's ids are UUIDs
MAX_COUNT = 2**31 - 1  # the token columns' range
UNREADABLE_KEY_ERROR = (
    "the stored API key cannot be decrypted with BATCHES_ENCRYPTION_KEY: restore the key that encrypted it, "
    "or enter the API key again"
)
OK_STATUSES = frozenset({"succeeded", "partial-succeeded"})
PAUSE_EVENTS = frozenset({"workflow_paused", "human_input_required"})
KEPT_EVENTS = frozenset(
    {"message", "agent_message", "message_replace", "message_file", "message_end", "workflow_finished", "error"}
)
PAUSED_REASON = "the run waits for a person (a Human Input node): an app that pauses cannot run in a batch"
PATHS = {"workflow": "/workflows/run", "completion": "/completion-messages", "chat": "/chat-messages"}
STOP_PATHS = {
    "workflow": "/workflows/tasks/{}/stop",
    "completion": "/completion-messages/{}/stop",
    "chat": "/chat-messages/{}/stop",
}

OnStarted = Callable[[str, str], None]


@dataclass(frozen=True)
class AppSettings:
    """What a call needs to reach one Dify app; built from a batch's snapshot plus the workflow's API key."""

    mode: str  # workflow | completion | chat
    base_url: str  # e.g. http://127.0.0.1:5001/v1
    api_key: str = field(repr=False)
    response_mode: str = "streaming"  # streaming | blocking
    timeout: float = 600.0  # total seconds for one call: the workflow's own limit, in both modes
    silence_timeout: float = 60.0  # streaming: longest silence (Dify pings every 10 s); blocking waits `timeout`


@dataclass(frozen=True)
class InputVariable:
    """One entry of the app's `user_input_form` (GET /v1/parameters)."""

    variable: str
    label: str
    required: bool = False
    type: str = "text-input"
    options: tuple[str, ...] = ()  # select
    max_length: int | None = None  # characters; for a file-list, how many files
    default: Any = None
    # file / file-list variables (batches/imports/files.py): what the app accepts
    allowed_file_types: tuple[str, ...] = ()
    allowed_file_extensions: tuple[str, ...] = ()
    allowed_file_upload_methods: tuple[str, ...] = ()


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
    price: str = ""  # chat and completion apps: metadata.usage.total_price, a decimal string
    currency: str = ""
    upstream_status: str = ""  # e.g. succeeded, partial-succeeded, failed, stopped, running
    retry_after: float | None = None
    latency: float = 0.0  # measured by us, seconds
    stop_task_id: str = ""  # the stream's task_id, what the stop endpoint wants (all modes)
    run_created_at: float | None = None  # a looked-up run's created_at (epoch seconds)
    final: bool = False  # no automatic retry whatever the error type (a run stopped in Dify)

    def fail(self, error_type: str, error: str, http_status: int | None = None) -> CallResult:
        # Not cut yet: a cut could leave part of the API key, which DifyClient masks before cutting.
        self.ok, self.error_type, self.error = False, error_type, " ".join(error.split())
        if http_status is not None:
            self.http_status = http_status
        return self


class BadResponse(Exception):
    """The upstream answered something unusable (maps to `bad_response`); `excerpt`: the answer, for the message."""

    def __init__(self, message: str, excerpt: bytes | str = "") -> None:
        super().__init__(message)
        self.excerpt = excerpt

    def describe(self, secret: str = "", chars: int = 100) -> str:
        """The message; an answer that is not a Dify answer is never quoted (it may come from any internal service)."""
        return f"{self}: not a Dify answer" if self.excerpt else str(self)
