"""The app's twelve models, one module per concern; Django finds them here.

- workflows: Workflow (a Dify app, its key and settings), WorkflowThrottle (its rate limit and upstream circuit).
- batches: BatchTask, Execution, Attempt (design.md's vocabulary), BatchCount (counts kept per batch), BatchFile.
- slots: RunnerSlot, ClusterHeartbeat, ExportSlot (what processes share about themselves).
- ops: Notification (the outbox) and AuditEntry (the audit log).
"""

from batches.models.batches import Attempt, BatchCount, BatchFile, BatchTask, Execution
from batches.models.ops import AuditEntry, Notification
from batches.models.slots import ClusterHeartbeat, ExportSlot, RunnerSlot
from batches.models.workflows import Workflow, WorkflowThrottle

__all__ = [
    "Attempt",
    "AuditEntry",
    "BatchCount",
    "BatchFile",
    "BatchTask",
    "ClusterHeartbeat",
    "ExportSlot",
    "Execution",
    "Notification",
    "RunnerSlot",
    "Workflow",
    "WorkflowThrottle",
]
