"""Which column of a file gives which input variable, or is ignored (issue 25, item 6).

A mapping is a dict from a header, as written in the file, to a variable name, or to IGNORE (""). Without one,
a header gives the variable of its name, then of its label; a header that gives none is an error (the command
line) unless it is ignored. The preview page starts from `guess`: the choice remembered for the workflow, then
the name, then the label, else ignored. Ignored columns are kept with each row (Execution.extra), never sent.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from batches.dify.types import InputVariable
from batches.imports.readers import ImportFileError, names

IGNORE = ""
QUERY = "query"  # a chat app's message


class MappingError(ImportFileError):
    """The columns cannot be matched to the app's variables; str(error) is one line."""


@dataclass(frozen=True)
class Resolved:
    header: list[str]  # as written in the file
    targets: list[str]  # per header: the variable it gives, or IGNORE

    @property
    def columns(self) -> list[str]:
        return [target for target in self.targets if target != IGNORE]

    @property
    def ignored(self) -> list[str]:
        return [cell for cell, target in zip(self.header, self.targets, strict=True) if target == IGNORE]


def resolve(
    header: list[str], variables: list[InputVariable] | None, mode: str, mapping: dict[str, str] | None = None
) -> Resolved:
    """The variable each header gives (MappingError if one is unknown, twice given, or a required one missing).

    `variables` None: the app's form is unknown, so a header gives the input of its own name unless mapped.
    """
    mapping = mapping or {}
    strangers = [cell for cell in mapping if cell not in header]
    if strangers:
        raise MappingError(f"no column {names(strangers)} in the file's header, which has: {names(header)}")
    targets = [_target(cell, variables, mode, mapping) for cell in header]
    unknown = [cell for cell, target in zip(header, targets, strict=True) if target is None]
    if unknown:
        raise MappingError(f"unknown column(s) {names(unknown)}; the app expects: {expected(variables)}")
    resolved = Resolved(header, [target or IGNORE for target in targets])
    _check(resolved, variables, mode)
    return resolved


def _target(cell: str, variables: list[InputVariable] | None, mode: str, mapping: dict[str, str]) -> str | None:
    if cell in mapping:
        target = mapping[cell]
        known = variable_names(variables, mode)
        if target != IGNORE and known is not None and target not in known:
            raise MappingError(f"column {cell!r} is mapped to {target!r}, which the app does not declare")
        return target
    return automatic(cell, variables, mode)


def automatic(cell: str, variables: list[InputVariable] | None, mode: str) -> str | None:
    """The variable a header gives by its name, then by its label (None: neither)."""
    known = variable_names(variables, mode)
    if known is None or cell in known:
        return cell
    by_label = {v.label.strip(): v.variable for v in variables or [] if v.label}
    return by_label.get(cell.strip())


def variable_names(variables: list[InputVariable] | None, mode: str) -> list[str] | None:
    if variables is None:
        return None
    return [v.variable for v in variables] + ([QUERY] if mode == "chat" else [])


def _check(resolved: Resolved, variables: list[InputVariable] | None, mode: str) -> None:
    seen: dict[str, str] = {}
    for cell, target in zip(resolved.header, resolved.targets, strict=True):
        if target in seen:
            raise MappingError(f"columns {seen[target]!r} and {cell!r} both give variable {target!r}")
        if target != IGNORE:
            seen[target] = cell
    if mode == "chat" and QUERY not in seen:
        raise MappingError("missing required column 'query': a chat app needs the user's message")
    for var in variables or []:
        if var.required and var.variable not in seen:
            raise MappingError(f"missing required column {describe(var)}")


def guess(
    header: list[str], variables: list[InputVariable] | None, mode: str, remembered: dict[str, str]
) -> dict[str, str]:
    """The page's first choice per header: as remembered for the workflow, else by name, else by label, else
    ignored; a variable already given by an earlier header is not guessed twice."""
    known = variable_names(variables, mode)
    chosen: dict[str, str] = {}
    for cell in header:
        target = remembered.get(cell)
        if target is None or (target != IGNORE and known is not None and target not in known):
            target = automatic(cell, variables, mode) or IGNORE
        chosen[cell] = IGNORE if target in chosen.values() else target
    return chosen


def from_options(maps: Iterable[str], ignores: Iterable[str]) -> dict[str, str]:
    """`--map HEADER=VARIABLE` and `--ignore HEADER` as a mapping (ValueError naming a bad option)."""
    mapping: dict[str, str] = {}
    for option in maps:
        cell, sep, target = option.rpartition("=")
        if not sep or not cell.strip() or not target.strip():
            raise ValueError(f"--map {option!r}: expected HEADER=VARIABLE")
        _add(mapping, cell.strip(), target.strip())
    for cell in ignores:
        _add(mapping, cell.strip(), IGNORE)
    return mapping


def _add(mapping: dict[str, str], cell: str, target: str) -> None:
    if cell in mapping:
        raise ValueError(f"column {cell!r} is given twice in --map / --ignore")
    mapping[cell] = target


def expected(variables: list[InputVariable] | None) -> str:
    return ", ".join(describe(v) for v in variables or []) or "none"


def describe(var: InputVariable) -> str:
    if var.label and var.label != var.variable:
        return f"{var.variable!r} (label {var.label!r})"
    return repr(var.variable)
