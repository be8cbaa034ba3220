"""The line loop every reader runs on: plain or gzip files, strict UTF-8, bad lines budgeted.

Files are told apart by their magic bytes, not by their name (``.json`` files are often
gzipped and ``.gz`` files are sometimes not). Memory stays bounded: one line at a time.
"""

from __future__ import annotations

import ast
import gzip
import io
import json
import os
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TypeVar

from dataset_prep.errors import BadLineBudget, DataError
from dataset_prep.readers.fields import FieldError, show

T = TypeVar("T")
OnBytes = Callable[[int], object] | None  # progress callback: on-disk bytes read since last call

GZIP_MAGIC = b"\x1f\x8b"
# Lines between on_bytes calls: often enough for a progress bar, too rare to cost anything.
PROGRESS_EVERY = 8192
READ_BUFFER = 1 << 20  # decompressed bytes buffered per gzip read
# What a cut or damaged gzip stream raises while it is being read.
GZIP_ERRORS = (EOFError, zlib.error, gzip.BadGzipFile)
LITERAL_ERRORS = (ValueError, SyntaxError, TypeError, MemoryError, RecursionError)
JSON_WHITESPACE = " \t\n\r"  # what json.loads allows around a value
_SCAN_ONCE = json.JSONDecoder().scan_once  # json.loads' own C scanner, without the wrappers
_NOT_PARSED = object()


class _Chunks(io.RawIOBase):
    """A gzip stream as a raw stream of ``read1`` chunks: each read decompresses one block, so a
    damaged stream fails only after every line before the damage was read (``GzipFile.read``
    would fail first and lose them)."""

    def __init__(self, gz: gzip.GzipFile):
        self._gz = gz

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:
        data = self._gz.read1(len(buffer))
        n = len(data)
        buffer[:n] = data
        return n


@contextmanager
def _open(path: str | Path) -> Iterator[tuple[IO[bytes], IO[bytes]]]:
    """(raw file, byte stream): the raw file's position is the on-disk bytes consumed so far."""
    with open(path, "rb") as raw:
        if raw.peek(2)[:2] == GZIP_MAGIC:
            with gzip.GzipFile(fileobj=raw, mode="rb") as gz:
                # GzipFile.readline is Python code over an 8 KiB buffer; a big C-level buffer in
                # front of it makes line iteration run in C, decompressing READ_BUFFER at a time.
                yield raw, io.BufferedReader(_Chunks(gz), READ_BUFFER)
        else:
            yield raw, raw


def _corrupt(path: str | Path, lineno: int, error: Exception) -> DataError:
    # Never a skippable bad line: everything after the damage is lost, so the data is incomplete.
    return DataError(
        path, None, None, f"truncated or corrupt gzip stream after line {lineno} ({error})"
    )


def iter_lines(
    path: str | Path,
    budget: BadLineBudget,
    on_bytes: OnBytes = None,
) -> Iterator[tuple[int, str]]:
    """Yield (1-based line number, text) for each non-blank line; non-UTF-8 lines go to ``budget``.

    ``on_bytes(n)`` is called every few thousand lines with the on-disk bytes read since the
    last call; once the file is read to the end, the calls add up to the file size.
    """
    with _open(path) as (raw, stream):
        lineno = 0
        reported = 0
        try:
            for lineno, data in enumerate(stream, 1):
                if on_bytes is not None and not lineno % PROGRESS_EVERY:
                    position = raw.tell()
                    on_bytes(position - reported)
                    reported = position
                if data.isspace():
                    continue
                try:
                    text = data.decode()
                except UnicodeDecodeError as error:
                    budget.skip(
                        DataError(
                            path,
                            lineno,
                            "encoding",
                            f"not valid UTF-8 ({error.reason} at byte {error.start})",
                        )
                    )
                    continue
                yield lineno, text
        except GZIP_ERRORS as error:
            raise _corrupt(path, lineno, error) from error
        if on_bytes is not None:
            size = os.fstat(raw.fileno()).st_size
            if size > reported:
                on_bytes(size - reported)


def peek_lines(path: str | Path, count: int) -> list[str]:
    """The first ``count`` non-blank lines, decoded leniently: enough to guess a file's layout."""
    found: list[str] = []
    lineno = 0
    with _open(path) as (_, stream):
        try:
            for data in stream:
                lineno += 1
                if data.isspace():
                    continue
                found.append(data.decode(errors="replace"))
                if len(found) >= count:
                    break
        except GZIP_ERRORS as error:
            if not found:
                raise _corrupt(path, lineno, error) from error
    return found


def _not_json(text: str, json_error: ValueError, python_literals: bool) -> object:
    """A line json.loads refused: a Python literal (legacy dumps) or else a malformed line."""
    if python_literals:
        try:
            return ast.literal_eval(text.strip())
        except LITERAL_ERRORS:
            raise ValueError(f"neither JSON nor a Python literal ({json_error})") from None
    raise ValueError(f"malformed JSON ({json_error})")


def load_object(text: str, python_literals: bool = False) -> object:
    """Parse one line as JSON, or (``python_literals``) as a Python literal; ValueError if neither."""
    try:
        return json.loads(text)
    except ValueError as error:
        return _not_json(text, error, python_literals)


def read_json_lines(
    path: str | Path,
    parse: Callable[[dict, int], T],
    *,
    max_bad_lines: int = 100,
    on_bytes: OnBytes = None,
    python_literals: bool = False,
) -> Iterator[T]:
    """Yield ``parse(object, lineno)`` for each JSON-object line; bad lines are skipped and counted.

    ``parse`` raises ``FieldError`` for a bad field. ``python_literals`` lets lines that are not
    JSON be read with ``ast.literal_eval`` (Amazon 2014 metadata is written that way).
    """
    budget = BadLineBudget(path, max_bad_lines)
    loads = json.loads  # local names: this loop runs tens of millions of times
    scan = _SCAN_ONCE
    for lineno, text in iter_lines(path, budget, on_bytes):
        # Fast path for the usual line, `{...}\n`: what json.loads does minus its Python-level
        # wrappers. Anything else (leading whitespace, a BOM, an error) goes to json.loads itself,
        # so results and error messages are json.loads'.
        obj = _NOT_PARSED
        if text[0] == "{":
            try:
                obj, end = scan(text, 0)
            except (StopIteration, ValueError):
                obj = _NOT_PARSED
            else:
                if end != len(text) and text[end:].strip(JSON_WHITESPACE):
                    obj = _NOT_PARSED
        try:
            if obj is _NOT_PARSED:
                obj = loads(text)
        except ValueError as json_error:
            try:
                obj = _not_json(text, json_error, python_literals)
            except ValueError as error:
                budget.skip(DataError(path, lineno, "json", str(error)))
                continue
        if type(obj) is not dict:
            budget.skip(DataError(path, lineno, "json", f"expected an object, got {show(obj)}"))
            continue
        try:
            yield parse(obj, lineno)
        except FieldError as error:
            budget.skip(DataError(path, lineno, error.field, error.message))
    budget.report()
