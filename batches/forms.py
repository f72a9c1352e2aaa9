"""Forms for the admin and the staff pages."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from batches.models import BatchStatus, Workflow


class WorkflowAdminForm(forms.ModelForm):
    """The API key is write-only: never rendered, required on create, kept when left blank on change."""

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
        ]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The stored key never reaches the form's initial data, so it cannot be rendered or diffed.
        self.initial["api_key"] = ""
        self.fields["api_key"].required = self.instance.pk is None

    def clean_api_key(self) -> str:
        return self.cleaned_data["api_key"] or self.instance.api_key


class BatchFilterForm(forms.Form):
    status = forms.ChoiceField(label=_("Status"), choices=[("", _("All"))] + list(BatchStatus.choices), required=False)
