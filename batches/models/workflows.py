"""A Workflow (a Dify app, its key and settings) and its WorkflowThrottle (rate limit and upstream circuit)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.core.validators import (
    MaxValueValidator,
    MinValueValidator,
    RegexValidator,
    URLValidator,
    validate_email,
)
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from batches.choices import (
    CircuitState,
    Mode,
    ResponseMode,
)
from batches.conf import settings
from batches.db.fields import EncryptedCharField, OrderedJSONField
from batches.dify import hosts


class Workflow(models.Model):
    name = models.CharField(_("name"), max_length=200, unique=True)
    mode = models.CharField(_("mode"), max_length=20, choices=Mode, default=Mode.WORKFLOW)
    base_url = models.URLField(
        _("base URL"),
        max_length=500,
        validators=[URLValidator(schemes=["http", "https"])],
        help_text=_("e.g. https://api.dify.ai/v1"),
    )
    api_key = EncryptedCharField(
        _("API key"),
        max_length=500,
        validators=[RegexValidator(r"\A[!-~]+\Z", _("Printable ASCII characters without spaces."))],
    )
    response_mode = models.CharField(
        _("response mode"), max_length=20, choices=ResponseMode, default=ResponseMode.STREAMING
    )
    timeout = models.FloatField(_("request timeout (s)"), default=600, validators=[MinValueValidator(1)])
    rpm_limit = models.PositiveIntegerField(_("requests per minute"), null=True, blank=True)
    concurrency = models.PositiveIntegerField(
        _("default concurrency"), default=10, validators=[MinValueValidator(1), MaxValueValidator(10_000)]
    )
    retry_workflow_failed = models.BooleanField(_("auto-retry failed runs"), default=True)
    # Notifications (services/notify.py): who is told when a batch of this workflow ends, pauses or waits.
    notify_emails = models.JSONField(_("notify by email"), default=list, blank=True)
    webhook_url = models.URLField(_("webhook URL"), max_length=500, blank=True)
    webhook_secret = EncryptedCharField(_("webhook secret"), max_length=500, blank=True)
    price_per_1k_tokens = models.DecimalField(
        _("price per 1,000 tokens"), max_digits=12, decimal_places=6, null=True, blank=True
    )
    # The app's input variables as last read with the key (GET /parameters) when the workflow was saved: the CSV
    # template is built from them, so that no page sends the key anywhere on a GET.
    input_variables = models.JSONField(_("input variables"), null=True, blank=True, editable=False)
    input_variables_at = models.DateTimeField(_("input variables read"), null=True, blank=True, editable=False)
    # The New batch page's last column mapping (header → variable, "" ignored), its next first guess.
    column_map = OrderedJSONField(_("column mapping"), default=dict, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("workflow")

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        errors = {**self._timeout_errors(), **self._host_errors(), **self._webhook_errors(), **self._email_errors()}
        if errors:
            raise ValidationError(errors)

    def _timeout_errors(self) -> dict[str, str]:
        # A runner slice must fit in django-q2's task timeout, which is sized from this limit.
        limit = settings.BATCHES_MAX_REQUEST_TIMEOUT
        if self.timeout and self.timeout > limit:
            return {"timeout": _("at most %(limit)s seconds") % {"limit": limit}}
        return {}

    def _host_errors(self) -> dict[str, str]:
        if not self.base_url:
            return {}
        problem = hosts.save_problem(self.base_url)
        if problem is not None:
            return {"base_url": problem}
        allowed = settings.BATCHES_ALLOWED_UPSTREAM_HOSTS
        if hosts.host_allowed(self.base_url, allowed):
            return {}
        return {"base_url": _("This host is not allowed; allowed: %(hosts)s.") % {"hosts": ", ".join(allowed)}}

    def _email_errors(self) -> dict[str, str]:
        bad = [address for address in self.notify_emails or [] if not _is_email(address)]
        return {"notify_emails": _("Not an email address: %(bad)s") % {"bad": ", ".join(map(str, bad))}} if bad else {}

    def _webhook_errors(self) -> dict[str, str]:
        """The base URL's host rules (a secret-signed POST must not reach a metadata service); a query is fine."""
        if not self.webhook_url:
            return {}
        parts = urlsplit(self.webhook_url)
        problem: Any = None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            problem = _("Use an http:// or https:// URL with a host.")
        elif "@" in parts.netloc:
            problem = _("A webhook URL cannot hold a user name or password.")
        elif not hosts.host_allowed(self.webhook_url, settings.BATCHES_ALLOWED_UPSTREAM_HOSTS):
            problem = _("This host is not allowed.")
        else:
            problem = hosts.address_problem(parts.hostname)
        return {"webhook_url": problem} if problem else {}

    def snapshot(self) -> dict[str, Any]:
        """The settings a batch keeps, so recovery and retries use what it started with (never the API key)."""
        return {
            "mode": self.mode,
            "base_url": self.base_url,
            "response_mode": self.response_mode,
            "timeout": self.timeout,
            "rpm_limit": self.rpm_limit,
            "retry_workflow_failed": self.retry_workflow_failed,
        }


def _is_email(address: object) -> bool:
    try:
        validate_email(str(address))
    except ValidationError:
        return False
    return True


class WorkflowThrottle(models.Model):
    """What all processes share about one workflow's upstream: an rpm token bucket, an AIMD limit, and the
    upstream circuit (see services/throttle.py and services/circuit.py)."""

    workflow = models.OneToOneField(Workflow, on_delete=models.CASCADE, primary_key=True, related_name="throttle")
    tokens = models.FloatField(default=0)
    refilled_at = models.DateTimeField(default=timezone.now)
    # Calls in flight allowed after 429s; None until the first one. Halved on 429s, grows back with successes.
    concurrency_limit = models.FloatField(null=True, blank=True)
    ceiling = models.FloatField(null=True, blank=True)  # calls in flight when the last 429s came: probe slowly near it
    decreased_at = models.DateTimeField(null=True, blank=True)
    circuit = models.CharField(max_length=10, choices=CircuitState, default=CircuitState.CLOSED)
    circuit_since = models.DateTimeField(null=True, blank=True)  # when the upstream was last seen down
    outage_streak = models.PositiveIntegerField(default=0)  # outage-class failures in a row, no answer between
    streak_since = models.DateTimeField(null=True, blank=True)  # when the streak's first failing call was sent
    last_error = models.CharField(max_length=300, blank=True)
    next_probe_at = models.DateTimeField(null=True, blank=True)
    probe_backoff = models.FloatField(default=0)  # seconds before the next probe; doubles on each failed one
    probe_expires_at = models.DateTimeField(null=True, blank=True)  # the health check's lease, renewed by its holder
    probe_owner = models.CharField(max_length=200, blank=True)  # who is asking Dify now (one at a time)
    probe_answer = models.CharField(max_length=300, blank=True)  # what the last health check heard
    probe_answered_at = models.DateTimeField(null=True, blank=True)
    # The streak's length when the last health check found Dify up: the next check comes a threshold later.
    checked_streak = models.PositiveIntegerField(default=0)
    partial_since = models.DateTimeField(
        null=True, blank=True
    )  # a partial outage paused the batches: calls sent before

    def __str__(self) -> str:
        return f"throttle of {self.workflow_id}"
