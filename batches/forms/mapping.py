"""The New batch preview's column mapping: one choice per header of the file, a variable or "ignore"."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from batches.dify.types import InputVariable
from batches.imports import mapping


class ColumnMapForm(forms.Form):
    """Fields `column_0`, `column_1`… in the header's order (a header may hold any character)."""

    def __init__(
        self,
        *args: Any,
        header: list[str],
        variables: list[InputVariable] | None,
        mode: str,
        chosen: dict[str, str],
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.header = header
        for i, cell in enumerate(header):
            self.fields[f"column_{i}"] = forms.ChoiceField(
                label=cell,
                choices=[*_choices(cell, variables, mode), (mapping.IGNORE, _("— ignore (kept, not sent) —"))],
                required=False,
                initial=chosen.get(cell, mapping.IGNORE),
            )

    def chosen(self) -> dict[str, str]:
        return {cell: self.cleaned_data[f"column_{i}"] for i, cell in enumerate(self.header)}

    def rows(self) -> list[tuple[str, forms.BoundField]]:
        return [(cell, self[f"column_{i}"]) for i, cell in enumerate(self.header)]


def _choices(cell: str, variables: list[InputVariable] | None, mode: str) -> list[tuple[str, str]]:
    query = [(mapping.QUERY, str(_("query (the user's message)")))] if mode == "chat" else []
    if variables is None:  # the app's form is unknown: a column is sent under its own name
        return [(cell, cell), *[(name, label) for name, label in query if name != cell]]
    named = [(v.variable, v.label if v.label == v.variable else f"{v.label} ({v.variable})") for v in variables]
    return [*query, *named]
