"""The Content-Security-Policy (batches.middleware): every page, the admin's too, forbids inline code and has none."""

from __future__ import annotations

import re
from typing import Any

from django.test import Client
from django.urls import reverse

from batches.models import Execution


def pages(batch: Any) -> list[str]:
    execution = Execution.objects.get(batch=batch)
    return [
        reverse("batches:batch_list"),
        reverse("batches:batch_detail", args=[batch.pk]),
        reverse("batches:batch_failures", args=[batch.pk]),
        reverse("batches:execution_detail", args=[execution.pk]),
        reverse("batches:batch_new"),
        reverse("admin:index"),
        reverse("admin:batches_batchtask_changelist"),
        reverse("admin:batches_execution_change", args=[execution.pk]),
        reverse("admin:batches_workflow_change", args=[batch.workflow_id]),
    ]


def test_every_page_has_a_csp_without_unsafe_inline_and_nothing_inline(admin_client: Client, make_batch: Any) -> None:
    batch = make_batch(rows=1)
    Execution.objects.filter(batch=batch).update(status="failed", error_type="timeout", error="slow")

    for page in pages(batch):
        response = admin_client.get(page)

        policy = response["Content-Security-Policy"]
        assert "script-src 'self'" in policy and "style-src 'self'" in policy, page
        assert "unsafe-inline" not in policy
        html = response.content.decode()
        assert not re.search(r"\sstyle=", html), page
        assert not re.search(r"<style", html), page
        inline = [tag for tag in re.findall(r"<script[^>]*>", html) if "src=" not in tag]
        assert all('type="application/json"' in tag for tag in inline), (page, inline)
