"""Forms for the admin and the staff pages."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.core.validators import validate_email
from django.utils.translation import gettext_lazy as _

from batches import bidi, importers, strictjson
from batches.inputs import InputError
from batches.models import BatchStatus, ErrorType, Execution, Workflow
from batches.services.lifecycle import ImportOptions, typed_inputs
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


class BatchFilterForm(forms.Form):
    status = forms.ChoiceField(label=_("Status"), choices=[("", _("All"))] + list(BatchStatus.choices), required=False)


class UploadForm(forms.Form):
    workflow = forms.ModelChoiceField(label=_("Workflow"), queryset=Workflow.objects.all(), empty_label=None)
    file = forms.FileField(
        label=_("File"),
        help_text=_(
            "CSV, XLSX or JSONL. The first row (or the keys) name the app's input variables. "
            "For file inputs: a ZIP holding the table and the files its cells name by path."
        ),
    )

    def clean_file(self) -> UploadedFile:
        uploaded = self.cleaned_data["file"]
        suffix = Path(uploaded.name or "").suffix.lower()
        if importers.EXTENSIONS.get(suffix) is None and suffix != ".zip":
            raise forms.ValidationError(_("Unsupported file type: use CSV, XLSX, JSONL or ZIP."), code="file_type")
        # A ZIP holds the table and the files its cells name (issue 15): its own, larger limit.
        most = settings.BATCHES_MAX_ZIP_BYTES if suffix == ".zip" else settings.BATCHES_MAX_UPLOAD_BYTES
        if uploaded.size > most:
            limit = most // (1024 * 1024)
            raise forms.ValidationError(_("The file is over the %(limit)d MB limit."), params={"limit": limit})
        return uploaded


class ImportOptionsForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=200, required=False)
    concurrency = forms.IntegerField(label=_("Concurrency"), min_value=1, max_value=10_000)
    max_retries = forms.IntegerField(label=_("Max auto retries"), min_value=0, max_value=20, initial=2)
    start = forms.BooleanField(label=_("Start now"), required=False, initial=True)

    def __init__(self, *args: Any, may_start: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not may_start:  # starting sends paid calls: it needs the control permission, not just "add"
            del self.fields["start"]

    def import_options(self, created_by_id: int | None) -> ImportOptions:
        data = self.cleaned_data
        return ImportOptions(
            name=data["name"],
            concurrency=data["concurrency"],
            max_retries=data["max_retries"],
            start=data.get("start", False),
            created_by_id=created_by_id,
        )


class ConcurrencyForm(forms.Form):
    concurrency = forms.IntegerField(label=_("Concurrency"), min_value=1, max_value=10_000)


class IntegerListField(forms.Field):
    """Several values of one name (checkboxes), as a list of integers."""

    widget = forms.MultipleHiddenInput
    default_error_messages = {"invalid": _("Enter whole numbers.")}

    def to_python(self, value: Any) -> list[int]:
        values = value if isinstance(value, list | tuple) else ([value] if value not in (None, "") else [])
        try:
            return [int(item) for item in values]
        except (TypeError, ValueError):
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid") from None


class RetryForm(forms.Form):
    """Which failed rows of a batch to retry: one, the selected ones, one error type, or all of them."""

    SCOPES = [("selected", _("Selected")), ("error_type", _("This error type")), ("all", _("All failures"))]
    SCOPES += [("cancelled", _("Cancelled rows"))]

    scope = forms.ChoiceField(choices=SCOPES, required=False)
    one = forms.IntegerField(required=False, min_value=1)
    execution = IntegerListField(required=False)
    error_type = forms.ChoiceField(choices=[("", "")] + list(ErrorType.choices), required=False)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        scope = data.get("scope") or ("one" if data.get("one") else "")
        if not scope:
            raise forms.ValidationError(_("Choose which executions to retry."), code="no_scope")
        if scope == "selected" and not data.get("execution"):
            raise forms.ValidationError(_("Select at least one execution to retry."), code="none_selected")
        if scope == "error_type" and not data.get("error_type"):
            raise forms.ValidationError(_("Choose an error type to retry."), code="no_error_type")
        data["scope"] = scope
        return data

    def retry_arguments(self) -> dict[str, Any]:
        """Keyword arguments for `lifecycle.retry_failed`."""
        data = self.cleaned_data
        scope = data["scope"]
        if scope == "one":
            return {"execution_ids": [data["one"]]}
        if scope == "selected":
            return {"execution_ids": data["execution"]}
        if scope == "error_type":
            return {"error_type": data["error_type"]}
        if scope == "cancelled":  # only cancelled rows carry this error type
            return {"error_type": ErrorType.CANCELLED, "include_cancelled": True}
        return {}


MAX_INPUTS_DEPTH = 64  # Dify's inputs nest three deep at most (a file list); deeper would only break later
NESTED = _("JSON nested too deeply")  # the importer's words for the same thing


def validate_json_object(value: Any) -> None:
    if not isinstance(value, dict):
        raise forms.ValidationError(_('Inputs must be a JSON object, e.g. {"text": "hello"}.'), code="not_object")
    if strictjson.depth(value) > MAX_INPUTS_DEPTH:
        raise forms.ValidationError(NESTED, code="nested")


def json_escaped(text: str) -> str:
    """JSON text with its bidirectional controls as \\u escapes (they can only be inside strings): a page would
    show them escaped (batches.bidi), and a retry must send them unchanged."""
    return bidi.CONTROLS.sub(lambda match: f"\\u{ord(match.group()):04x}", text)


class InputsJSONField(forms.JSONField):
    """The admin's JSON field, refusing (not crashing on) JSON nested deeper than Python's recursion limit, and
    writing bidirectional controls as JSON escapes."""

    def prepare_value(self, value: Any) -> Any:
        text = super().prepare_value(value)
        return json_escaped(text) if isinstance(text, str) else text

    def to_python(self, value: Any) -> Any:
        try:
            return super().to_python(value)
        except RecursionError:
            raise forms.ValidationError(NESTED, code="nested") from None

    def bound_data(self, data: Any, initial: Any) -> Any:
        try:
            return super().bound_data(data, initial)
        except RecursionError:
            return forms.fields.InvalidJSONInput(data)


class InputsForm(forms.Form):
    """Edit an execution's inputs as JSON before a manual retry."""

    inputs = forms.CharField(label=_("Inputs (JSON object)"), widget=forms.Textarea(attrs={"rows": 10}))

    @classmethod
    def for_execution(cls, execution: Execution) -> InputsForm:
        return cls(initial={"inputs": json_escaped(json.dumps(execution.inputs, indent=2, ensure_ascii=False))})

    def clean_inputs(self) -> dict[str, Any]:
        try:
            value = json.loads(self.cleaned_data["inputs"])
        except RecursionError:
            raise forms.ValidationError(NESTED, code="nested") from None
        except ValueError as exc:
            raise forms.ValidationError(_("Not valid JSON: %(error)s"), params={"error": exc}, code="json") from None
        validate_json_object(value)
        return value

    def is_valid_for(self, execution: Execution) -> bool:
        """Valid, and the inputs converted to the types the app declares (the app is asked)."""
        if not self.is_valid():
            return False
        try:
            self.cleaned_data["inputs"] = typed_inputs(execution, edited=self.cleaned_data["inputs"])
        except InputError as exc:
            self.add_error("inputs", str(exc))
            return False
        return True


class ExecutionRetryAdminForm(forms.ModelForm):
    """The admin's edit-and-retry form: only `inputs` is editable, and it must be a JSON object."""

    class Meta:
        model = Execution
        fields = ["inputs"]
        field_classes = {"inputs": InputsJSONField}
        help_texts = {
            "inputs": _("Edit the inputs of this row, then “Save and retry”: it runs again as a manual retry.")
        }

    def clean_inputs(self) -> Any:
        value = self.cleaned_data["inputs"]
        validate_json_object(value)
        try:  # converted to the types the app declares (the app is asked)
            return typed_inputs(self.instance, edited=value)
        except InputError as exc:
            raise forms.ValidationError(str(exc), code="input_type") from None
