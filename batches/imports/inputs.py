"""Each row's values, converted and checked against what the app declares (GET /parameters `user_input_form`).

Dify refuses a number sent to a `text-input`, `paragraph` or `select` variable ("must be a string") and a text
sent to a `number` one. In blocking mode that is a 400 per row; in streaming mode Dify validates in its worker and
the client gets one ping, then 300 s of silence (dify-real cases 07 and 09). So values are converted here, at
import (a bad value is an error naming its line) and before a manual retry with edited inputs, and never sent
unconverted. XLSX and JSONL numbers (ids, codes) reach a text variable as the text they show.

File and file-list variables become Dify file mappings (batches/imports/files.py); variables of types this does not know
are left as they are.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Any

from batches.dify.types import InputVariable
from batches.imports import files

TEXT_TYPES = frozenset({"text-input", "paragraph", "select"})
INTEGER = re.compile(r"[+-]?\d+")
TRUE, FALSE = frozenset({"true", "1", "yes", "y", "on"}), frozenset({"false", "0", "no", "n", "off", ""})
MAX_OPTIONS_SHOWN = 10

Converter = Callable[[Any, InputVariable], Any]


class InputError(ValueError):
    """A value the app would refuse; str(error) is one line naming the variable and what is wrong."""


def convert_row(row: dict[str, Any], variables: list[InputVariable]) -> dict[str, Any]:
    """The row with each declared variable's value converted to its declared type (InputError if impossible).

    Columns the app does not declare (`query` of a chat app) pass unchanged; an empty optional value is left out,
    so Dify applies the variable's default.
    """
    converted = dict(row)
    for variable in variables:
        value = row.get(variable.variable)
        if _is_empty(value):
            if variable.required:
                raise InputError(f"{_name(variable)} is required")
            converted.pop(variable.variable, None)
            continue
        convert = CONVERTERS.get(variable.type)
        if convert is not None:
            converted[variable.variable] = convert(value, variable)
    return converted


def _is_empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _name(variable: InputVariable) -> str:
    if variable.label and variable.label != variable.variable:
        return f"{variable.variable!r} ({variable.label})"
    return repr(variable.variable)


def as_text(value: Any, variable: InputVariable) -> str:
    text = _text(value, variable)
    if variable.max_length and len(text) > variable.max_length:
        raise InputError(f"{_name(variable)} is {len(text)} characters long, over its limit of {variable.max_length}")
    if variable.type == "select" and variable.options and text not in variable.options:
        raise InputError(f"{_name(variable)} is {_shown(text)}, not one of its options: {_options(variable)}")
    return text


def _text(value: Any, variable: InputVariable) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    raise InputError(f"{_name(variable)} must be a text, not a JSON {type(value).__name__}")


def as_number(value: Any, variable: InputVariable) -> int | float:
    if isinstance(value, bool):
        raise InputError(f"{_name(variable)} must be a number, not {str(value).lower()}")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return int(value) if value.is_integer() else value
    if isinstance(value, str):
        return _parse_number(value.strip(), variable)
    raise InputError(f"{_name(variable)} must be a number, not {_shown(value)}")


def _parse_number(text: str, variable: InputVariable) -> int | float:
    if INTEGER.fullmatch(text):
        return int(text)
    try:
        number = float(text)
    except ValueError:
        raise InputError(f"{_name(variable)} must be a number, not {_shown(text)}") from None
    if not math.isfinite(number):
        raise InputError(f"{_name(variable)} must be a finite number, not {_shown(text)}")
    return number


def as_checkbox(value: Any, variable: InputVariable) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in TRUE or text in FALSE:
        return text in TRUE
    raise InputError(f"{_name(variable)} must be true or false, not {_shown(value)}")


def as_json_object(value: Any, variable: InputVariable) -> dict[str, Any]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise InputError(f"{_name(variable)} must be a JSON object, and is not valid JSON") from None
    if not isinstance(value, dict):
        raise InputError(f"{_name(variable)} must be a JSON object, not {_shown(value)}")
    return value


def as_files(value: Any, variable: InputVariable) -> Any:
    try:
        return files.convert(value, variable, _name(variable))
    except files.FileInputError as exc:
        raise InputError(str(exc)) from None


def _shown(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return repr(text if len(text) <= 40 else text[:39] + "…")


def _options(variable: InputVariable) -> str:
    shown = ", ".join(repr(option) for option in variable.options[:MAX_OPTIONS_SHOWN])
    return shown + (", …" if len(variable.options) > MAX_OPTIONS_SHOWN else "")


CONVERTERS: dict[str, Converter] = {
    **dict.fromkeys(TEXT_TYPES, as_text),
    "number": as_number,
    "checkbox": as_checkbox,
    "json_object": as_json_object,
    **dict.fromkeys(files.FILE_TYPES, as_files),
}
