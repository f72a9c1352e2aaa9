"""API keys encrypted at rest: the column, key rotation, unreadable and legacy values, dumps."""

from __future__ import annotations

import asyncio
import io
import json
from typing import Any

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.forms import modelform_factory

from batches.db import crypto
from batches.dify.client import DifyClient
from batches.dify.types import AppSettings
from batches.models import Workflow
from batches.services.workflows import app_settings

SECRET = "app-Encrypted-At-Rest-4711"
OLD_KEY, NEW_KEY = Fernet.generate_key().decode(), Fernet.generate_key().decode()


def stored(workflow: Workflow) -> str:
    """The raw column, as a database dump would hold it."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT api_key FROM batches_workflow WHERE id = %s", [workflow.pk])
        return str(cursor.fetchone()[0])


def store(workflow: Workflow, raw: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute("UPDATE batches_workflow SET api_key = %s WHERE id = %s", [raw, workflow.pk])


def call(app: AppSettings) -> Any:
    async def go() -> Any:
        async with DifyClient() as client:
            return await client.run(app, {"text": "x"}, user="u")

    return asyncio.run(go())


def test_the_column_holds_a_token_and_the_model_the_plaintext(make_workflow: Any) -> None:
    workflow = make_workflow(api_key=SECRET)

    raw = stored(workflow)

    assert SECRET not in raw and crypto.looks_like_token(raw)
    assert Workflow.objects.get(pk=workflow.pk).api_key == SECRET
    assert Workflow.objects.values_list("api_key", flat=True).get(pk=workflow.pk) == SECRET
    assert app_settings(Workflow.objects.get(pk=workflow.pk)).api_key == SECRET


def test_each_save_encrypts_afresh(make_workflow: Any) -> None:
    workflow = make_workflow(api_key=SECRET)
    first = stored(workflow)

    workflow.save()

    assert stored(workflow) != first
    assert Workflow.objects.get(pk=workflow.pk).api_key == SECRET


def test_keys_derive_from_secret_key_and_its_fallbacks_when_the_setting_is_empty(settings: Any) -> None:
    settings.BATCHES_ENCRYPTION_KEY = []
    settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS = "old-secret-key", []
    token = crypto.encrypt(SECRET)

    settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS = "new-secret-key", ["old-secret-key"]

    assert crypto.decrypt(token) == SECRET
    assert crypto.configured_keys() == [crypto.derive_key("new-secret-key"), crypto.derive_key("old-secret-key")]


@pytest.mark.parametrize("value", [f"{NEW_KEY},{OLD_KEY}", [NEW_KEY, OLD_KEY], f" {NEW_KEY} , {OLD_KEY} ,"])
def test_the_setting_is_a_list_of_keys_newest_first(settings: Any, value: Any) -> None:
    settings.BATCHES_ENCRYPTION_KEY = value

    assert crypto.configured_keys() == [NEW_KEY.encode(), OLD_KEY.encode()]


def test_a_key_that_is_no_fernet_key_is_a_configuration_error(settings: Any) -> None:
    settings.BATCHES_ENCRYPTION_KEY = [NEW_KEY, "not-a-key"]

    with pytest.raises(ImproperlyConfigured, match="key 2 is not a Fernet key"):
        crypto.encrypt(SECRET)


def test_rotation_re_encrypts_every_key_under_the_newest(settings: Any, make_workflow: Any) -> None:
    settings.BATCHES_ENCRYPTION_KEY = [OLD_KEY]
    workflows = [make_workflow(api_key=f"{SECRET}-{i}") for i in range(3)]
    settings.BATCHES_ENCRYPTION_KEY = [NEW_KEY, OLD_KEY]
    out = io.StringIO()

    call_command("rotate_api_keys", stdout=out)

    assert out.getvalue().strip() == "Re-encrypted 3 API keys under the newest key."
    settings.BATCHES_ENCRYPTION_KEY = [NEW_KEY]  # the old key is dropped
    for i, workflow in enumerate(workflows):
        assert Fernet(NEW_KEY).decrypt(stored(workflow)).decode() == f"{SECRET}-{i}"
        assert Workflow.objects.get(pk=workflow.pk).api_key == f"{SECRET}-{i}"


def test_a_key_no_configured_key_decrypts_reads_as_unreadable_and_is_kept(settings: Any, make_workflow: Any) -> None:
    settings.BATCHES_ENCRYPTION_KEY = [OLD_KEY]
    workflow = make_workflow(api_key=SECRET, concurrency=2)
    token = stored(workflow)
    settings.BATCHES_ENCRYPTION_KEY = [NEW_KEY]

    loaded = Workflow.objects.get(pk=workflow.pk)
    loaded.concurrency = 5
    loaded.full_clean()
    loaded.save()

    assert crypto.is_unreadable(loaded.api_key) and SECRET not in loaded.api_key
    assert stored(workflow) == token  # written back unchanged: restoring the old key brings it back
    settings.BATCHES_ENCRYPTION_KEY = [NEW_KEY, OLD_KEY]
    assert Workflow.objects.get(pk=workflow.pk).api_key == SECRET


def test_a_call_with_an_unreadable_key_fails_as_auth_without_sending_it(settings: Any, make_workflow: Any) -> None:
    settings.BATCHES_ENCRYPTION_KEY = [OLD_KEY]
    workflow = make_workflow(api_key=SECRET, base_url="http://127.0.0.1:9/v1")  # nothing listens there
    settings.BATCHES_ENCRYPTION_KEY = [NEW_KEY]

    result = call(app_settings(Workflow.objects.get(pk=workflow.pk)))

    assert (result.ok, result.error_type) == (False, "auth")
    assert "cannot be decrypted" in result.error


def test_rotation_reports_the_keys_it_cannot_read(settings: Any, make_workflow: Any) -> None:
    settings.BATCHES_ENCRYPTION_KEY = [OLD_KEY]
    make_workflow(name="lost", api_key=SECRET)
    settings.BATCHES_ENCRYPTION_KEY = [NEW_KEY]
    make_workflow(name="fine", api_key=SECRET)
    out = io.StringIO()

    with pytest.raises(CommandError, match="1 API key could not be decrypted .*: lost"):
        call_command("rotate_api_keys", stdout=out)

    assert out.getvalue().strip() == "Re-encrypted 1 API key under the newest key."


def test_a_key_stored_before_encryption_is_read_as_is_and_encrypted_by_rotation(make_workflow: Any) -> None:
    workflow = make_workflow(api_key="placeholder")
    store(workflow, SECRET)

    assert Workflow.objects.get(pk=workflow.pk).api_key == SECRET
    call_command("rotate_api_keys", stdout=io.StringIO())

    assert SECRET not in stored(workflow)
    assert Workflow.objects.get(pk=workflow.pk).api_key == SECRET


def test_dumpdata_writes_tokens_and_loaddata_reads_them_back(make_workflow: Any, tmp_path: Any) -> None:
    workflow = make_workflow(name="dumped", api_key=SECRET)
    out = io.StringIO()

    call_command("dumpdata", "batches.workflow", stdout=out)
    dump = out.getvalue()
    Workflow.objects.all().delete()
    (tmp_path / "workflows.json").write_text(dump)
    call_command("loaddata", str(tmp_path / "workflows.json"), verbosity=0)

    assert SECRET not in dump
    assert crypto.looks_like_token(json.loads(dump)[0]["fields"]["api_key"])
    assert Workflow.objects.get(pk=workflow.pk).api_key == SECRET


@pytest.mark.parametrize("key", ["app key with spaces", "app-key\n", "app-ключ"])
def test_an_api_key_must_be_printable_ascii(make_workflow: Any, key: str) -> None:
    workflow = make_workflow()
    workflow.api_key = key

    with pytest.raises(ValidationError, match="Printable ASCII"):
        workflow.full_clean()


@pytest.mark.parametrize("value", ["", "app-abc", "gAAAAA", "gAAAAABnot-base64!", "ключ"])
def test_only_fernet_shaped_values_look_like_tokens(value: str) -> None:
    assert not crypto.looks_like_token(value)
    assert crypto.looks_like_token(Fernet(NEW_KEY).encrypt(value.encode()).decode())


def test_a_model_form_never_renders_the_key(make_workflow: Any) -> None:
    form_class = modelform_factory(Workflow, fields=["api_key"])

    html = form_class(instance=make_workflow(api_key=SECRET)).as_p()

    assert 'type="password"' in html and SECRET not in html
