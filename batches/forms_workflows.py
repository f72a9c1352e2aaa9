"""The workflows page's form: the admin's (a write-only API key, and a new base URL needs the key again)."""

from __future__ import annotations

from batches.forms import WorkflowAdminForm


class WorkflowForm(WorkflowAdminForm):
    """The admin's form, rule included (`services.workflows.key_required`): moving a workflow to another base URL
    requires its key to be entered, or anyone allowed to edit a workflow could have the stored key sent to them."""
