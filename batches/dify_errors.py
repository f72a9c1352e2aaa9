"""Which error type a Dify error means: by HTTP status, by Dify's error code and, where Dify reuses one code for
transient and permanent failures, by what the message says (README "Error classification").

The same rules serve an HTTP error answer, an in-stream `error` event (same codes and statuses) and a failed
run's `data.error`, so a failure is classified alike however it arrives.
"""

from __future__ import annotations

import re

# Codes that mean the app itself is unusable: every row would fail alike (the batch pauses).
APP_ERROR_CODES = frozenset({
    "app_unavailable", "not_workflow_app", "not_chat_app", "not_completion_app", "provider_not_initialize",
    "provider_quota_exceeded", "model_currently_not_support",
})  # fmt: skip
# Codes of a failed model call or run.
FAILED_CODES = frozenset({"completion_request_error", "workflow_request_error"})

# Dify's app concurrency cap (`max_active_requests`): a ValueError, so 400 invalid_param, never 429.
CONCURRENCY_CAP = re.compile(r"^\s*Too many requests\b", re.I)
# 400 invalid_param answers that are about the app, not the row.
APP_UNUSABLE = re.compile(
    r"does not support blocking mode|workflow not (?:published|initialized)|app model config (?:is )?broken"
    r"|app is disabled|not (?:a )?(?:workflow|chat|completion) app",
    re.I,
)
# A chatflow that failed, in blocking mode: 400 invalid_param "Run failed: <the run's error>".
RUN_FAILED = re.compile(r"^\s*Run failed:\s*", re.I)
# A model provider's failure wrapped by Dify (plugin invoke errors, provider SDK messages).
PROVIDER_FAILURE = re.compile(
    r"PluginInvokeError|PluginDaemon|Invoke\w*Error|\[(?:\w|-)+\] \w[\w ]*Error|Error code: \d{3}|provider",
    re.I,
)
QUOTA = re.compile(r"quota|billing|insufficient[_ ]balance|credit balance", re.I)
AUTH = re.compile(
    r"InvokeAuthorizationError|AuthenticationError|PermissionDenied|credentials|api[_ -]?key|Unauthorized"
    r"|Error code: 40[13]\b",
    re.I,
)
RATE_LIMIT = re.compile(r"InvokeRateLimitError|rate[_ ]?limit|too many requests|Error code: 429\b|\b429\b", re.I)
TRANSIENT = re.compile(
    r"InvokeServerUnavailableError|InvokeConnectionError|timed? ?out|timeout|overloaded|unavailable"
    r"|connection|Error code: 5\d\d\b|\b50[0234]\b|internal server error|bad gateway|try again",
    re.I,
)


def classify(status: int, code: str, message: str) -> str:
    """The error type of a Dify error answer (HTTP status, `code`, `message`)."""
    if 300 <= status < 400:
        return "bad_response"
    if status == 429:
        return "rate_limited"
    if status in (401, 403):
        return "auth"
    if status == 408:
        return "timeout"
    if status >= 500:
        return "upstream_error"
    if status == 404 or code in APP_ERROR_CODES:
        return "app_error"
    if code in FAILED_CODES:
        return classify_run_error(message)
    if 400 <= status < 500:
        return _classify_400(message)
    return "bad_response"


def _classify_400(message: str) -> str:
    if CONCURRENCY_CAP.search(message):
        return "rate_limited"
    if APP_UNUSABLE.search(message):
        return "app_error"
    if RUN_FAILED.search(message):
        return classify_run_error(RUN_FAILED.sub("", message, count=1))
    if PROVIDER_FAILURE.search(message):
        return _provider_failure(message) or "workflow_failed"
    return "invalid_input"


def classify_run_error(message: str) -> str:
    """A failed run's or model call's error text: the provider's own verdict where it says one."""
    return _provider_failure(message) or "workflow_failed"


def _provider_failure(message: str) -> str:
    """rate_limited, app_error (quota, credentials), workflow_failed (transient), or "" when it says none."""
    if QUOTA.search(message):
        return "app_error"
    if RATE_LIMIT.search(message):
        return "rate_limited"
    if AUTH.search(message):
        return "app_error"
    if TRANSIENT.search(message):
        return "workflow_failed"
    return ""
