"""The app's own settings (BATCHES_*) in one place: each one's default, the environment variable of its name that
overrides it, and one line saying what it does. README's table of them is rendered from here (`readme_table`).

Code reads them as `from batches.conf import settings`, then `settings.BATCHES_...`: a value the Django settings
define (a deployment's own settings module, `override_settings`, pytest-django's `settings` fixture) wins over the
default. batchsite/settings.py reads a few defaults from `BatchesSettings` itself (django-q2's workers and timeout, the
email timeout, the log level), so a Django setting of those names does not reach them.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from django.conf import settings as django_settings

T = TypeVar("T")
MiB = 1024 * 1024
GiB = 1024 * MiB
DEFAULT_FILES_DIR = Path(__file__).resolve().parent.parent / "data" / "files"
# What Dify's default ETL takes as documents (with ETL_TYPE=Unstructured add doc,eml,msg,pptx,xml,epub and ppt).
DIFY_DOCUMENT_EXTENSIONS = [
    *("txt", "markdown", "md", "mdx", "pdf", "html", "htm", "xlsx", "xls", "docx", "csv", "vtt", "properties")
]
TABLE_START = "<!-- The app's settings: rendered from batches/conf.py by `make settings-table`. -->"
TABLE_END = "<!-- End of the app's settings. -->"


def _flag(raw: str) -> bool:
    return raw.strip().lower() in {"1", "true", "yes", "on"}


def _list(raw: str) -> list[str]:
    return [item.strip() for item in raw.split(",") if item.strip()]


def _extensions(raw: str) -> list[str]:
    return _list(raw) or DIFY_DOCUMENT_EXTENSIONS


def _files_dir(raw: str) -> Path:
    return Path(raw or DEFAULT_FILES_DIR)


def _days(raw: str) -> float | None:
    return float(raw) if raw else None


def _site_url(raw: str) -> str:
    return raw.rstrip("/")


PARSERS: dict[type, Callable[[str], Any]] = {bool: _flag, int: int, float: float, str: str}


class Setting(Generic[T]):
    """One setting: the environment variable of its name read with `parse` (by default the default's type), else
    `default` (another setting: that one's value). `doc` is its line in the README; `shown`, its default there when
    the value would not say it."""

    def __init__(
        self, default: T | Setting[T], doc: str, *, parse: Callable[[str], T] | None = None, shown: str = ""
    ) -> None:
        self.default, self.doc, self.shown = default, doc, shown
        self.parse: Callable[[str], T] = parse or (
            default.parse if isinstance(default, Setting) else PARSERS[type(default)]
        )
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name
        raw = os.environ.get(name)
        default = self.default.value if isinstance(self.default, Setting) else self.default
        self.value: T = default if raw is None else self.parse(raw)

    def __get__(self, instance: object, owner: type | None = None) -> T:
        return self.value


class Engine:
    """Runners, claims and leases (see "How it works")"""

    BATCHES_WORKERS = Setting(2, "django-q2 worker processes per cluster")
    BATCHES_RUNNERS: Setting[int] = Setting(BATCHES_WORKERS, "runners working at once across all clusters")
    BATCHES_RUNNER_SLICE = Setting(
        300.0, "seconds a runner claims before handing over (each hand-over drains its calls once)"
    )
    BATCHES_RUNNER_CAPACITY = Setting(500, "calls in flight per runner")
    BATCHES_LEASE_SECONDS = Setting(30.0, "a claim's lease, seconds; renewed every third of it")
    BATCHES_POLL_INTERVAL = Setting(0.5, "seconds between claim rounds when idle")
    BATCHES_Q_POLL = Setting(0.2, "seconds between django-q2's looks at its queue for a wake-up")
    BATCHES_MAX_INTERRUPTIONS = Setting(3, "interruptions before a row fails as `interrupted`")
    BATCHES_BACKOFF_BASE = Setting(1.0, "seconds: a row's retry waits up to this, doubling with each retry")
    BATCHES_BACKOFF_CAP = Setting(60.0, "seconds: the longest wait before a row's retry")
    # Tells this machine's dead processes from another machine's live ones (set it when host names are not unique).
    BATCHES_NODE_NAME = Setting(
        "",
        "names this machine in lease owners and heartbeats; one per machine or container: a `qcluster` refuses to "
        "start under a name another machine's live cluster holds",
        shown="host name",
    )
    BATCHES_LOG_LEVEL = Setting("INFO", "the level of the app's log (and the fake Dify's), written to stderr")


class Calls:
    """Calls to Dify (see "Speaking Dify as it really answers")"""

    BATCHES_HTTP_TRANSPORT = Setting("aiohttp", "`aiohttp` (httpx-aiohttp) or `httpx`")
    BATCHES_MAX_REQUEST_TIMEOUT = Setting(
        1200.0,
        "the largest workflow timeout allowed (Dify's own `APP_MAX_EXECUTION_TIME`); django-q2's task timeout is "
        "`BATCHES_RUNNER_SLICE` + twice this + 60 s (a call may first wait for the row's earlier run, then run)",
    )
    # Dify stops runs older than its APP_MAX_EXECUTION_TIME, and they then say `running` for ever.
    BATCHES_DIFY_MAX_EXECUTION_TIME = Setting(
        1200.0,
        "Dify's `APP_MAX_EXECUTION_TIME`: a run older than this that still says `running` was stopped by Dify, and "
        "is not waited for",
    )
    BATCHES_MAX_RESPONSE_BYTES = Setting(10 * MiB, "larger upstream answers are a `bad_response`")


class Outages:
    """When Dify is down, or a batch only fails (see "When Dify is down")"""

    BATCHES_CIRCUIT_FAILURES = Setting(
        5, "outage-class failures in a row that make a workflow's upstream circuit ask Dify (a health check)"
    )
    BATCHES_CIRCUIT_PROBE_MIN = Setting(2.0, "seconds before the first health check while the circuit is open")
    BATCHES_CIRCUIT_PROBE_MAX = Setting(60.0, "seconds between health checks at most (they double from the min)")
    BATCHES_CIRCUIT_PROBE_TIMEOUT = Setting(
        10.0,
        "seconds the circuit's health check (`GET /parameters`) waits for an answer (the workflow's timeout if "
        "shorter)",
    )
    BATCHES_OUTAGE_PAUSE_MINUTES = Setting(
        0.0, "pause a batch after this many minutes of upstream outage", shown="0 (never)"
    )
    BATCHES_PARTIAL_OUTAGE_ROWS = Setting(
        10,
        "more than this many distinct rows failing outage-class in a row while the health check answers pause the "
        "workflow's running batches (0: never)",
    )
    BATCHES_FAIL_FAST_ROWS = Setting(
        50,
        "a batch whose first this many finished rows all failed with one error type pauses with that reason (0: "
        "never); separate from a batch's own failure threshold",
    )


class Imports:
    """Import limits (see "Upload limits")"""

    BATCHES_MAX_UPLOAD_BYTES = Setting(100 * MiB, "import size limit")
    BATCHES_MAX_ROWS = Setting(1_000_000, "import row limit")
    BATCHES_MAX_CELL_BYTES = Setting(1 * MiB, "the largest imported value (UTF-8 bytes)")
    # Zip bombs are refused from the archive's directory, before inflating.
    BATCHES_MAX_XLSX_UNPACKED_BYTES = Setting(
        128 * MiB,
        "the most an XLSX file may declare unpacked (also at most 20× the upload limit); reading it takes at most "
        "about 5 s of CPU",
    )
    BATCHES_MAX_XLSX_SHARED_STRINGS = Setting(
        500_000, "shared strings an XLSX file may hold (each is kept in memory while its rows are read)"
    )
    BATCHES_MAX_XLSX_SHARED_CHARS = Setting(50_000_000, "characters an XLSX file's shared strings may hold in all")
    BATCHES_MAX_ZIP_BYTES = Setting(
        2 * GiB, "the largest ZIP import (the table inside it keeps `BATCHES_MAX_UPLOAD_BYTES`)"
    )
    BATCHES_MAX_ZIP_ENTRIES = Setting(10_000, "entries a ZIP import may hold")
    BATCHES_MAX_ZIP_UNPACKED_BYTES = Setting(4 * GiB, "what a ZIP import may unpack to")


class Files:
    """File inputs, and what the target Dify accepts of them (see "File inputs")"""

    BATCHES_FILES_DIR = Setting(
        DEFAULT_FILES_DIR,
        "where the files of ZIP imports wait for their upload (shared by every web and worker machine)",
        parse=_files_dir,
        shown="`data/files/` in the project",
    )
    BATCHES_FILES_KEEP_DAYS = Setting(
        7.0, "days after a batch finished (or was cancelled) that its files are kept, for reruns and retries"
    )
    BATCHES_FILES_UNSTARTED_DAYS = Setting(
        7.0, "days after its import that the files of a batch never started are removed"
    )
    BATCHES_UPLOAD_REUSE_HOURS = Setting(24.0, "an upload id older than this is not reused: the file is uploaded again")
    BATCHES_UPLOAD_RECHECK_MINUTES = Setting(
        60.0,
        "after a streamed call with uploaded files went silent (`timeout`), its uploads older than this are made "
        "again on the retry",
    )
    # Off by default: newer Dify looks an upload up by its uploader.
    BATCHES_UPLOAD_SHARED_USER = Setting(
        False,
        "every batch of a workflow calls Dify as one `user` (`workflow-<id>`), so uploads are reused across its "
        "batches; off: each batch is its own user and uploads its files again",
    )
    BATCHES_DIFY_DOCUMENT_EXTENSIONS = Setting(
        DIFY_DOCUMENT_EXTENSIONS,
        "extensions the server types as documents (comma list; with Unstructured add `doc,eml,msg,pptx,xml,epub`, "
        "and `ppt` with its API)",
        parse=_extensions,
        shown="Dify's default ETL list",
    )
    BATCHES_DIFY_FILE_SIZE_LIMIT_MB = Setting(15.0, "the server's upload limit for documents and other files (MB)")
    BATCHES_DIFY_IMAGE_SIZE_LIMIT_MB = Setting(10.0, "the server's upload limit for images (MB)")
    BATCHES_DIFY_AUDIO_SIZE_LIMIT_MB = Setting(50.0, "the server's upload limit for audio (MB)")
    BATCHES_DIFY_VIDEO_SIZE_LIMIT_MB = Setting(100.0, "the server's upload limit for video (MB)")
    BATCHES_DIFY_UPLOAD_EXTENSION_BLACKLIST: Setting[list[str]] = Setting(
        [], "the server's `UPLOAD_FILE_EXTENSION_BLACKLIST`: such files are refused at import", parse=_list
    )
    # Off, such URLs are refused at import, as Dify's SSRF proxy would refuse them row by row.
    BATCHES_DIFY_FETCHES_PRIVATE_URLS = Setting(
        False, "the server fetches URLs on private addresses (no SSRF proxy): such URLs are accepted at import"
    )


class Downloads:
    """Downloads and retention"""

    BATCHES_MAX_EXPORTS_PER_USER = Setting(
        2, "downloads (exports, comparisons) one user streams at once; one more answers 429"
    )
    BATCHES_EXPORT_SLOT_SECONDS = Setting(3600.0, "a download slot whose process died is forgotten after this")
    BATCHES_KEEP_DAYS = Setting(
        None,
        "the minute sweep deletes batches that ended more than this many days ago, with their rows, attempts and "
        "files (`prune_batches`)",
        parse=_days,
        shown="unset (never)",
    )


class Notifications:
    """Notifications, metrics and cost (see "Notifications, audit, metrics, cost")"""

    BATCHES_SITE_URL = Setting(
        "", "the site's address, for the links in emails and webhooks (empty: links are paths only)", parse=_site_url
    )
    BATCHES_NOTIFY_WAITING_MINUTES = Setting(
        15.0, "minutes a running batch waits for Dify (its workflow's circuit not closed) before staff are told"
    )
    BATCHES_NOTIFY_BACKOFF_BASE = Setting(30.0, "seconds before a failed notification is tried again, doubling")
    BATCHES_NOTIFY_BACKOFF_CAP = Setting(3600.0, "seconds between a notification's tries at most")
    BATCHES_NOTIFY_MAX_TRIES = Setting(30, "tries before a notification is given up (about a day)")
    BATCHES_NOTIFY_TIMEOUT = Setting(10.0, "seconds one webhook POST or SMTP exchange may take")
    BATCHES_PRICE_CURRENCY = Setting(
        "USD", "the currency of costs estimated from a workflow's price per 1,000 tokens (Dify names its own)"
    )
    BATCHES_METRICS_TOKEN = Setting(
        "", "`/metrics` answers 404 unless this is set, and 403 without `Authorization: Bearer <token>`"
    )
    BATCHES_METRICS_ALLOWED_IPS: Setting[list[str]] = Setting(
        [], "when set, `/metrics` answers only these addresses or CIDR ranges (a proxy's, behind one)", parse=_list
    )


class Security:
    """Security (see "Security")"""

    # Empty is fine for development; production should set its own, and keep it apart from SECRET_KEY.
    BATCHES_ENCRYPTION_KEY: Setting[list[str]] = Setting(
        [],
        "comma-separated Fernet keys, newest first, for the stored API keys; set it in production. Rotate: put a "
        "new key first, run `rotate_api_keys`, then drop the old one",
        parse=_list,
        shown="derived from `SECRET_KEY`",
    )
    BATCHES_ALLOWED_UPSTREAM_HOSTS: Setting[list[str]] = Setting(
        [],
        "comma-separated hosts a workflow's base URL may use: names, `*.example.com` for any host under it, CIDR "
        "ranges (`10.0.0.0/8`; listing a link-local range allows it)",
        parse=_list,
        shown="any but link-local",
    )


class BatchesSettings(Engine, Calls, Outages, Imports, Files, Downloads, Notifications, Security):
    """Every setting: its default on the class, and on an instance the Django settings' value when they define one."""

    if not TYPE_CHECKING:  # mypy keeps each setting's own type, and calls a misspelt name an error

        def __getattribute__(self, name: str) -> Any:
            value = super().__getattribute__(name)
            return getattr(django_settings, name, value) if name.startswith("BATCHES_") else value


settings = BatchesSettings()


def groups() -> list[tuple[str, list[Setting[Any]]]]:
    """Each group's title and settings, in the order they are declared."""
    return [
        (group.__doc__ or "", [item for item in vars(group).values() if isinstance(item, Setting)])
        for group in BatchesSettings.__bases__
    ]


def shown_default(setting: Setting[Any]) -> str:
    """The default as README's table shows it (whatever the environment says)."""
    default = setting.default
    if setting.shown:
        return setting.shown
    if isinstance(default, Setting):
        return f"= `{default.name}`"
    if isinstance(default, bool):
        return "on" if default else "off"
    if isinstance(default, float):
        return f"{default:g}"
    if isinstance(default, int) and setting.name.endswith("_BYTES"):
        return f"{default // GiB} GiB" if default % GiB == 0 else f"{default // MiB} MiB"
    if isinstance(default, int):
        return f"{default:,}"
    return f"`{default}`" if default else "empty"


def readme_table() -> str:
    """README's tables of these settings, one per group, between its two markers."""
    lines = [TABLE_START]
    for title, items in groups():
        lines += ["", f"**{title}**", "", "| variable | default | meaning |", "|---|---|---|"]
        lines += [f"| `{item.name}` | {shown_default(item)} | {item.doc} |" for item in items]
    return "\n".join([*lines, "", TABLE_END])
