"""Which error type an answer means, and Retry-After."""

from __future__ import annotations

import email.utils
import time

import pytest

from batches.dify.errors import classify_http_error, parse_retry_after


@pytest.mark.parametrize(
    ("status", "body", "content_type", "error_type"),
    [
        (429, '{"code": "too_many_requests", "message": "m", "status": 429}', "application/json", "rate_limited"),
        (429, '{"code": "rate_limit_error"}', "application/json", "rate_limited"),
        (500, '{"code": "internal_server_error"}', "application/json", "upstream_error"),
        (502, "<html><title>502 Bad Gateway</title></html>", "text/html", "upstream_error"),
        (503, "", "text/plain", "upstream_error"),
        (504, b"<html>gateway</html>", "text/html; charset=utf-8", "upstream_error"),
        (400, '{"code": "invalid_param", "message": "text is required"}', "application/json", "invalid_input"),
        (413, "too big", "text/plain", "invalid_input"),
        (422, "{}", "application/json", "invalid_input"),
        (408, "", "text/plain", "timeout"),
        (400, '{"code": "app_unavailable"}', "application/json", "app_error"),
        (400, '{"code": "not_workflow_app"}', "application/json", "app_error"),
        (400, '{"code": "not_chat_app"}', "application/json", "app_error"),
        (400, '{"code": "not_completion_app"}', "application/json", "app_error"),
        (400, '{"code": "provider_not_initialize"}', "application/json", "app_error"),
        (400, '{"code": "provider_quota_exceeded"}', "application/json", "app_error"),
        (400, '{"code": "model_currently_not_support"}', "application/json", "app_error"),
        (404, '{"code": "not_found"}', "application/json", "app_error"),
        (404, "<html>Not Found</html>", "text/html", "app_error"),
        (400, '{"code": "completion_request_error"}', "application/json", "workflow_failed"),
        (400, '{"code": "workflow_request_error"}', "application/json", "workflow_failed"),
        (401, '{"code": "unauthorized"}', "application/json", "auth"),
        (403, "<html>Forbidden</html>", "text/html", "auth"),
        (301, "", "text/html", "bad_response"),
        (302, "", "text/plain", "bad_response"),
        (400, "not json {", "application/json", "invalid_input"),
    ],
)
def test_classify_http_error_maps_statuses_and_codes(
    status: int, body: str | bytes, content_type: str, error_type: str
) -> None:
    kind, message = classify_http_error(status, body, content_type)
    assert kind == error_type
    assert message.startswith(f"HTTP {status}")
    assert "\n" not in message


def test_classify_http_error_message_names_the_code_and_never_quotes_another_answer() -> None:
    body = '{"code": "invalid_param", "message": "bad\\nthing", "status": 400}'
    assert classify_http_error(400, body, "application/json")[1] == ("HTTP 400 invalid_param: bad thing")
    assert classify_http_error(502, "<html><title>502 Bad Gateway</title></html>", "text/html")[1] == (
        "HTTP 502: not a Dify answer"
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, None), ("", None), ("  ", None), ("1", 1.0), ("2.5", 2.5), ("-3", 0.0), ("soon", None)],
)
def test_parse_retry_after_reads_seconds(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value) == expected


def test_parse_retry_after_reads_an_http_date() -> None:
    later = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 28 <= (parse_retry_after(later) or 0) <= 31
    assert parse_retry_after(email.utils.formatdate(time.time() - 30, usegmt=True)) == 0.0


@pytest.mark.parametrize(
    "body",
    [
        '{"code": "not_found", "message": "no route /v1/parameters on internal-admin:8443"}',
        '{"code": "error", "message": "internal-admin:8443 says no", "status": 500}',  # status not the answer's
        '{"message": "internal-admin:8443 says no"}',
        '{"code": "internal-admin:8443 says no", "status": 404}',
        '{"error": "internal-admin:8443 says no", "code": "x"}',
    ],
)
def test_a_json_body_not_shaped_as_difys_errors_is_never_quoted(body: str) -> None:
    kind, message = classify_http_error(404, body, "application/json")

    assert "internal-admin" not in message
    assert message.startswith("HTTP 404")
    assert kind == "app_error"


def test_difys_own_error_shape_is_quoted() -> None:
    body = '{"code": "invalid_param", "message": "text is required in input form", "status": 400}'

    assert classify_http_error(400, body, "application/json") == (
        "invalid_input",
        "HTTP 400 invalid_param: text is required in input form",
    )
