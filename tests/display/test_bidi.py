"""Names with bidirectional control characters show escaped in every page (batches.display.bidi, issue 27)."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from batches.forms.executions import InputsForm
from batches.models import Execution

TRICK = "invoice\u202egpj.exe"  # shows as "invoiceexe.jpg" where the override is honoured


@pytest.mark.parametrize(
    "page", [lambda b: reverse("batches:batch_list"), lambda b: reverse("batches:batch_detail", args=[b.pk])]
)
def test_a_name_with_a_bidi_override_shows_escaped(admin_client, make_batch, make_workflow, page):
    batch = make_batch(name=TRICK, workflow=make_workflow(name="wf\u2067x"))

    response = admin_client.get(page(batch))

    html = response.content.decode()
    assert "invoice[U+202E]gpj.exe" in html and "wf[U+2067]x" in html
    assert "\u202e" not in html and "\u2067" not in html
    assert int(response["Content-Length"]) == len(response.content)


def test_the_admin_shows_it_escaped_too(admin_client, make_batch):
    batch = make_batch(name=TRICK)

    html = admin_client.get(f"/admin/batches/batchtask/{batch.pk}/change/").content.decode()

    assert "\u202e" not in html


def test_edited_inputs_keep_a_bidi_character_through_the_form_as_a_json_escape(make_batch):
    execution = make_batch(rows=1).executions.get()
    Execution.objects.filter(pk=execution.pk).update(inputs={"text": "a\u202eb"})
    execution.refresh_from_db()

    shown = InputsForm.for_execution(execution).initial["inputs"]

    assert "\u202e" not in shown and "\\u202e" in shown
    assert json.loads(shown) == {"text": "a\u202eb"}


def test_the_admins_edit_and_retry_keeps_a_bidi_character_as_a_json_escape(admin_client, make_batch):
    execution = make_batch(rows=1).executions.get()
    Execution.objects.filter(pk=execution.pk).update(inputs={"text": "a\u202eb"}, status="failed")

    html = admin_client.get(f"/admin/batches/execution/{execution.pk}/change/").content.decode()

    assert "&quot;a\\u202eb&quot;" in html and "[U+202E]" not in html
