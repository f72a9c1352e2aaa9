"""services.imports: a batch from a table or a ZIP, all of it or nothing, started if asked; and the modules of an
import stand without a circle (lifecycle, imports, file_imports, workflows)."""

from __future__ import annotations

import ast
import zipfile
from pathlib import Path

import pytest

import batches.services
from batches.choices import BatchStatus
from batches.dify.types import InputVariable
from batches.imports.importers import ImportFileError
from batches.models import AuditEntry, BatchFile, BatchTask
from batches.services import audit, imports

DOC = InputVariable("doc", "Document", required=True, type="file")
TEXT = InputVariable("text", "Text")
SERVICES = Path(batches.services.__file__).parent
IMPORT_MODULES = ("lifecycle", "imports", "file_imports", "workflows", "rerun")
pytestmark = pytest.mark.usefixtures("files_dir")


@pytest.fixture
def app(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(imports, "read_input_variables", lambda workflow, config=None: [DOC, TEXT])


def csv_file(tmp_path: Path, rows: int, name: str = "greetings.csv") -> Path:
    path = tmp_path / name
    path.write_text("text\n" + "".join(f"hello {i}\n" for i in range(rows)), encoding="utf-8")
    return path


def zip_file(tmp_path: Path, table: str) -> Path:
    path = tmp_path / "invoices.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("rows.csv", table)
        archive.writestr("scans/a.pdf", b"%PDF-1.4 a")
    return path


def test_a_table_becomes_a_pending_batch_of_its_rows_in_order(make_workflow, tmp_path):
    workflow = make_workflow()

    batch = imports.import_batch(workflow, csv_file(tmp_path, 3), options=imports.ImportOptions(start=False))

    assert (batch.name, batch.source_filename, batch.status) == ("greetings", "greetings.csv", "pending")
    rows = batch.executions.order_by("index").values_list("inputs", flat=True)
    assert [row["text"] for row in rows] == ["hello 0", "hello 1", "hello 2"]
    assert not AuditEntry.objects.exists()


def test_an_import_asked_to_start_starts_the_batch_in_its_actors_name(make_workflow, tmp_path):
    actor = audit.Actor("ana", audit.Face.PAGE)

    batch = imports.import_batch(make_workflow(), csv_file(tmp_path, 2), options=imports.ImportOptions(actor=actor))

    assert BatchTask.objects.get(pk=batch.pk).status == BatchStatus.RUNNING
    [entry] = AuditEntry.objects.all()
    assert (entry.action, entry.actor, entry.batch_id) == ("start", "ana", batch.pk)


def test_progress_is_reported_as_rows_go_in(make_workflow, tmp_path):
    seen: list[int] = []

    imports.import_batch(
        make_workflow(), csv_file(tmp_path, imports.IMPORT_CHUNK + 5), on_progress=seen.append,
        options=imports.ImportOptions(start=False),
    )  # fmt: skip

    assert seen == [imports.IMPORT_CHUNK, imports.IMPORT_CHUNK + 5]


def test_what_runs_in_the_batchs_transaction_can_still_refuse_the_whole_batch(make_workflow, tmp_path):
    def refuse(batch: BatchTask) -> None:
        raise ImportFileError("refused after the rows")

    with pytest.raises(ImportFileError, match="refused after the rows"):
        imports.import_table(
            make_workflow(), csv_file(tmp_path, 2), filename="greetings.csv", options=imports.ImportOptions(),
            then=refuse,
        )  # fmt: skip

    assert not BatchTask.objects.exists() and not AuditEntry.objects.exists()


def test_a_zip_becomes_a_batch_named_after_it_with_its_files(app, make_workflow, tmp_path, files_dir):
    source = zip_file(tmp_path, "doc,text\nscans/a.pdf,first\n")

    batch = imports.import_batch(make_workflow(), source, options=imports.ImportOptions(start=False))

    assert (batch.name, batch.source_filename, batch.total) == ("invoices", "invoices.zip", 1)
    [kept] = BatchFile.objects.filter(batch=batch)
    assert kept.name == "scans/a.pdf" and (files_dir / kept.stored).is_file()


def test_a_zip_refused_after_unpacking_leaves_no_file_and_no_batch(app, make_workflow, tmp_path, files_dir):
    source = zip_file(tmp_path, "doc,text\n")  # a header, no rows

    with pytest.raises(ImportFileError, match="no data rows"):
        imports.import_batch(make_workflow(), source)

    assert not BatchTask.objects.exists() and not BatchFile.objects.exists()
    assert not [path for path in files_dir.rglob("*") if path.is_file()]


# ------------------------------------------------------------------------------------------------- the modules


def imported_services(module: str) -> tuple[set[str], list[str]]:
    """The services `module` imports (not for type checking only), and those it imports inside a function."""
    tree = ast.parse((SERVICES / f"{module}.py").read_text(encoding="utf-8"))
    typing_only = {id(node) for block in ast.walk(tree) if _type_checking(block) for node in ast.walk(block)}
    inside = {id(node) for fn in ast.walk(tree) if isinstance(fn, ast.FunctionDef) for node in ast.walk(fn)}
    found: set[str] = set()
    late: list[str] = []
    for node in ast.walk(tree):
        names = _services_of(node)
        if names and id(node) not in typing_only:
            found |= names
            late += sorted(names) if id(node) in inside else []
    return found, late


def _type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _services_of(node: ast.AST) -> set[str]:
    if not isinstance(node, ast.ImportFrom) or not (node.module or "").startswith("batches.services"):
        return set()
    if node.module == "batches.services":
        return {alias.name for alias in node.names}
    return {node.module.split(".")[2]}


@pytest.mark.parametrize("module", IMPORT_MODULES)
def test_the_import_modules_import_no_service_inside_a_function(module):
    assert imported_services(module)[1] == []


def test_no_service_module_is_part_of_an_import_circle():
    modules = [path.stem for path in SERVICES.glob("*.py") if path.stem != "__init__"]
    graph = {module: imported_services(module)[0] for module in modules}

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        return any(step == goal or (step not in seen and reaches(step, goal, seen | {step})) for step in graph[start])

    assert [module for module in modules if reaches(module, module, {module})] == []
