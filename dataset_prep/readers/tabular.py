"""Generic CSV / TSV files with a header row: interactions (reviews) or item metadata.

Which column plays which role (user, item, rating, ...) comes from ``columns`` or is guessed from
the header. ``.csv`` is comma-separated with normal quoting; ``.tsv``/``.tab``/``.txt`` are
tab-separated with no quoting at all, because real TSV dumps have unbalanced ``"`` in titles.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Mapping
from itertools import chain
from pathlib import Path

from dataset_prep.errors import BadLineBudget, DataError
from dataset_prep.readers.fields import FieldError, rating, timestamp, unique
from dataset_prep.readers.lines import OnBytes, iter_lines
from dataset_prep.records import ItemMeta, Review

ITEM_NAMES = ("item_id", "item", "parent_asin", "asin", "itemId")
# Header names tried (case-insensitively, in this order) for each role that `columns` leaves out.
REVIEW_ROLES = {
    "user": ("user_id", "user", "reviewerID", "userId"),
    "item": ITEM_NAMES,
    "rating": ("rating", "overall", "stars", "score"),
    "timestamp": ("timestamp", "time", "unixReviewTime", "position"),  # an order position will do
    "text": ("text", "review", "reviewText", "review_text"),
    "summary": ("summary",),
}
ITEM_ROLES = {
    "item": ITEM_NAMES,
    "title": ("title", "name"),
    "image": ("image", "image_url", "imageURL", "image_path"),
    "categories": ("categories", "category"),
}
ALL_ROLES = {**REVIEW_ROLES, **ITEM_ROLES}
TAB_SUFFIXES = (".tsv", ".tab", ".txt")
COMPRESSED_SUFFIXES = (".gz", ".gzip")


class Table:
    """The header of one file and which column index plays which role."""

    def __init__(self, path: str | Path, header: list[str]):
        self.path = path
        self.header = header
        self.width = len(header)
        self._exact = {name: i for i, name in reversed(list(enumerate(header)))}
        self._folded = {name.lower(): i for i, name in reversed(list(enumerate(header)))}

    def find(self, name: str) -> int | None:
        index = self._exact.get(name)
        return self._folded.get(name.lower()) if index is None else index

    def error(self, message: str) -> DataError:
        return DataError(self.path, None, None, f"{message}; the header is {self.header}")

    def roles(
        self, wanted: dict[str, tuple[str, ...]], columns: Mapping | None, required: set[str]
    ) -> dict:
        """Role → column index (None when the file has no such column)."""
        columns = dict(columns or {})
        unknown = set(columns) - set(ALL_ROLES)
        if unknown:
            raise self.error(
                f"columns: unknown role(s) {sorted(unknown)}, known: {sorted(ALL_ROLES)}"
            )
        found = {}
        for role, guesses in wanted.items():
            if role in columns:  # an explicit None means "do not use a column for this role"
                name = columns[role]
                found[role] = None if name is None else self.find(name)
                if name is not None and found[role] is None:
                    raise self.error(f"columns: no column {name!r} (role {role!r})")
            else:
                found[role] = next((i for g in guesses if (i := self.find(g)) is not None), None)
            if role in required and found[role] is None:
                raise self.error(
                    f"no {role} column (tried {list(guesses)}; name it with columns={{'{role}': ...}})"
                )
        return found

    def filter(self, where: Mapping | None) -> list[tuple[int, str]]:
        """``where`` {column: value} → [(index, value)]; only rows matching all of them are read."""
        pairs = []
        for name, value in (where or {}).items():
            index = self.find(name)
            if index is None:
                raise self.error(f"where: no column {name!r}")
            pairs.append((index, str(value)))
        return pairs


def _dialect(path: str | Path, header_line: str) -> dict:
    name = str(path).lower()
    for suffix in COMPRESSED_SUFFIXES:
        name = name.removesuffix(suffix)
    if name.endswith(".csv"):
        tabs = False
    elif name.endswith(TAB_SUFFIXES):
        tabs = True
    else:  # an unknown extension: the header says which
        tabs = "\t" in header_line
    return {"delimiter": "\t", "quoting": csv.QUOTE_NONE} if tabs else {"delimiter": ","}


def _rows(
    path: str | Path, budget: BadLineBudget, on_bytes: OnBytes
) -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) of every row, the header first; unparseable rows go to ``budget``."""
    current = 0  # the line the csv reader last consumed (a quoted CSV field may span lines)

    def texts() -> Iterator[str]:
        nonlocal current
        for lineno, text in iter_lines(path, budget, on_bytes):
            current = lineno
            yield text

    lines = texts()
    first = next(lines, None)
    if first is None:
        raise DataError(path, None, None, "empty file: expected a header row")
    reader = csv.reader(chain([first], lines), **_dialect(path, first))
    while True:
        try:
            for row in reader:
                yield current, row
            return
        except csv.Error as error:  # the reader carries on with the next line
            budget.skip(DataError(path, current, None, f"unreadable row: {error}"))


def _open_table(
    path: str | Path, budget: BadLineBudget, on_bytes: OnBytes, where: Mapping | None
) -> tuple[Table, list[tuple[int, str]], Iterator[tuple[int, list[str]]]]:
    """The header (as a ``Table``), the ``where`` filter resolved on it, and the remaining rows."""
    rows = _rows(path, budget, on_bytes)
    _, header = next(rows)
    header = [name.strip() for name in header]
    header[0] = header[0].removeprefix("\ufeff")  # a byte-order mark some spreadsheet exports add
    table = Table(path, header)
    return table, table.filter(where), rows


def _matching(
    table: Table, where: list[tuple[int, str]], rows: Iterator, budget: BadLineBudget
) -> Iterator:
    """Rows of the right width that pass ``where``."""
    width = table.width
    for lineno, row in rows:
        if len(row) != width:
            message = f"row has {len(row)} fields, the header has {width}"
            budget.skip(DataError(table.path, lineno, None, message))
            continue
        for index, value in where:
            if row[index].strip() != value:
                break
        else:
            yield lineno, row


def _required(row: list[str], index: int, table: Table) -> str:
    value = row[index].strip()
    if not value:
        raise FieldError(table.header[index], "missing")
    return value


def _number(row: list[str], index: int, table: Table) -> float | None:
    """A numeric cell; an empty cell is None, anything else must parse."""
    if not (cell := row[index].strip()):
        return None
    try:
        return float(cell)
    except ValueError:
        raise FieldError(table.header[index], f"expected a number, got {cell!r}") from None


def _rating(row: list[str], index: int | None, table: Table) -> float | None:
    """None when the file has no rating column. With one, every row needs a rating: an empty
    cell is a bad line, not a sign of implicit feedback (which would drop every rating)."""
    if index is None:
        return None
    field = table.header[index]
    stars = _number(row, index, table)
    if stars is None:
        raise FieldError(field, "missing (the file has a rating column: every line needs one)")
    return rating(stars, field)


def _timestamp(row: list[str], index: int | None, table: Table) -> float | None:
    """None when the file has no time column (the line order stands in); with one, every row
    needs a time in range."""
    if index is None:
        return None
    return timestamp(_number(row, index, table), table.header[index])


def _text(row: list[str], index: int | None) -> str:
    return "" if index is None else row[index].strip()


def read_reviews(
    path: str | Path,
    *,
    max_bad_lines: int = 100,
    columns: Mapping | None = None,
    where: Mapping | None = None,
    on_bytes: OnBytes = None,
) -> Iterator[Review]:
    budget = BadLineBudget(path, max_bad_lines)
    table, filters, rows = _open_table(path, budget, on_bytes, where)
    role = table.roles(REVIEW_ROLES, columns, required={"user", "item"})
    for lineno, row in _matching(table, filters, rows, budget):
        try:
            yield Review(
                user_id=_required(row, role["user"], table),
                item_id=_required(row, role["item"], table),
                rating=_rating(row, role["rating"], table),
                timestamp=_timestamp(row, role["timestamp"], table),
                text=_text(row, role["text"]),
                summary=_text(row, role["summary"]),
                line=lineno,
            )
        except FieldError as error:
            budget.skip(DataError(path, lineno, error.field, error.message))
    budget.report()


def _categories(cell: str) -> tuple[str, ...]:
    # `|` when present, else `,`: category names themselves may hold commas ("Arts, Crafts & Sewing").
    separator = "|" if "|" in cell else ","
    return unique(part for raw in cell.split(separator) if (part := raw.strip()))


def read_items(
    path: str | Path,
    *,
    max_bad_lines: int = 100,
    columns: Mapping | None = None,
    where: Mapping | None = None,
    on_bytes: OnBytes = None,
) -> Iterator[ItemMeta]:
    budget = BadLineBudget(path, max_bad_lines)
    table, filters, rows = _open_table(path, budget, on_bytes, where)
    role = table.roles(ITEM_ROLES, columns, required={"item"})
    # Every other column is item text for the encoder: "column: value; ...". The filter columns
    # and `domain` say which file part a row belongs to, not what the item is.
    skipped = {i for i in role.values() if i is not None} | {i for i, _ in filters}
    described = [
        (i, name)
        for i, name in enumerate(table.header)
        if i not in skipped and name.lower() != "domain"
    ]
    for lineno, row in _matching(table, filters, rows, budget):
        try:
            yield ItemMeta(
                item_id=_required(row, role["item"], table),
                title=_text(row, role["title"]),
                description="; ".join(
                    f"{name}: {value}" for i, name in described if (value := row[i].strip())
                ),
                categories=_categories(_text(row, role["categories"])),
                image=_text(row, role["image"]),
                line=lineno,
            )
        except FieldError as error:
            budget.skip(DataError(path, lineno, error.field, error.message))
    budget.report()
