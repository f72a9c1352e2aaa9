"""Server-Sent Events decoding."""

from __future__ import annotations

import pytest

from batches.dify.sse import SSEDecoder

STREAM = (
    b": comment\r\n"
    b'data: {"event": "workflow_started", "task_id": "t", "workflow_run_id": "r"}\r\n\r\n'
    b"event: ping\n\n"
    b'data: {"event": "text_chunk",\ndata: "data": {"text": "\xc3\xa9"}}\n\n'
    b'data: {"event": "workflow_finished"}\n\n'
)
EXPECTED_EVENTS = [
    ("message", '{"event": "workflow_started", "task_id": "t", "workflow_run_id": "r"}'),
    ("ping", ""),
    ("message", '{"event": "text_chunk",\n"data": {"text": "é"}}'),
    ("message", '{"event": "workflow_finished"}'),
]


@pytest.mark.parametrize("chunk_size", [1, 2, 3, 7, 16, 64, len(STREAM)])
def test_sse_decoder_gives_the_same_events_however_the_stream_is_split(chunk_size: int) -> None:
    decoder = SSEDecoder()
    events = [event for i in range(0, len(STREAM), chunk_size) for event in decoder.feed(STREAM[i : i + chunk_size])]
    assert events + list(decoder.flush()) == EXPECTED_EVENTS


def test_sse_decoder_flushes_a_last_frame_without_a_blank_line() -> None:
    decoder = SSEDecoder()
    assert list(decoder.feed(b'data: {"a": 1}')) == []
    assert list(decoder.flush()) == [("message", '{"a": 1}')]
