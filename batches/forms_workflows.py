"""The workflows page's form: the admin's, plus the rule that a new base URL needs the API key again."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from batches.forms import WorkflowAdminForm


class WorkflowForm(WorkflowAdminForm):
    """Write-only API key as in the admin; moving a workflow to another base URL requires its key to be entered.

    Without the rule, anyone allowed to edit a workflow could point it at a server of theirs and receive the stored
    key with the next call. (Issue 19 makes this rule shared by the admin and add_workflow; until it is on main it
    lives here, for the lead to unify.)
    """

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        url_changed = self.instance.pk is not None and "base_url" in self.changed_data
        if url_changed and not self.data.get("api_key", "").strip():
            message = _("The base URL changed: enter the API key again (the stored key is not sent to a new address).")
            self.add_error("api_key", forms.ValidationError(message, code="key_required"))
        return data
