"""Where a base URL may point (batches.dify.hosts): only http(s) on allowed hosts; no SSRF: a base URL cannot reach
past its path, link-local addresses are refused (also behind a DNS name, at call time), an answer that is not Dify's
is never quoted back, and a refused port looks like a silent one."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command

from batches.dify import hosts as upstream_hosts
from batches.dify.hosts import host_allowed
from batches.dify.pages import check_connection, fetch_parameters
from batches.models import Workflow
from batches.services import workflows
from fakedify.harness import free_port
from tests.dify.upstreams import answer, app_for, assert_failed, call, serving, upstream

TRANSPORTS = ["aiohttp", "httpx"]
INTERNAL = b"internal-only: db_password=hunter2 instance-id=i-0abc"


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://127.0.0.1:5001/v1?", "query (?) or a fragment (#)"),
        ("http://169.254.169.254/latest/meta-data/?x=/v1", "query (?) or a fragment (#)"),
        ("http://internal.example/admin#", "query (?) or a fragment (#)"),
        ("http://user:pass@internal.example/v1", "user-info"),
        ("http://169.254.169.254/v1", "link-local address (169.254.169.254)"),
        ("http://[fe80::1]/v1", "link-local address (fe80::1)"),
        ("http://[::ffff:169.254.169.254]/v1", "link-local address (169.254.169.254)"),
    ],
)
def test_a_base_url_that_reaches_elsewhere_is_refused_on_save(db: None, url: str, problem: str) -> None:
    with pytest.raises(ValidationError) as caught:
        workflows.save_workflow("probe", base_url=url, api_key="app-some-key")

    assert problem in " ".join(caught.value.message_dict["base_url"])
    assert not Workflow.objects.exists()


def test_add_workflow_says_why_in_one_line(db: None) -> None:
    with pytest.raises(CommandError, match=r"^base_url: a base URL cannot have a query"):
        call_command("add_workflow", "probe", "--base-url", "http://127.0.0.1:5001/v1#", "--api-key", "app-key")


@pytest.mark.parametrize("url", ["http://127.0.0.1:5001/v1", "http://10.0.0.5/v1", "http://dify.internal:8080/v1"])
def test_private_addresses_stay_allowed_by_default(db: None, url: str) -> None:
    workflow, _ = workflows.save_workflow("self-hosted", base_url=url, api_key="app-some-key")

    assert workflow.base_url == url


def test_an_operator_may_list_a_link_local_range(db: None, settings: Any) -> None:
    settings.BATCHES_ALLOWED_UPSTREAM_HOSTS = ["169.254.10.0/24"]

    workflow, _ = workflows.save_workflow("listed", base_url="http://169.254.10.7/v1", api_key="app-some-key")

    assert workflow.base_url == "http://169.254.10.7/v1"


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("http://10.1.2.3/v1", True),
        ("http://[fd00::5]/v1", True),
        ("http://11.0.0.1/v1", False),
        ("https://api.dify.ai/v1", True),
        ("http://dify.internal/v1", False),
    ],
)
def test_allowed_hosts_take_cidr_ranges_too(url: str, allowed: bool) -> None:
    assert upstream_hosts.host_allowed(url, ["10.0.0.0/8", "fd00::/8", "api.dify.ai"]) is allowed


@pytest.fixture
def metadata_name(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A DNS name that resolves to the cloud metadata address (everything else resolves as usual)."""
    real = socket.getaddrinfo

    def resolve(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "metadata.attacker.test":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("169.254.169.254", port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    upstream_hosts._resolved.clear()
    yield "metadata.attacker.test"
    upstream_hosts._resolved.clear()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_name_resolving_to_a_link_local_address_is_refused_at_call_time(metadata_name: str, transport: str) -> None:
    result, seconds = call(app_for(f"http://{metadata_name}/v1"), transport)

    assert_failed(result, "app_error")
    assert "link-local address (169.254.169.254)" in result.error
    assert seconds < 2


def test_the_app_parameters_are_not_fetched_from_a_link_local_address(metadata_name: str) -> None:
    assert fetch_parameters(app_for(f"http://{metadata_name}/v1"), timeout=3) is None


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(
    ("status", "content_type"),
    [(200, "text/plain"), (500, "text/html"), (403, "text/plain"), (200, "application/json")],
)
def test_an_answer_that_is_not_difys_is_never_quoted(transport: str, status: int, content_type: str) -> None:
    body = b'{"secret": "' + INTERNAL + b'"}' if content_type == "application/json" and status == 200 else INTERNAL
    with upstream(answer(body, status=status, content_type=content_type)) as url:
        result, _ = call(app_for(url), transport)

    assert not result.ok
    assert "hunter2" not in result.error and "instance-id" not in result.error
    if status != 200 or content_type != "application/json":
        assert "not a Dify answer" in result.error
    if status != 200:
        assert result.error.startswith(f"HTTP {status}")


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port whose listener never accepts, with its queue full: a connection attempt gets no answer at all."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(4):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(("127.0.0.1", port))
        fillers.append(filler)
    yield port
    for sock in [*fillers, listener]:
        sock.close()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_refused_port_and_a_silent_port_read_the_same(transport: str, silent_port: int) -> None:
    refused, _ = call(app_for(f"http://127.0.0.1:{free_port()}/v1", timeout=2), transport)
    silent, _ = call(app_for(f"http://127.0.0.1:{silent_port}/v1", timeout=2), transport)

    assert (
        (refused.error_type, refused.error)
        == (silent.error_type, silent.error)
        == (
            "connection",
            upstream_hosts.CONNECT_FAILED,
        )
    )


def test_the_async_check_resolves_without_blocking_the_loop(metadata_name: str) -> None:
    with pytest.raises(upstream_hosts.UpstreamRefused):
        asyncio.run(upstream_hosts.check_url_async(f"http://{metadata_name}:8080/v1"))


@contextmanager
def raw_port(reply: bytes | None) -> Iterator[int]:
    """A TCP port that is not HTTP: it answers each connection with `reply` and closes (None: a reset)."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if reply is None:
            writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        else:
            await reader.read(100)
            writer.write(reply)
        writer.close()

    async def start() -> tuple[int, Any]:
        server = await asyncio.start_server(serve, "127.0.0.1", 0)

        async def stop() -> None:
            server.close()

        return server.sockets[0].getsockname()[1], stop

    with serving(start) as url:
        yield int(url.split(":")[2].split("/")[0])


NOT_HTTP = {
    "closes": b"",
    "banner": b"SSH-2.0-OpenSSH_9.2p1 build-host-42\r\n",
    "garbage status line": b"HTTP/1.1 OK internal-admin\r\n\r\n",
    "reset": None,
}


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("kind", list(NOT_HTTP))
def test_every_connection_failure_reads_the_same_in_runs_and_test_connection(transport: str, kind: str) -> None:
    refused = f"http://127.0.0.1:{free_port()}/v1"
    with raw_port(NOT_HTTP[kind]) as port:
        other = f"http://127.0.0.1:{port}/v1"
        runs = [call(app_for(url, timeout=3), transport)[0] for url in (refused, other)]
        tests = [check_connection(app_for(url, timeout=3)) for url in (refused, other)]

    assert {(r.error_type, r.error) for r in runs} == {("connection", upstream_hosts.CONNECT_FAILED)}
    assert {report.error for report in tests} == {f"connection: {upstream_hosts.CONNECT_FAILED}"}


@pytest.mark.parametrize(
    ("url", "patterns", "allowed"),
    [
        ("https://api.dify.ai/v1", [], True),
        ("https://api.dify.ai/v1", ["api.dify.ai"], True),
        ("https://API.Dify.AI./v1", ["api.dify.ai"], True),
        ("https://api.dify.ai.evil.com/v1", ["api.dify.ai"], False),
        ("https://dify.internal:8443/v1", ["*.example.com", "dify.internal"], True),
        ("https://a.b.example.com/v1", ["*.example.com"], True),
        ("https://example.com/v1", ["*.example.com"], False),
        ("https://badexample.com/v1", ["*.example.com"], False),
        ("http://[::1]:5001/v1", ["[::1]"], True),
        ("http://127.0.0.1:5001/v1", ["localhost"], False),
        ("http://user@evil.com@api.dify.ai/v1", ["evil.com"], False),
        ("http://[::1/v1", ["*"], False),
        ("https://anything.at.all/v1", ["*"], True),
    ],
)
def test_host_allowed(url: str, patterns: list[str], allowed: bool) -> None:
    assert host_allowed(url, patterns) is allowed


def test_a_workflow_on_a_host_not_allowed_is_refused(settings: Any, make_workflow: Any) -> None:
    settings.BATCHES_ALLOWED_UPSTREAM_HOSTS = ["api.dify.ai", "*.corp.example"]
    workflow = make_workflow()

    workflow.base_url = "https://dify.corp.example/v1"
    workflow.full_clean()
    workflow.base_url = "https://169.254.169.254/latest"
    with pytest.raises(ValidationError) as error:
        workflow.full_clean()

    assert list(error.value.message_dict) == ["base_url"]


def test_add_workflow_refuses_a_host_not_allowed(settings: Any, db: None) -> None:
    settings.BATCHES_ALLOWED_UPSTREAM_HOSTS = ["api.dify.ai"]

    with pytest.raises(CommandError, match="base_url: This host is not allowed"):
        call_command("add_workflow", "wf", "--base-url", "http://10.0.0.1/v1", "--api-key", "app-k")


@pytest.mark.parametrize("url", ["ftp://api.dify.ai/v1", "file:///etc/passwd", "javascript:alert(1)"])
def test_a_base_url_must_be_http_or_https(make_workflow: Any, url: str) -> None:
    workflow = make_workflow()
    workflow.base_url = url

    with pytest.raises(ValidationError) as error:
        workflow.full_clean()

    assert "base_url" in error.value.message_dict
