"""The workflows' forms: the admin's and the workflows page's (a write-only API key, and a new base URL needs
the key again)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.utils.translation import gettext_lazy as _

from batches.models import Workflow
from batches.services.workflows import KEY_REQUIRED, key_required


class EmailListField(forms.CharField):
    """Addresses separated by commas, spaces or lines, kept as a JSON list."""

    def prepare_value(self, value: Any) -> Any:
        return ", ".join(value) if isinstance(value, list) else value

    def to_python(self, value: Any) -> list[str]:  # type: ignore[override]
        addresses = str(value or "").replace(",", " ").split()
        for address in addresses:
            validate_email(address)
        return addresses


class WorkflowAdminForm(forms.ModelForm):
    """The API key is write-only: never rendered, required on create, kept when left blank on change."""

    webhook_url = forms.URLField(label=_("webhook URL"), max_length=500, required=False, assume_scheme="https")
    notify_emails = EmailListField(
        label=_("notify by email"),
        required=False,
        help_text=_("Told when a batch finishes, pauses, is cancelled or waits for Dify (with the batch's creator)."),
    )

    base_url = forms.URLField(
        label=_("base URL"), max_length=500, assume_scheme="https", help_text=_("e.g. https://api.dify.ai/v1")
    )
    api_key = forms.CharField(
        label=_("API key"),
        max_length=500,
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False),
        help_text=_("Write-only. Leave blank to keep the stored key."),
    )

    class Meta:
        model = Workflow
        fields = [
            "name",
            "mode",
            "base_url",
            "api_key",
            "response_mode",
            "timeout",
            "rpm_limit",
            "concurrency",
            "retry_workflow_failed",
            "notify_emails",
            "webhook_url",
            "price_per_1k_tokens",
        ]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The stored key never reaches the form's initial data, so it cannot be rendered or diffed.
        self.initial["api_key"] = ""
        self.fields["api_key"].required = self.instance.pk is None
        if self.instance.pk is None:
            self.fields["api_key"].help_text = _("Write-only: it is never shown again.")
        # A whole number of seconds reads better than "600.0".
        self.fields["timeout"].widget.attrs["step"] = "any"
        if isinstance(self.initial.get("timeout"), float) and self.initial["timeout"].is_integer():
            self.initial["timeout"] = int(self.initial["timeout"])

    def clean_api_key(self) -> str:
        entered = self.cleaned_data["api_key"]
        # base_url comes before api_key in the fields, so it is cleaned already (absent if invalid).
        if key_required(self.instance, base_url=self.cleaned_data.get("base_url"), api_key=entered):
            raise ValidationError(KEY_REQUIRED, code="key_required")
        return entered or self.instance.api_key


class WorkflowForm(WorkflowAdminForm):
    """The admin's form, rule included (`services.workflows.key_required`): moving a workflow to another base URL
    requires its key to be entered, or anyone allowed to edit a workflow could have the stored key sent to them."""
