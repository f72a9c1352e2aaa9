"""A BatchTask, its Executions (one a row), their Attempts (one a call), BatchCount (the counts kept per batch)
and BatchFile (a file of a ZIP import, uploaded once): design.md's vocabulary."""

from __future__ import annotations

import json
from collections.abc import Collection
from datetime import datetime, timedelta

from django.conf import settings
from django.core.validators import (
    MaxValueValidator,
    MinValueValidator,
)
from django.db import connection, models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from batches.choices import (
    ENDED,
    BatchStatus,
    ErrorType,
    ExecutionStatus,
    Trigger,
)
from batches.db.fields import OrderedJSONField
from batches.models.workflows import Workflow

# What claims and pages filter and sort on (Execution.refresh_statistics).
PLANNED_COLUMNS = ("batch", "status", "index", "not_before", "lease_expires_at", "error_type", "finished_at")


class BatchTaskQuerySet(models.QuerySet["BatchTask"]):
    def running(self) -> BatchTaskQuerySet:
        return self.filter(status=BatchStatus.RUNNING)

    def shown(self) -> BatchTaskQuerySet:
        """Batches not being pruned: a prune killed midway must not leave a half-deleted batch in sight."""
        return self.filter(pruning_since__isnull=True)

    def with_work(self) -> BatchTaskQuerySet:
        return self.filter(models.Exists(Execution.objects.filter(batch=models.OuterRef("pk")).unfinished()))

    def prunable(self, *, before: datetime, statuses: Collection[str] = ENDED) -> BatchTaskQuerySet:
        """Ended batches (in `statuses`) that ended before `before` and have no row to run, and batches whose prune
        was started and not finished."""
        wanted = [status for status in statuses if status in ENDED]
        unfinished = Execution.objects.filter(batch=models.OuterRef("pk")).unfinished()
        ended_before = Q(finished_at__lt=before) | Q(finished_at__isnull=True, created_at__lt=before)
        old = self.filter(ended_before, status__in=wanted).exclude(models.Exists(unfinished))
        return (old | self.filter(pruning_since__isnull=False)).order_by("pk")


class BatchTask(models.Model):
    name = models.CharField(_("name"), max_length=200)
    workflow = models.ForeignKey(Workflow, on_delete=models.PROTECT, related_name="batches")
    source_filename = models.CharField(_("source file"), max_length=255, blank=True)
    status = models.CharField(_("status"), max_length=20, choices=BatchStatus, default=BatchStatus.PENDING)
    status_reason = models.CharField(_("reason"), max_length=500, blank=True)
    concurrency = models.PositiveIntegerField(
        _("concurrency"), default=10, validators=[MinValueValidator(1), MaxValueValidator(10_000)]
    )
    max_retries = models.PositiveIntegerField(_("max auto retries"), default=2)
    config = models.JSONField(_("workflow settings snapshot"), default=dict)
    columns = OrderedJSONField(_("input columns"), default=list, blank=True)
    extra_columns = OrderedJSONField(_("ignored columns"), default=list, blank=True)  # kept in Execution.extra
    total = models.PositiveIntegerField(_("rows"), default=0)
    failure_threshold = models.PositiveSmallIntegerField(
        _("pause above failure %"),
        null=True,
        blank=True,
        validators=[MaxValueValidator(100)],
        help_text=_("Pause the batch when more than this percentage of finished rows failed (empty: never)."),
    )
    failure_threshold_min_rows = models.PositiveIntegerField(
        _("... after at least this many finished rows"), default=20
    )
    # Whether the first BATCHES_FAIL_FAST_ROWS finished rows were looked at (services/fail_fast.py): once only, so
    # a batch resumed after that pause is not paused again for the same rows.
    first_rows_checked = models.BooleanField(default=False, editable=False)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    started_at = models.DateTimeField(_("started"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)
    # Time spent running, kept by every status change (services/transitions.py): rates count only that time, not
    # the time a batch waited paused, or ended before staff retried some of its rows.
    run_time = models.DurationField(_("running time"), default=timedelta(0))
    running_since = models.DateTimeField(_("running since"), null=True, blank=True)
    # How the batch had ended before a retry reopened it ("finished" or "cancelled"), and how many rows that retry
    # sent back: "cancelled, then 27 rows retried" stays visible once the batch finishes again.
    reopened_from = models.CharField(_("reopened from"), max_length=20, choices=BatchStatus, blank=True)
    reopened_rows = models.PositiveIntegerField(_("rows retried after it ended"), default=0)
    # An ended batch's cost and latency, kept once read (selectors_cost): a year of history is not read again for
    # `batch_status`. It holds the `finished_at` it was read at, so a batch that ran again is read anew.
    cost_summary = models.JSONField(_("cost and latency"), null=True, blank=True, editable=False)
    # The batch whose rows this one runs again (`rerun_batch`, "Run again"); its reruns are `source.reruns`.
    source = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="reruns",
        verbose_name=_("run again from"),
    )

    # Set when a prune starts deleting the batch's rows (services/retention.py): from then on pages hide it.
    pruning_since = models.DateTimeField(null=True, blank=True, editable=False)

    objects = BatchTaskQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("batch")
        verbose_name_plural = _("batches")
        indexes = [models.Index(fields=["status"], name="batch_status_idx")]
        permissions = [("control_batchtask", "Can start, pause, resume and cancel batches")]

    def __str__(self) -> str:
        return f"#{self.pk} {self.name}"


class ExecutionQuerySet(models.QuerySet["Execution"]):
    def pending(self) -> ExecutionQuerySet:
        return self.filter(status=ExecutionStatus.PENDING)

    def running(self) -> ExecutionQuerySet:
        return self.filter(status=ExecutionStatus.RUNNING)

    def failed(self) -> ExecutionQuerySet:
        return self.filter(status=ExecutionStatus.FAILED)

    def unfinished(self) -> ExecutionQuerySet:
        return self.filter(status__in=[ExecutionStatus.PENDING, ExecutionStatus.RUNNING])

    def ended(self) -> ExecutionQuerySet:
        """Rows that finished with a result: succeeded or failed (not cancelled)."""
        return self.filter(status__in=[ExecutionStatus.SUCCEEDED, ExecutionStatus.FAILED])

    def due(self, now: datetime) -> ExecutionQuerySet:
        """Pending rows whose backoff (if any) has passed."""
        return self.filter(Q(not_before__isnull=True) | Q(not_before__lte=now), status=ExecutionStatus.PENDING)

    def stale(self, now: datetime, dead_owners: Collection[str] = ()) -> ExecutionQuerySet:
        """Running rows whose lease expired (their worker is gone or cut off), or whose holder is known dead."""
        expired = Q(lease_expires_at__lt=now)
        if dead_owners:
            expired |= Q(lease_owner__in=list(dead_owners))
        return self.filter(expired, status=ExecutionStatus.RUNNING)


class Execution(models.Model):
    # No index of its own: the (batch, index) unique constraint serves every lookup by batch, and one index fewer
    # is one write fewer for every row a claim, result, cancel or retry changes.
    batch = models.ForeignKey(BatchTask, on_delete=models.CASCADE, related_name="executions", db_index=False)
    index = models.PositiveIntegerField(_("row"))
    inputs = OrderedJSONField(_("inputs"), default=dict)
    extra = OrderedJSONField(_("ignored columns"), default=dict, blank=True)  # the file's, never sent to Dify
    status = models.CharField(_("status"), max_length=20, choices=ExecutionStatus, default=ExecutionStatus.PENDING)
    outputs = OrderedJSONField(_("outputs"), null=True, blank=True)
    error_type = models.CharField(_("error type"), max_length=30, choices=ErrorType, blank=True)
    error = models.TextField(_("error"), blank=True)
    http_status = models.PositiveSmallIntegerField(_("last HTTP status"), null=True, blank=True)
    attempt_count = models.PositiveIntegerField(_("attempts"), default=0)
    auto_retries = models.PositiveIntegerField(_("auto retries used"), default=0)
    interruptions = models.PositiveIntegerField(_("interruptions"), default=0)
    manual_retries = models.PositiveIntegerField(_("manual retries"), default=0)
    next_trigger = models.CharField(max_length=10, choices=Trigger, default=Trigger.AUTO)
    not_before = models.DateTimeField(_("not before"), null=True, blank=True)
    workflow_run_id = models.CharField(_("workflow run id"), max_length=64, blank=True)
    task_id = models.CharField(_("task / message id"), max_length=64, blank=True)
    total_tokens = models.PositiveIntegerField(_("tokens"), default=0)
    elapsed = models.FloatField(_("elapsed (s)"), null=True, blank=True)
    # Cost and latency (issue 31): our latency of the successful try, and Dify's price where it reports one.
    latency = models.FloatField(_("latency (s)"), null=True, blank=True)
    price = models.DecimalField(_("price"), max_digits=17, decimal_places=10, null=True, blank=True)
    currency = models.CharField(_("currency"), max_length=10, blank=True)
    lease_owner = models.CharField(max_length=100, blank=True)
    lease_token = models.CharField(max_length=32, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(_("started"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)

    objects = ExecutionQuerySet.as_manager()

    class Meta:
        ordering = ["batch", "index"]
        verbose_name = _("execution")
        constraints = [models.UniqueConstraint(fields=["batch", "index"], name="execution_batch_index_uniq")]
        indexes = [
            models.Index(fields=["batch", "status", "index"], name="execution_claim_idx"),
            models.Index(fields=["batch", "status", "error_type"], name="execution_errors_idx"),
            models.Index(fields=["status", "lease_expires_at"], name="execution_lease_idx"),
            models.Index(fields=["batch", "finished_at"], name="execution_finished_idx"),
            # The admin finds a row by its upstream ids without reading the history (issue 30). Partial: a row
            # without ids (imported, retried, cancelled before its call) is not written to them.
            models.Index(fields=["workflow_run_id"], name="execution_run_id_idx", condition=~Q(workflow_run_id="")),
            models.Index(fields=["task_id"], name="execution_task_id_idx", condition=~Q(task_id="")),
        ]
        permissions = [("retry_execution", "Can retry executions")]

    def __str__(self) -> str:
        return f"#{self.batch_id} row {self.index + 1}"  # rows are named from 1, as in the file; `index` is 0-based

    @classmethod
    def refresh_statistics(cls) -> None:
        """Refresh PostgreSQL's statistics on executions after a bulk change (an import, a mass retry, a rerun).

        Autovacuum analyzes only after a tenth of the table changed. Until then the planner believes a new batch has
        no pending rows, and every claim sorts all of them: 8 ms instead of 0.5 ms at 20,000 rows, ten times a
        second. Only the columns claims and pages filter and sort on: the JSON columns would only make it slower.
        """
        if connection.vendor == "postgresql":
            quote = connection.ops.quote_name
            planned = [field for field in cls._meta.concrete_fields if field.name in PLANNED_COLUMNS]
            columns = ", ".join(quote(field.column) for field in planned)
            with connection.cursor() as cursor:
                cursor.execute(f"ANALYZE {quote(cls._meta.db_table)} ({columns})")


class BatchCount(models.Model):
    """A batch's rows per state and its tokens, kept by database triggers on the executions table in the same
    statement that changes the rows (migration 0016_history_counts), so pages that span batches never count rows.

    A batch has several of these, one per shard: each database connection adds to its own (PostgreSQL: the
    backend's pid modulo SHARDS), so concurrent writers never wait on one row. The counts are the sums over shards.
    No foreign key: the triggers write here while Django deletes a batch's rows, and a batch's delete removes these.
    """

    SHARDS = 64

    batch_id = models.BigIntegerField()
    shard = models.PositiveSmallIntegerField(default=0)
    pending = models.BigIntegerField(default=0)
    running = models.BigIntegerField(default=0)
    succeeded = models.BigIntegerField(default=0)
    failed = models.BigIntegerField(default=0)
    cancelled = models.BigIntegerField(default=0)
    tokens = models.BigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["batch_id", "shard"], name="batchcount_batch_shard_uniq")]

    def __str__(self) -> str:
        return f"counts of {self.batch_id} ({self.shard})"


class Attempt(models.Model):
    class Outcome(models.TextChoices):
        SUCCEEDED = "succeeded", _("Succeeded")
        FAILED = "failed", _("Failed")
        INTERRUPTED = "interrupted", _("Interrupted")
        CANCELLED = "cancelled", _("Cancelled")

    execution = models.ForeignKey(Execution, on_delete=models.CASCADE, related_name="attempts")
    number = models.PositiveIntegerField(_("number"))
    trigger = models.CharField(_("trigger"), max_length=10, choices=Trigger, default=Trigger.AUTO)
    started_at = models.DateTimeField(_("started"), default=timezone.now)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)
    outcome = models.CharField(_("outcome"), max_length=20, choices=Outcome)
    upstream_status = models.CharField(_("upstream status"), max_length=30, blank=True)
    error_type = models.CharField(_("error type"), max_length=30, choices=ErrorType, blank=True)
    error = models.TextField(_("error"), blank=True)
    http_status = models.PositiveSmallIntegerField(_("HTTP status"), null=True, blank=True)
    workflow_run_id = models.CharField(_("workflow run id"), max_length=64, blank=True)
    latency = models.FloatField(_("latency (s)"), null=True, blank=True)
    total_tokens = models.PositiveIntegerField(_("tokens"), default=0)
    during_outage = models.BooleanField(
        _("during an upstream outage"), default=False, help_text=_("This try cost no automatic retry.")
    )
    # The inputs this attempt was sent when staff later edited the row's inputs; empty: the row's current inputs.
    inputs = OrderedJSONField(_("inputs sent"), null=True, blank=True)

    class Meta:
        ordering = ["execution", "number"]
        verbose_name = _("attempt")

    def __str__(self) -> str:
        return f"{self.execution} try {self.number}"

    @property
    def inputs_json(self) -> str:
        return json.dumps(self.inputs, ensure_ascii=False)


class BatchFile(models.Model):
    """A file a batch's rows name (imported in a ZIP with the table), uploaded to Dify once and reused.

    The bytes live on disk under BATCHES_FILES_DIR (`stored`, relative to it), never in the database.
    """

    batch = models.ForeignKey(BatchTask, on_delete=models.CASCADE, related_name="files")
    name = models.CharField(_("name"), max_length=1000)  # the path inside the ZIP, as the table names it
    size = models.PositiveBigIntegerField(_("size"))
    stored = models.CharField(max_length=300, blank=True)  # "" once removed from disk
    upload_id = models.CharField(_("upload id"), max_length=64, blank=True)
    uploaded_at = models.DateTimeField(_("uploaded"), null=True, blank=True)
    uploads = models.PositiveIntegerField(_("uploads"), default=0)
    # The `user` it was uploaded under: newer Dify lets only that end user's runs name the upload.
    upload_user = models.CharField(max_length=100, blank=True)
    # Who is uploading it now, until when: one process uploads while the others' rows wait for its id.
    upload_owner = models.CharField(max_length=100, blank=True)
    upload_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["batch", "name"]
        verbose_name = _("batch file")
        constraints = [models.UniqueConstraint(fields=["batch", "name"], name="batchfile_batch_name_uniq")]

    def __str__(self) -> str:
        return self.name
