"""The forms of a batch: filter the list, upload a file for a new batch, its import options, its concurrency."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django import forms
from django.core.files.uploadedfile import UploadedFile
from django.utils.translation import gettext_lazy as _

from batches.choices import BatchStatus
from batches.conf import settings
from batches.imports import importers
from batches.models import Workflow
from batches.services.imports import ImportOptions


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
