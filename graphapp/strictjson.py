"""JSON as graphapp takes it in: strictly parsed, and only values a database keeps exactly.

Python's json module accepts ``NaN`` and ``Infinity``, reads ``1e400`` as
infinity, keeps the last of repeated keys, and gives back strings with lone
surrogates (``"\\ud800"``). SQLite cannot encode lone surrogates, PostgreSQL
refuses NUL characters in text and in jsonb, and neither has a place for NaN in
JSON. The API and the import check with these functions first, and say where
the problem is, instead of failing in the database.
"""

from __future__ import annotations

import json
import math
from typing import Any, Final

MAX_DEPTH: Final = 64
"""How deeply objects and lists may nest inside a stored JSON value (metadata)."""


class RepeatedKeys(dict[str, Any]):
    """A JSON object in which some keys were given more than once; the last value is kept."""

    def __init__(self, pairs: list[tuple[str, Any]], repeated: list[str]) -> None:
        super().__init__(pairs)
        self.repeated = repeated


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) == len(pairs):
        return result
    seen: set[str] = set()
    repeated: dict[str, None] = {}
    for key, _ in pairs:
        if key in seen:
            repeated[key] = None
        seen.add(key)
    return RepeatedKeys(pairs, list(repeated))


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number JSON allows")


def loads(data: bytes | str, *, allow_constants: bool = False) -> Any:
    """Parse JSON. Objects with repeated keys come back as :class:`RepeatedKeys`.

    ``NaN``, ``Infinity`` and ``-Infinity`` raise ValueError unless
    ``allow_constants``; then they are floats that :func:`value_problem` reports
    where they are. Raises ValueError (UnicodeDecodeError included) or
    RecursionError for what is not JSON.
    """
    if allow_constants:
        return json.loads(data, object_pairs_hook=_object)
    return json.loads(data, object_pairs_hook=_object, parse_constant=_refuse_constant)


def shown(value: object, limit: int = 40) -> str:
    """``repr(value)`` (NUL and lone surrogates escaped), cut to about ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def text_problem(text: str) -> str | None:
    """Why a database cannot store ``text`` exactly, or None."""
    if "\x00" in text:
        at = text.index("\x00")
        return f"contains a NUL character (U+0000) at position {at}, which databases refuse"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        code = ord(text[exc.start])
        return (
            f"contains a lone surrogate (U+{code:04X}) at position {exc.start}, "
            "which is not valid Unicode"
        )
    return None


def number_problem(value: float) -> str | None:
    """Why ``value`` (an int or a float from JSON) is not a finite float, or None."""
    try:
        finite = math.isfinite(value)
    except OverflowError:  # an int beyond a float's range
        finite = False
    return None if finite else "not a finite number (NaN, Infinity, or beyond \u00b11.8e308)"


def value_problem(value: Any, path: str = "") -> tuple[str, str] | None:
    """The first part of a parsed JSON value that cannot be stored exactly, or None.

    Returns ``(where, why)``; ``where`` extends ``path`` with the keys and
    indices that lead there (``metadata['tags'][2]``).
    """
    pending: list[tuple[str, Any, int]] = [(path, value, 0)]
    while pending:
        where, item, depth = pending.pop()
        problem = _scalar_problem(item)
        if problem:
            return where, problem
        if not isinstance(item, dict | list):
            continue
        if depth >= MAX_DEPTH:
            return where, f"nested more than {MAX_DEPTH} levels deep"
        if isinstance(item, RepeatedKeys):
            return where, f"the key {shown(item.repeated[0])} is given more than once"
        children = item.items() if isinstance(item, dict) else enumerate(item)
        for key, child in reversed(list(children)):
            inner = f"{where}[{shown(key)}]"
            problem = _scalar_problem(key) if isinstance(key, str) else None
            if problem:
                return inner, f"the key {problem}"
            pending.append((inner, child, depth + 1))
    return None


def _scalar_problem(value: Any) -> str | None:
    if isinstance(value, str):
        return text_problem(value)
    if isinstance(value, float):
        return number_problem(value)
    return None
