"""What the fake can be told: latency, faults, limits and the app's variables, from the command line or
POST /_fake/config. Imports no web framework."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

TRANSIENT_FAULTS = ("server_error", "bad_gateway", "rate_limit", "reset", "cut")
FAULT_TYPES = (
    *TRANSIENT_FAULTS,
    *("too_many", "hang", "bad_json", "workflow_failed", "invalid_param", "app_unavailable", "auth", "paused"),
)
# File variables (--variables doc:Doc:file): what /parameters declares for them (fakedify/files.py checks them).
FILE_KINDS = frozenset({"file", "file-list"})
ALL_TYPES = ["document", "image", "audio", "video", "custom"]
METHODS = ["local_file", "remote_url"]
LIVE_OPTIONS = (
    *("latency_ms", "fail_rate", "faults", "rpm", "max_active", "seed", "ping_interval"),
    *("newer_dify", "etl", "upload_blacklist", "refusal_silence", "size_limits", "outage"),
)
ETLS = ("default", "unstructured")
# What every /v1 endpoint answers while the whole Dify is down (`outage`). The rates of `faults` are drawn for
# each run call, and for GET /parameters where the fault is the server's (fakedify/faults.py SERVER_FAULTS).
OUTAGE_FAULTS = ("bad_gateway", "server_error", "hang", "reset")


@dataclass
class FakeOptions:
    latency_ms: float = 0.0
    fail_rate: float = 0.0
    faults: dict[str, float] = field(default_factory=dict)
    rpm: int | None = None
    max_active: int | None = None
    seed: int | None = None
    variables: list[dict[str, Any]] = field(default_factory=list)
    ping_interval: float = 10.0
    # Files (fakedify/files.py, file_checks.py): upload ids per end user as in Dify after 1.13; the server's ETL
    # (which extensions are documents); its UPLOAD_FILE_EXTENSION_BLACKLIST; how long a stream stays silent after
    # its one ping when Dify refuses its files (Dify: 300 s, until its queue gives up).
    newer_dify: bool = False
    etl: str = "default"
    upload_blacklist: list[str] = field(default_factory=list)
    refusal_silence: float = 300.0
    size_limits: bool = True  # Dify's default upload limits per kind (off: bench/upload_memory.py's 200 MB file)
    outage: str | None = None

    def fault_table(self) -> list[tuple[str, float]]:
        """(fault, cumulative probability) for one draw per call; fail_rate is spread over the transient faults."""
        rates = {name: self.fail_rate / len(TRANSIENT_FAULTS) for name in TRANSIENT_FAULTS if self.fail_rate}
        for name, rate in self.faults.items():
            rates[name] = rates.get(name, 0.0) + rate
        table, total = [], 0.0
        for name, rate in rates.items():
            if rate > 0:
                total += rate
                table.append((name, total))
        if total > 1.0 + 1e-9:
            raise ValueError(f"fault rates add up to {total:g}, more than 1")
        return table

    def as_dict(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in LIVE_OPTIONS}

    def changed(self, changes: dict[str, Any]) -> FakeOptions:
        """A copy with `changes` (POST /_fake/config) applied; ValueError/TypeError names the first bad one."""
        values = {}
        for name, value in changes.items():
            if name not in LIVE_OPTIONS:
                raise ValueError(f"unknown option {name!r}")
            values[name] = _option_value(name, value)
        options = replace(self, **values)
        options.fault_table()
        return options


def parse_faults(text: str) -> dict[str, float]:
    """`server_error=0.05,reset=0.02` → {"server_error": 0.05, "reset": 0.02}."""
    faults: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, rate = item.partition("=")
        if not sep or name.strip() not in FAULT_TYPES:
            raise ValueError(f"bad fault {item!r}: use TYPE=RATE with TYPE one of {', '.join(FAULT_TYPES)}")
        faults[name.strip()] = _rate(rate, name)
    return faults


def parse_variables(text: str) -> list[dict[str, Any]]:
    """`text:Text:required,lang:Language` → user_input_form items (a 4th part may name the item type)."""
    form = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        parts = item.split(":")
        variable, label = parts[0], (parts[1] if len(parts) > 1 and parts[1] else parts[0])
        flags = parts[2:]
        kind = next((flag for flag in flags if flag and flag != "required"), "text-input")
        spec = {"label": label, "variable": variable, "required": "required" in flags, "max_length": 256, "default": ""}
        if kind in FILE_KINDS:
            spec.update(file_spec(kind))
        form.append({kind: spec})
    return form


def file_spec(kind: str) -> dict[str, Any]:
    """What Dify's /parameters declares for a file variable (everything allowed; tests narrow it)."""
    spec: dict[str, Any] = {"allowed_file_types": ALL_TYPES, "allowed_file_extensions": []}
    spec["allowed_file_upload_methods"] = METHODS
    if kind == "file-list":
        spec["max_length"] = 5
    return spec


def parse_blacklist(value: Any) -> list[str]:
    """`exe, .BAT` (or a list) → ["exe", "bat"]: extensions as Dify compares them."""
    items = value.split(",") if isinstance(value, str) else list(value or [])
    return [str(item).strip().lower().lstrip(".") for item in items if str(item).strip()]


def _rate(value: Any, name: str) -> float:
    rate = float(value)
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"rate of {name} must be between 0 and 1")
    return rate


def _option_value(name: str, value: Any) -> Any:
    if name in ("newer_dify", "size_limits"):
        return bool(value)
    if name == "etl":
        if value not in ETLS:
            raise ValueError(f"etl must be one of {', '.join(ETLS)}")
        return value
    if name == "upload_blacklist":
        return parse_blacklist(value)
    if name == "faults":
        faults = parse_faults(value) if isinstance(value, str) else dict(value or {})
        for fault, rate in faults.items():
            if fault not in FAULT_TYPES:
                raise ValueError(f"unknown fault {fault!r}")
            faults[fault] = _rate(rate, fault)
        return faults
    if name == "outage":
        if value not in (None, "", *OUTAGE_FAULTS):
            raise ValueError(f"outage must be one of {', '.join(OUTAGE_FAULTS)}, or null")
        return value or None
    if name in ("rpm", "max_active", "seed"):
        return None if value is None else int(value)
    if name == "fail_rate":
        return _rate(value, name)
    return max(0.0, float(value))
