"""`manage.py fake_dify`: run the project's own Dify stand-in until SIGTERM/SIGINT, then print its stats.

Only there when the development app `fakedify` is installed (DJANGO_DEBUG or BATCHES_DEV_TOOLS on)."""

from __future__ import annotations

import asyncio
import json
import resource
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from fakedify.options import ETLS, FakeOptions, parse_blacklist, parse_faults, parse_variables
from fakedify.server import serve


class Command(BaseCommand):
    help = (
        "Run a fake Dify Service API (workflow, completion and chat apps) with latency, faults and limits. "
        "Prints its URL first and its final stats JSON on SIGTERM/SIGINT."
    )
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", type=int, default=5001, help="0 picks a free port")
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--latency-ms", type=float, default=0.0, help="how long a run takes")
        parser.add_argument("--fail-rate", type=float, default=0.0, help="spread over the transient faults")
        parser.add_argument("--faults", default="", help="TYPE=RATE,... e.g. server_error=0.05,reset=0.02")
        parser.add_argument("--rpm", type=int, default=None, help="accepted run calls per 60 s window")
        parser.add_argument("--max-active", type=int, default=None, help="run calls in flight at once")
        parser.add_argument("--seed", type=int, default=None)
        parser.add_argument(
            "--variables",
            default="",
            help="variable:label[:required][:type],... for GET /parameters (type file or file-list: a file variable)",
        )
        parser.add_argument("--ping-interval", type=float, default=10.0, help="seconds between stream pings")
        parser.add_argument("--newer-dify", action="store_true", help="upload ids only for their uploader's runs")
        parser.add_argument("--etl", choices=ETLS, default="default", help="which extensions are documents")
        parser.add_argument("--upload-blacklist", default="", help="extensions uploads refuse, e.g. exe,bat")
        parser.add_argument("--no-size-limits", action="store_true", help="no upload size limits (benchmarks)")

    def handle(self, *args: Any, **opts: Any) -> None:
        try:
            options = _options(opts)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        _raise_file_limit()
        try:
            stats = asyncio.run(serve(options, opts["host"], opts["port"], self._announce))
        except OSError as exc:
            raise CommandError(f"cannot listen on {opts['host']}:{opts['port']}: {exc}") from exc
        self.stdout.write(json.dumps(stats, sort_keys=True))
        self.stdout.flush()

    def _announce(self, url: str) -> None:
        self.stdout.write(f"fake_dify listening on {url}")
        self.stdout.flush()


def _options(opts: dict[str, Any]) -> FakeOptions:
    options = FakeOptions(
        latency_ms=max(0.0, opts["latency_ms"]),
        fail_rate=opts["fail_rate"],
        faults=parse_faults(opts["faults"]),
        rpm=opts["rpm"],
        max_active=opts["max_active"],
        seed=opts["seed"],
        variables=parse_variables(opts["variables"]),
        ping_interval=max(0.01, opts["ping_interval"]),
        newer_dify=opts["newer_dify"],
        etl=opts["etl"],
        upload_blacklist=parse_blacklist(opts["upload_blacklist"]),
        size_limits=not opts["no_size_limits"],
    )
    options.fault_table()  # rates adding up to more than 1 are refused here, not at the first call
    return options


def _raise_file_limit() -> None:
    """Allow as many connections as the hard limit permits."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
