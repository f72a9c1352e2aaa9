"""Row values converted and checked against the app's declared variables: at import and before a manual retry."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from batches.choices import ExecutionStatus
from batches.dify.types import InputVariable
from batches.imports.inputs import InputError, convert_row
from batches.services import imports, lifecycle
from fakedify.harness import running_fake_dify
from tests.imports.test_importers import import_error, read_rows, write, write_jsonl, write_xlsx

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:openpyxl")

CODE = InputVariable("code", "Code", required=True, type="text-input", max_length=8)
NOTE = InputVariable("note", "Note", type="paragraph")
LEVEL = InputVariable("level", "Level", type="select", options=("low", "high"))
AGE = InputVariable("age", "Age", type="number")
FLAG = InputVariable("flag", "Flag", type="checkbox")
META = InputVariable("meta", "Meta", type="json_object")
DOC = InputVariable("doc", "Doc", type="file")
TYPED = [CODE, NOTE, LEVEL, AGE, FLAG, META, DOC]


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        (CODE, 40017, "40017"),
        (CODE, 7.0, "7"),
        (CODE, 2.5, "2.5"),
        (CODE, True, "true"),
        (CODE, "0042", "0042"),
        (NOTE, 12, "12"),
        (LEVEL, "high", "high"),
        (AGE, "42", 42),
        (AGE, " -3 ", -3),
        (AGE, "1.5", 1.5),
        (AGE, "1e3", 1000.0),
        (AGE, 7, 7),
        (AGE, 7.0, 7),
        (FLAG, "TRUE", True),
        (FLAG, "no", False),
        (FLAG, False, False),
        (META, '{"a": [1, 2]}', {"a": [1, 2]}),
        (META, {"a": 1}, {"a": 1}),
        (
            DOC,
            "https://example.com/a.pdf",
            {"type": "document", "transfer_method": "remote_url", "url": "https://example.com/a.pdf"},
        ),
    ],
)
def test_each_declared_type_gets_its_value_converted(variable: InputVariable, value: Any, expected: Any) -> None:
    row = {"code": "x", variable.variable: value}
    converted = convert_row(row, [CODE, variable])
    assert converted[variable.variable] == expected
    assert type(converted[variable.variable]) is type(expected)


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        (AGE, "forty", "'age' (Age) must be a number, not 'forty'"),
        (AGE, "nan", "'age' (Age) must be a finite number"),
        (AGE, True, "'age' (Age) must be a number, not true"),
        (CODE, "123456789", "'code' (Code) is 9 characters long, over its limit of 8"),
        (CODE, {"a": 1}, "'code' (Code) must be a text, not a JSON dict"),
        (CODE, "", "'code' (Code) is required"),
        (CODE, None, "'code' (Code) is required"),
        (LEVEL, "medium", "'level' (Level) is 'medium', not one of its options: 'low', 'high'"),
        (FLAG, "maybe", "'flag' (Flag) must be true or false"),
        (META, "[1]", "'meta' (Meta) must be a JSON object, not '[1]'"),
        (META, "{nope", "'meta' (Meta) must be a JSON object, and is not valid JSON"),
    ],
)
def test_a_value_the_app_would_refuse_is_named(variable: InputVariable, value: Any, message: str) -> None:
    with pytest.raises(InputError) as caught:
        convert_row({"code": "x", variable.variable: value}, [CODE, variable])
    assert str(caught.value).startswith(message)


def test_an_empty_optional_value_is_left_out_and_undeclared_columns_pass() -> None:
    assert convert_row({"code": 1, "age": "", "query": 5}, [CODE, AGE]) == {"code": "1", "query": 5}


def test_a_bad_number_names_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, "in.csv", "code,age\na,1\nb,2\nc,three\n")
    assert import_error(path, variables=[CODE, AGE]) == "line 4: 'age' (Age) must be a number, not 'three'"


def test_xlsx_numbers_reach_a_text_variable_as_strings(tmp_path: Path) -> None:
    path = write_xlsx(tmp_path, [["Code", "Age"], [40017, "41"], [123.5, 42]])
    assert read_rows(path, variables=[CODE, AGE]) == [{"code": "40017", "age": 41}, {"code": "123.5", "age": 42}]


def test_jsonl_numbers_reach_a_text_variable_as_strings(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path, [{"code": 7, "note": 3.25}])
    assert read_rows(path, variables=[CODE, NOTE]) == [{"code": "7", "note": "3.25"}]


def test_a_bad_xlsx_value_names_its_row(tmp_path: Path) -> None:
    path = write_xlsx(tmp_path, [["Code", "Level"], ["a", "low"], ["b", "urgent"]])
    assert import_error(path, variables=[CODE, LEVEL]).startswith("row 3: 'level' (Level) is 'urgent'")


@pytest.mark.django_db
def test_an_import_with_a_bad_value_creates_nothing_and_names_the_line(make_workflow: Any, tmp_path: Path) -> None:
    path = write(tmp_path, "in.csv", "code,age\na,1\nb,x\n")
    with running_fake_dify("--variables", "code:Code:required,age:Age:number") as fake:
        workflow = make_workflow(base_url=fake.url)
        with pytest.raises(imports.importers.ImportFileError, match="line 3: 'age' .* must be a number"):
            imports.import_batch(workflow, path)
        batch = imports.import_batch(workflow, write(tmp_path, "ok.csv", "code,age\n12,1\n"))
    assert list(batch.executions.values_list("inputs", flat=True)) == [{"code": "12", "age": 1}]


@pytest.mark.django_db
def test_a_manual_retry_with_edited_inputs_converts_and_checks_them(make_batch: Any, make_workflow: Any) -> None:
    with running_fake_dify("--variables", "code:Code:required,age:Age:number") as fake:
        batch = make_batch(rows=1, workflow=make_workflow(base_url=fake.url))
        execution = batch.executions.get()
        execution.status = ExecutionStatus.FAILED
        assert lifecycle.typed_inputs(execution, edited={"code": 5, "age": "6"}) == {"code": "5", "age": 6}
        with pytest.raises(InputError, match="'age' .* must be a number"):
            lifecycle.typed_inputs(execution, edited={"code": "5", "age": "six"})
