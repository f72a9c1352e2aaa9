"""Every set of named values the app stores or reports: statuses, modes, error types and the error families the
services act on. It imports nothing from the app, so the models, the Dify client and the services can all use it.
"""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class Mode(models.TextChoices):
    WORKFLOW = "workflow", _("Workflow")
    COMPLETION = "completion", _("Completion")
    CHAT = "chat", _("Chat")


class ResponseMode(models.TextChoices):
    STREAMING = "streaming", _("Streaming")
    BLOCKING = "blocking", _("Blocking")


class ErrorType(models.TextChoices):
    RATE_LIMITED = "rate_limited", _("Rate limited")
    UPSTREAM_ERROR = "upstream_error", _("Upstream error")
    TIMEOUT = "timeout", _("Timeout")
    CONNECTION = "connection", _("Connection")
    BAD_RESPONSE = "bad_response", _("Bad response")
    WORKFLOW_FAILED = "workflow_failed", _("Workflow failed")
    INVALID_INPUT = "invalid_input", _("Invalid input")
    APP_ERROR = "app_error", _("App error")
    AUTH = "auth", _("Authentication")
    INTERRUPTED = "interrupted", _("Interrupted")
    CANCELLED = "cancelled", _("Cancelled")


TRANSIENT_ERRORS = frozenset(
    {
        ErrorType.RATE_LIMITED,
        ErrorType.UPSTREAM_ERROR,
        ErrorType.TIMEOUT,
        ErrorType.CONNECTION,
        ErrorType.BAD_RESPONSE,
        ErrorType.WORKFLOW_FAILED,
    }
)
# Every other row of the batch would fail the same way, so the batch pauses.
PAUSING_ERRORS = frozenset({ErrorType.AUTH, ErrorType.APP_ERROR})
# Failures that say the upstream is down rather than anything about the row: they feed the upstream circuit.
OUTAGE_ERRORS = frozenset({ErrorType.CONNECTION, ErrorType.TIMEOUT, ErrorType.UPSTREAM_ERROR})
# Answers that prove the upstream is up, whatever they say about the row.
ANSWERED_ERRORS = frozenset(
    {ErrorType.RATE_LIMITED, ErrorType.WORKFLOW_FAILED, ErrorType.INVALID_INPUT, ErrorType.APP_ERROR, ErrorType.AUTH}
)
# The error types that say how the row's latest run ended: a run seen to fail, stopped in Dify or cancelled by
# staff is not asked about again (a stopped run says `running` for ever: asking would only wait). After any other
# (a cut stream, a timeout, a failed look-up) it may have finished inside Dify (batches/runner/reconcile.py).
RUN_ENDED_ERRORS = frozenset({ErrorType.WORKFLOW_FAILED, ErrorType.CANCELLED})


class BatchStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    RUNNING = "running", _("Running")
    PAUSED = "paused", _("Paused")
    FINISHED = "finished", _("Finished")
    CANCELLED = "cancelled", _("Cancelled")


ACTIVE = (BatchStatus.PENDING, BatchStatus.RUNNING, BatchStatus.PAUSED)  # not finished or cancelled
ENDED = (BatchStatus.FINISHED, BatchStatus.CANCELLED)


class ExecutionStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    RUNNING = "running", _("Running")
    SUCCEEDED = "succeeded", _("Succeeded")
    FAILED = "failed", _("Failed")
    CANCELLED = "cancelled", _("Cancelled")


class Trigger(models.TextChoices):
    AUTO = "auto", _("Automatic")
    MANUAL = "manual", _("Manual")
    RECOVERY = "recovery", _("Recovery")


class CircuitState(models.TextChoices):
    CLOSED = "closed", _("Closed")
    OPEN = "open", _("Open")
    HALF_OPEN = "half_open", _("Half open")
