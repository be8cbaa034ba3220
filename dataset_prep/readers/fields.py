"""Checking the fields of one raw record, shared by every reader.

A parser raises ``FieldError(field, message)``; the reader's line loop adds the file and line,
turns it into a ``DataError`` and hands it to the bad-line budget.
"""

from __future__ import annotations

from collections.abc import Iterable


class FieldError(Exception):
    """One bad field of one record (the line loop knows the file and the line)."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


def show(value: object) -> str:
    """A short ``type value`` for messages; raw values can be whole paragraphs."""
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{type(value).__name__} {text}"


def required_id(obj: dict, *fields: str) -> str:
    """The first of ``fields`` that is present and non-empty; ints (some dumps have them) → str."""
    for field in fields:
        value = obj.get(field)
        if type(value) is str:
            if value:
                return value
        elif type(value) is int:  # `type() is` on purpose: a bool is not an id
            return str(value)
        elif value is not None:
            raise FieldError(field, f"expected a string id, got {show(value)}")
    raise FieldError(fields[0], "missing")


def optional_str(obj: dict, field: str) -> str:
    value = obj.get(field)
    if type(value) is str:
        return value
    if value is None:
        return ""
    raise FieldError(field, f"expected a string, got {show(value)}")


def rating(value: object, field: str) -> float:
    """A star rating in 1..5; a bool is not a number here (JSON ``true`` is no rating)."""
    if type(value) is float or type(value) is int:
        if 1 <= value <= 5:  # NaN fails this too
            return float(value)
        raise FieldError(field, f"{value!r} is outside 1..5")
    if value is None:
        raise FieldError(field, "missing")
    raise FieldError(field, f"expected a number, got {show(value)}")


# The latest accepted timestamp: 2100-01-01 in seconds since the epoch. Anything later is a unit
# mistake (milliseconds, microseconds) or garbage, and would sort before/after every real review.
MAX_TIMESTAMP = 4_102_444_800


def timestamp(value: object, field: str, per_second: int = 1) -> float:
    """A required time in seconds since the epoch (or an order position), from a number in
    ``1/per_second`` seconds: finite, not negative, not after 2100."""
    if value is None:
        raise FieldError(field, "missing (the file has timestamps: every line needs one)")
    if type(value) is not int and type(value) is not float:
        raise FieldError(field, f"expected a number, got {show(value)}")
    seconds = value / per_second
    if not 0 <= seconds <= MAX_TIMESTAMP:  # NaN fails this too
        unit = "seconds" if per_second == 1 else "milliseconds"
        raise FieldError(
            field,
            f"{value!r} is outside 0..{MAX_TIMESTAMP * per_second} ({unit} since 1970, up to "
            "2100; a larger number is often a timestamp in a smaller unit)",
        )
    return float(seconds)


def text_parts(value: object, field: str) -> list[str]:
    """A string or a list of strings (description, features, categories) → its non-empty parts."""
    if value is None:
        return []
    if type(value) is str:
        value = value.strip()
        return [value] if value else []
    if type(value) is not list:
        raise FieldError(field, f"expected a string or a list of strings, got {show(value)}")
    parts = []
    for position, part in enumerate(value):
        if type(part) is str:
            part = part.strip()
            if part:
                parts.append(part)
        elif part is not None:
            raise FieldError(field, f"element {position} is {show(part)}, not a string")
    return parts


def unique(values: Iterable[str]) -> tuple[str, ...]:
    """De-duplicated, first occurrence kept (category paths repeat their top level)."""
    return tuple(dict.fromkeys(values))
