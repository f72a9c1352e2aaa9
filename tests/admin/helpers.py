"""Small helpers shared by the admin tests."""

from __future__ import annotations

from typing import Any

from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.test import Client
from django.urls import reverse

from batches.choices import BatchStatus, ExecutionStatus, Trigger
from batches.models import Attempt, Execution

S = BatchStatus
E = ExecutionStatus
SECRET = "app-TOP-SECRET-KEY-123"
MODELS = ["workflow", "batchtask", "execution", "attempt"]
BATCH_CHANGELIST = "/admin/batches/batchtask/"
EXECUTION_CHANGELIST = "/admin/batches/execution/"
VIEW_ALL = [f"batches.view_{model}" for model in MODELS]


def changelist(model: str) -> str:
    return reverse(f"admin:batches_{model}_changelist")


def change_page(obj: Any) -> str:
    return reverse(f"admin:batches_{obj._meta.model_name}_change", args=[obj.pk])


def run_action(client: Client, url: str, action: str, objects: list[Any]) -> Any:
    data = {"action": action, ACTION_CHECKBOX_NAME: [obj.pk for obj in objects]}
    return client.post(url, data, follow=True)


def messages_of(response: Any) -> list[tuple[str, str]]:
    return [(m.level_tag, m.message) for m in response.context["messages"]]


def offered_actions(response: Any) -> set[str]:
    form = response.context["action_form"]
    return {name for name, _ in form.fields["action"].choices if name} if form else set()


def attempt_for(execution: Execution, **fields: Any) -> Attempt:
    defaults = {"number": 1, "trigger": Trigger.AUTO, "outcome": Attempt.Outcome.FAILED}
    return Attempt.objects.create(execution=execution, **{**defaults, **fields})
