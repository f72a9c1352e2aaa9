"""The forms of rows: choose rows to retry, edit a row's inputs and retry it (staff pages and the admin)."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from batches.choices import ErrorType
from batches.db import strictjson
from batches.display import bidi
from batches.models import Execution


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
    show them escaped (batches.display.bidi), and a retry must send them unchanged."""
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
    """Edit an execution's inputs as JSON before a manual retry (the types the app declares are the retry's to check:
    its refusal goes on the `inputs` field)."""

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


class ExecutionRetryAdminForm(forms.ModelForm):
    """The admin's edit-and-retry form: only `inputs` is editable, and it must be a JSON object.

    The types the app declares are checked by the retry, after this form was valid; `ExecutionAdmin` then validates
    the form again with the app's refusal in `refused`, so that it shows on the field."""

    refused = ""

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
        if self.refused:
            raise forms.ValidationError(self.refused, code="input_type")
        return value
