"""The "Run again" form of the staff pages."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from batches.models import BatchTask, Workflow
from batches.services.rerun import Only, RerunOptions


class IdsField(forms.Field):
    """Row ids from checkboxes; the service keeps only those that belong to the source batch."""

    widget = forms.MultipleHiddenInput
    MAX_IDS = 10_000

    def to_python(self, value: Any) -> list[int]:
        values = value if isinstance(value, list | tuple) else ([value] if value else [])
        if len(values) > self.MAX_IDS or not all(str(v).isdigit() and len(str(v)) < 19 for v in values):
            raise forms.ValidationError(_("Invalid row selection."), code="invalid")
        return [int(v) for v in values]


class RerunForm(forms.Form):
    only = forms.ChoiceField(choices=[(value, value) for value in Only.CHOICES], widget=forms.HiddenInput)
    execution = IdsField(required=False)
    workflow = forms.ModelChoiceField(label=_("Workflow"), queryset=Workflow.objects.all(), empty_label=None)
    name = forms.CharField(label=_("Name"), max_length=200, required=False)
    concurrency = forms.IntegerField(label=_("Concurrency"), min_value=1, max_value=10_000, required=False)
    max_retries = forms.IntegerField(label=_("Max auto retries"), min_value=0, max_value=20)
    start = forms.BooleanField(label=_("Start now"), required=False)
    columns = forms.CharField(
        label=_("Column mapping"),
        required=False,
        max_length=20_000,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 30, "placeholder": "body=text\nnotes=\nquestion=query"}),
    )

    def clean_columns(self) -> dict[str, str] | None:
        """One COLUMN=VARIABLE per line, COLUMN= to ignore a column (kept with the row, never sent)."""
        chosen: dict[str, str] = {}
        for line in self.cleaned_data["columns"].splitlines():
            column, sep, target = line.strip().rpartition("=")
            if not line.strip():
                continue
            if not sep or not column.strip() or column.strip() in chosen:
                raise forms.ValidationError(_("Write one COLUMN=VARIABLE per line, each column once."), code="map")
            chosen[column.strip()] = target.strip()
        return chosen or None

    def __init__(self, *args: Any, source: BatchTask, may_start: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not may_start:  # starting sends paid calls: it needs the control permission, not just "add"
            del self.fields["start"]
        self.initial = {
            "workflow": source.workflow_id,
            "max_retries": source.max_retries,
            "start": True,
            **self.initial,
        }

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("only") == Only.SELECTED and not data.get("execution"):
            raise forms.ValidationError(_("Select at least one row to run again."), code="no_rows")
        return data

    def options(self, user_id: int | None) -> RerunOptions:
        data = self.cleaned_data
        return RerunOptions(
            workflow=data["workflow"],
            only=data["only"],
            execution_ids=data["execution"],
            name=data["name"],
            concurrency=data["concurrency"],
            max_retries=data["max_retries"],
            start=data.get("start", False),
            created_by_id=user_id,
            mapping=data["columns"],
        )
