"""Fetch the Amazon Reviews 2023 category files (reviews + item metadata) with resume and checks.

Per category two files are fetched from the McAuley Lab host::

    <base>/review_categories/<Category>.jsonl.gz
    <base>/meta_categories/meta_<Category>.jsonl.gz

Bytes go to ``<dest>.part``; a rerun resumes it with an HTTP ``Range`` request. Before the file
is renamed into place (``os.replace``, so ``dest`` never exists half-written) its size is checked
against what the server announced and, for ``.gz`` files, the whole gzip stream is decompressed
(gzip checks the CRC and length). Only the standard library does the HTTP work.
"""

from __future__ import annotations

import gzip
import http.client
import logging
import os
import re
import socket
import time
import urllib.error
import urllib.request
import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path

from tqdm import tqdm

logger = logging.getLogger(__name__)

# Download links on https://amazon-reviews-2023.github.io/ ("Grouped by Category" table).
AMAZON2023_BASE_URL = "https://datarepo.eng.ucsd.edu/mcauley_group/data/amazon_2023/raw/"
# The same tree under the lab's newer host; tried when the default base fails (see
# ``download_categories``). Not used when the caller passes another ``base_url``.
AMAZON2023_MIRROR_BASE_URLS: tuple[str, ...] = (
    "https://mcauleylab.ucsd.edu/public_datasets/data/amazon_2023/raw/",
)
# The categories the paper's tasks use.
PAPER_CATEGORIES: tuple[str, ...] = ("Movies_and_TV", "CDs_and_Vinyl", "Books")

USER_AGENT = "recbole-music-dataset-prep/1.0 (+urllib)"
RETRY_BACKOFF_S = 2.0  # first retry waits this long, then doubles (capped); tests set it to 0
RETRY_BACKOFF_MAX_S = 30.0
_VERIFY_CHUNK = 1 << 20
_CATEGORY_RE = re.compile(r"^[A-Za-z0-9_]+$")
_CONTENT_RANGE_RE = re.compile(r"^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$", re.IGNORECASE)
_UNSATISFIED_RANGE_RE = re.compile(r"^\s*bytes\s+\*/(\d+)\s*$", re.IGNORECASE)

# Errors worth another try (resuming from the .part): the network, not the request, failed.
_TRANSIENT_ERRORS = (
    urllib.error.URLError,  # also covers HTTPError, handled before this
    http.client.HTTPException,  # IncompleteRead, RemoteDisconnected, BadStatusLine, ...
    ConnectionError,
    TimeoutError,
    socket.timeout,
)


class DownloadError(RuntimeError):
    """A download that failed for good. ``str()`` names the URL (and the file where known)."""

    def __init__(
        self, url: str, message: str, *, dest: Path | None = None, status: int | None = None
    ):
        self.url = url
        self.dest = dest
        self.status = status
        where = f"{url}" if dest is None else f"{url} -> {dest}"
        super().__init__(f"download failed: {where}: {message}")


class _Transient(Exception):
    """Internal: this attempt failed in a way a retry (resuming) may fix."""


class _Restart(Exception):
    """Internal: the .part was discarded; go again from byte 0 without spending a retry."""


def category_files(category: str, base_url: str = AMAZON2023_BASE_URL) -> list[tuple[str, str]]:
    """``[(url, filename)]`` for one category: the reviews file, then the metadata file."""
    if not _CATEGORY_RE.match(category):
        raise ValueError(
            f"bad Amazon 2023 category name {category!r}: expected letters, digits and '_' "
            f"(e.g. {', '.join(PAPER_CATEGORIES)})"
        )
    base = base_url if base_url.endswith("/") else base_url + "/"
    reviews = f"{category}.jsonl.gz"
    meta = f"meta_{category}.jsonl.gz"
    return [
        (f"{base}review_categories/{reviews}", reviews),
        (f"{base}meta_categories/{meta}", meta),
    ]


def download_file(
    url: str,
    dest: Path,
    *,
    timeout: float = 60,
    retries: int = 3,
    chunk_size: int = 1 << 20,
    show_progress: bool = True,
) -> Path:
    """Download ``url`` to ``dest`` (resuming ``<dest>.part``), verify it, and return ``dest``.

    An existing ``dest`` is kept and nothing is fetched when it passes the offline check (not
    empty; a ``.gz`` decompresses whole) — a file copied there by hand or cut short by a full
    disk is downloaded again. Connection errors, timeouts, 5xx answers and short reads are retried up to
    ``retries`` times with a growing pause, each time resuming from the bytes already on disk.
    4xx answers raise :class:`DownloadError` at once. A file that fails the size or gzip check
    raises :class:`DownloadError` and its ``.part`` is removed, so the next run starts over.
    """
    dest = Path(dest)
    if dest.is_file():
        problem = _existing_file_problem(dest)
        if problem is None:
            logger.info("already downloaded, skipping: %s", dest)
            return dest
        logger.warning("%s %s; downloading it again", dest, problem)
        dest.unlink()
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")

    failures = 0  # consecutive failed attempts that added no bytes
    restarts = 0
    while True:
        before = part.stat().st_size if part.exists() else 0
        try:
            total = _attempt(url, dest, part, timeout, chunk_size, show_progress)
            break
        except _Restart:
            restarts += 1
            if restarts > 3:
                raise DownloadError(
                    url, "server keeps answering inconsistent ranges", dest=dest
                ) from None
        except _Transient as exc:
            grew = part.exists() and part.stat().st_size > before
            failures = 1 if grew else failures + 1
            if failures > retries:
                raise DownloadError(
                    url, f"gave up after {failures} attempt(s): {exc}", dest=dest
                ) from exc
            delay = min(RETRY_BACKOFF_S * 2 ** (failures - 1), RETRY_BACKOFF_MAX_S)
            have = part.stat().st_size if part.exists() else 0
            logger.warning(
                "%s: %s; retry %d/%d in %.1fs (resuming at byte %d)",
                url,
                exc,
                failures,
                retries,
                delay,
                have,
            )
            time.sleep(delay)

    _verify(url, dest, part, total)
    os.replace(part, dest)
    logger.info("saved %s (%d bytes)", dest, dest.stat().st_size)
    return dest


def download_categories(
    categories: Iterable[str],
    raw_dir: Path,
    *,
    base_url: str = AMAZON2023_BASE_URL,
    show_progress: bool = True,
    fallback_base_urls: Sequence[str] | None = None,
) -> list[Path]:
    """Download reviews + metadata of each category into ``raw_dir``; return the paths in order.

    ``fallback_base_urls`` are tried, in order, for a file that fails from ``base_url``; by
    default they are :data:`AMAZON2023_MIRROR_BASE_URLS` when ``base_url`` is the default host,
    and none when the caller chose another ``base_url``.
    """
    raw_dir = Path(raw_dir)
    raw_dir.mkdir(parents=True, exist_ok=True)
    if fallback_base_urls is None:
        fallback_base_urls = AMAZON2023_MIRROR_BASE_URLS if base_url == AMAZON2023_BASE_URL else ()
    bases = [base_url, *[b for b in fallback_base_urls if b != base_url]]

    categories = list(categories)
    for category in categories:  # reject a bad name before any download starts
        category_files(category, base_url)

    paths: list[Path] = []
    for category in categories:
        logger.info("Amazon 2023 category %s", category)
        for index in range(2):  # 0: reviews, 1: metadata
            last_error: DownloadError | None = None
            for base in bases:
                url, filename = category_files(category, base)[index]
                try:
                    paths.append(
                        download_file(url, raw_dir / filename, show_progress=show_progress)
                    )
                    last_error = None
                    break
                except DownloadError as exc:
                    last_error = exc
                    if base is not bases[-1]:
                        logger.warning("%s; trying the next host", exc)
            if last_error is not None:
                raise last_error
    return paths


# --------------------------------------------------------------------------------------------
# internals


def _attempt(
    url: str, dest: Path, part: Path, timeout: float, chunk_size: int, show_progress: bool
) -> int | None:
    """One request; append to / rewrite ``part``. Returns the total size announced, if any."""
    offset = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(url, headers=headers)
    logger.debug("GET %s (%s)", url, headers.get("Range", "whole file"))

    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code == 416 and offset:
            return _unsatisfiable_range(url, part, offset, exc.headers.get("Content-Range"))
        if 400 <= exc.code < 500:
            raise DownloadError(
                url, f"HTTP {exc.code} {exc.reason}", dest=dest, status=exc.code
            ) from exc
        raise _Transient(f"HTTP {exc.code} {exc.reason}") from exc
    except _TRANSIENT_ERRORS as exc:
        raise _Transient(_describe(exc)) from exc

    with response:
        status = response.status
        length = _int_or_none(response.headers.get("Content-Length"))
        if status == 206:
            content_range = response.headers.get("Content-Range", "")
            match = _CONTENT_RANGE_RE.match(content_range)
            if match is None or int(match.group(1)) != offset:
                logger.warning(
                    "%s: asked for bytes %d-, server sent Content-Range %r; starting over",
                    url,
                    offset,
                    content_range,
                )
                part.unlink(missing_ok=True)
                raise _Restart
            total = None if match.group(3) == "*" else int(match.group(3))
            if total is None and length is not None:
                total = offset + length
            mode = "ab"
            logger.info("%s: resuming at byte %d", dest.name, offset)
        elif status == 200:
            if offset:
                logger.warning(
                    "%s: server ignored the Range request (HTTP 200); starting over", url
                )
            offset = 0
            total = length
            mode = "wb"
        else:
            raise DownloadError(
                url, f"unexpected HTTP {status} {response.reason}", dest=dest, status=status
            )

        logger.info(
            "downloading %s -> %s%s",
            url,
            dest,
            f" ({total} bytes)" if total is not None else "",
        )
        written = offset
        with (
            open(part, mode) as out,
            tqdm(
                total=total,
                initial=offset,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=dest.name,
                disable=not show_progress,
                leave=False,
            ) as bar,
        ):
            try:
                while True:
                    chunk = response.read(chunk_size)
                    if not chunk:
                        break
                    out.write(chunk)
                    written += len(chunk)
                    bar.update(len(chunk))
            except _TRANSIENT_ERRORS as exc:
                raise _Transient(f"{_describe(exc)} after {written} bytes") from exc

    if total is not None and written < total:
        # http.client returns b'' when the peer closes early; a retry resumes from here.
        raise _Transient(f"connection closed after {written} of {total} bytes")
    return total


def _unsatisfiable_range(
    url: str, part: Path, offset: int, content_range: str | None
) -> int | None:
    """Handle ``416`` to ``Range: bytes=<offset>-``: a complete .part, or a bad one."""
    match = _UNSATISFIED_RANGE_RE.match(content_range or "")
    total = int(match.group(1)) if match else None
    if total is None or total == offset:
        logger.info("%s: .part already holds all %d bytes (HTTP 416); verifying", url, offset)
        return total
    logger.warning(
        "%s: .part has %d bytes but the file has %d (HTTP 416); starting over", url, offset, total
    )
    part.unlink(missing_ok=True)
    raise _Restart


def _verify(url: str, dest: Path, part: Path, total: int | None) -> None:
    """Size and gzip checks on ``part``; on failure remove it and raise :class:`DownloadError`."""
    size = part.stat().st_size
    problem: str | None = None
    if total is not None and size != total:
        problem = f"size {size} bytes, but the server announced {total}"
    elif size == 0:
        problem = "the server sent an empty file"
    elif dest.name.endswith(".gz"):
        problem = _gzip_problem(part, dest.name)
    if problem is not None:
        part.unlink(missing_ok=True)
        raise DownloadError(
            url, f"{problem}; removed {part.name}, rerun to download it again", dest=dest
        )


def _gzip_problem(path: Path, name: str) -> str | None:
    """What is wrong with a gzip file's stream (gzip checks CRC and length), or None."""
    logger.info("verifying gzip stream of %s (%d bytes)", name, path.stat().st_size)
    try:
        with gzip.open(path, "rb") as stream:
            while stream.read(_VERIFY_CHUNK):
                pass
    except (OSError, EOFError, zlib.error) as exc:
        return f"corrupt or truncated gzip data ({type(exc).__name__}: {exc})"
    return None


def _existing_file_problem(dest: Path) -> str | None:
    """Why a file already at ``dest`` cannot be taken as downloaded, or None."""
    if dest.stat().st_size == 0:
        return "is empty"
    if dest.name.endswith(".gz"):
        problem = _gzip_problem(dest, dest.name)
        return None if problem is None else f"holds {problem}"
    return None


def _describe(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.URLError) and not isinstance(exc, urllib.error.HTTPError):
        return f"{type(exc).__name__}: {exc.reason}"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _int_or_none(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None
