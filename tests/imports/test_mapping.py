"""Column mapping (issue 25, item 6): each header gives a variable or is ignored; ignored columns are kept with
the row (Execution.extra), shown and exported, never sent to Dify; `import_batch --map / --ignore`."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from batches.dify.types import InputVariable
from batches.exports import batches as exporters
from batches.imports import mapping
from batches.imports.importers import ImportFileError, parse_file
from batches.models import BatchTask, Execution
from batches.services import imports, rerun

VARIABLES = [InputVariable("text", "Source text", required=True), InputVariable("lang", "Language")]


@pytest.fixture
def app(monkeypatch: pytest.MonkeyPatch) -> list[InputVariable]:
    variables = list(VARIABLES)
    monkeypatch.setattr(imports, "read_input_variables", lambda workflow, config=None: variables)
    return variables


def csv_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rows.csv"
    path.write_text(text)
    return path


def test_an_ignored_column_is_kept_apart_from_the_inputs(tmp_path: Path) -> None:
    path = csv_file(tmp_path, "id,Source text,notes\n7,hello,call back\n")

    parsed = parse_file(path, variables=VARIABLES, mapping={"id": "", "notes": ""})

    assert (parsed.header, parsed.columns, parsed.ignored) == (
        ["id", "Source text", "notes"],
        ["text"],
        ["id", "notes"],
    )
    assert list(parsed.records) == [({"text": "hello"}, {"id": "7", "notes": "call back"})]


@pytest.mark.parametrize(
    ("text", "chosen", "message"),
    [
        (
            "id,text\n1,a\n",
            None,
            r"^unknown column\(s\) 'id'; the app expects: 'text' \(label 'Source text'\), 'lang' \(label 'Language'\)$",
        ),
        ("a,b\n1,2\n", {"a": "text", "b": "body"}, r"^column 'b' is mapped to 'body', which the app does not declare$"),
        ("a,b\n1,2\n", {"a": "text", "b": "text"}, r"^columns 'a' and 'b' both give variable 'text'$"),
        ("a,b\n1,2\n", {"a": "", "b": "lang"}, r"^missing required column 'text' \(label 'Source text'\)$"),
        ("a\n1\n", {"c": "text"}, r"^no column 'c' in the file's header, which has: 'a'$"),
    ],
)
def test_a_mapping_the_app_cannot_take_is_refused_with_one_line(tmp_path, text, chosen, message):
    with pytest.raises(mapping.MappingError, match=message):
        parse_file(csv_file(tmp_path, text), variables=VARIABLES, mapping=chosen)


def test_a_chat_apps_query_can_come_from_any_column(tmp_path: Path) -> None:
    path = csv_file(tmp_path, "question,text\nhi?,a\n")

    with pytest.raises(ImportFileError, match=r"^unknown column\(s\) 'question'"):
        parse_file(path, variables=VARIABLES, mode="chat")
    parsed = parse_file(path, variables=VARIABLES, mode="chat", mapping={"question": "query"})

    assert list(parsed.rows) == [{"query": "hi?", "text": "a"}]


def test_the_guess_takes_the_remembered_choice_then_the_name_then_the_label_else_ignores() -> None:
    header = ["Language", "text", "id", "note"]

    chosen = mapping.guess(header, VARIABLES, "workflow", remembered={"note": "", "id": "gone", "text": ""})

    assert chosen == {"Language": "lang", "text": "", "id": "", "note": ""}
    assert mapping.guess(["a", "a2"], None, "workflow", {}) == {"a": "a", "a2": "a2"}


@pytest.mark.parametrize(
    ("maps", "ignores", "message"),
    [(["text"], [], "expected HEADER=VARIABLE"), (["a=text"], ["a"], "column 'a' is given twice")],
)
def test_bad_map_options_are_refused(maps: list[str], ignores: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        mapping.from_options(maps, ignores)


def import_command(path: Path, workflow: Any, *args: str) -> BatchTask:
    out = io.StringIO()
    call_command("import_batch", str(path), "--workflow", workflow.name, "--no-start", *args, stdout=out)
    return BatchTask.objects.get(pk=int(out.getvalue().split()[-1]))


def test_import_batch_maps_and_ignores_columns(tmp_path, make_workflow, app):
    path = csv_file(tmp_path, "id,body,Language,notes\n1,hello,en,x\n2,world,fr,\n")
    workflow = make_workflow()

    batch = import_command(path, workflow, "--map", "body=text", "--ignore", "id", "--ignore", "notes")

    rows = list(batch.executions.order_by("index").values_list("inputs", "extra"))
    assert rows == [
        ({"text": "hello", "lang": "en"}, {"id": "1", "notes": "x"}),
        ({"text": "world", "lang": "fr"}, {"id": "2", "notes": ""}),
    ]
    assert (batch.columns, batch.extra_columns) == (["text", "lang"], ["id", "notes"])


def test_import_batch_without_map_refuses_an_unknown_column(tmp_path, make_workflow, app):
    path = csv_file(tmp_path, "id,text\n1,hello\n")

    with pytest.raises(CommandError, match=r"^rows\.csv: unknown column\(s\) 'id'; the app expects"):
        import_command(path, make_workflow())
    with pytest.raises(CommandError, match=r"^--map 'text': expected HEADER=VARIABLE$"):
        import_command(path, make_workflow(name="other"), "--map", "text")
    assert not BatchTask.objects.exists()


def test_ignored_columns_are_exported_and_kept_by_a_rerun(tmp_path, make_workflow, app):
    path = csv_file(tmp_path, "id,text\n1,hello\n")
    batch = import_command(path, make_workflow(), "--ignore", "id")

    again = rerun.rerun_batch(batch.pk, options=rerun.RerunOptions(start=False))
    jsonl = [json.loads(line) for line in b"".join(exporters.export_chunks(batch, "jsonl")).splitlines()]
    csv_text = b"".join(exporters.export_chunks(batch, "csv")).decode("utf-8-sig").splitlines()

    assert Execution.objects.get(batch=again).extra == {"id": "1"} and again.extra_columns == ["id"]
    assert jsonl[0]["inputs"] == {"text": "hello"} and jsonl[0]["extra"] == {"id": "1"}
    assert csv_text[0].split(",")[:3] == ["row", "text", "extra.id"]
    assert csv_text[1].split(",")[:3] == ["1", "hello", "1"]


def test_the_row_page_shows_the_ignored_columns(tmp_path, make_workflow, app, admin_client):
    batch = import_command(csv_file(tmp_path, "id,text\n7,hello\n"), make_workflow(), "--ignore", "id")
    row = batch.executions.get()

    html = admin_client.get(reverse("batches:execution_detail", args=[row.pk])).content.decode()

    assert "Ignored columns" in html and "&quot;id&quot;: &quot;7&quot;" in html
