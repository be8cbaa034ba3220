"""dataset_prep.download against a real HTTP server on 127.0.0.1 (no outside network)."""

from __future__ import annotations

import gzip
import http.server
import json
import random
import re
import threading
from pathlib import Path

import pytest

from dataset_prep import download as dl
from dataset_prep.download import (
    AMAZON2023_BASE_URL,
    DownloadError,
    category_files,
    download_categories,
    download_file,
)

TIMEOUT = 5.0  # seconds, per request


def _payload(n_lines: int = 2000, seed: int = 0) -> bytes:
    """A gzip'd JSON-lines file, big enough (tens of KB) to take several chunks."""
    rng = random.Random(seed)
    lines = [
        json.dumps(
            {
                "user_id": f"U{rng.randrange(10**9):09d}",
                "parent_asin": f"B{rng.randrange(10**9):09d}",
                "rating": rng.choice([1.0, 2.0, 3.0, 4.0, 5.0]),
                "text": "".join(rng.choice("abcdefgh ") for _ in range(40)),
            }
        )
        for _ in range(n_lines)
    ]
    return gzip.compress(("\n".join(lines) + "\n").encode(), mtime=0)


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.files: dict[str, bytes] = {}
        self.ignore_range: set[str] = set()  # paths answered 200 whatever the Range
        self.cut_once: set[str] = set()  # paths whose next answer stops halfway
        self.status: dict[str, int] = {}  # paths answered with this error status
        self.requests: list[dict] = []  # {"path", "range"} per request received
        self.sent: list[int] = []  # body bytes sent per answer
        self.lock = threading.Lock()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format, *args):  # keep the test output quiet
        pass

    def do_GET(self):
        srv = self.server
        with srv.lock:
            srv.requests.append({"path": self.path, "range": self.headers.get("Range")})
        if self.path in srv.status:
            self.send_error(srv.status[self.path])
            return
        data = srv.files.get(self.path)
        if data is None:
            self.send_error(404)
            return
        range_header = self.headers.get("Range")
        if range_header and self.path not in srv.ignore_range:
            match = re.fullmatch(r"bytes=(\d+)-", range_header)
            assert match, range_header
            start = int(match.group(1))
            if start >= len(data):
                with srv.lock:  # record before answering: the client may finish first
                    srv.sent.append(0)
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = data[start:]
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            body = data
            self.send_response(200)
        self.send_header("Content-Type", "application/gzip")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.path in srv.cut_once:  # announce everything, send half, hang up
            srv.cut_once.discard(self.path)
            body = body[: len(body) // 2]
        with srv.lock:  # record before sending: the client may finish before this thread
            srv.sent.append(len(body))
        self.wfile.write(body)


@pytest.fixture
def server():
    srv = _Server()
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(timeout=5)


@pytest.fixture(autouse=True)
def _no_backoff(monkeypatch):
    monkeypatch.setattr(dl, "RETRY_BACKOFF_S", 0.0)


def _get(url: str, dest: Path, **kw) -> Path:
    kw.setdefault("timeout", TIMEOUT)
    kw.setdefault("show_progress", False)
    kw.setdefault("chunk_size", 4096)
    return download_file(url, dest, **kw)


def _part(dest: Path) -> Path:
    return dest.with_name(dest.name + ".part")


# ------------------------------------------------------------------------------------------


def test_category_files_layout():
    files = category_files("CDs_and_Vinyl")
    assert files == [
        (
            AMAZON2023_BASE_URL + "review_categories/CDs_and_Vinyl.jsonl.gz",
            "CDs_and_Vinyl.jsonl.gz",
        ),
        (
            AMAZON2023_BASE_URL + "meta_categories/meta_CDs_and_Vinyl.jsonl.gz",
            "meta_CDs_and_Vinyl.jsonl.gz",
        ),
    ]
    # a base without the trailing slash gives the same URLs
    assert category_files("Books", "http://h/raw") == category_files("Books", "http://h/raw/")
    with pytest.raises(ValueError, match="category"):
        category_files("../etc")


def test_full_download(server, tmp_path):
    data = _payload()
    server.files["/x/a.jsonl.gz"] = data
    dest = tmp_path / "sub" / "a.jsonl.gz"

    got = _get(server.base + "/x/a.jsonl.gz", dest, show_progress=True)

    assert got == dest
    assert dest.read_bytes() == data
    assert not _part(dest).exists()
    assert server.requests == [{"path": "/x/a.jsonl.gz", "range": None}]
    assert server.sent == [len(data)]


def test_resume_from_part(server, tmp_path):
    data = _payload()
    half = len(data) // 2
    server.files["/a.jsonl.gz"] = data
    dest = tmp_path / "a.jsonl.gz"
    _part(dest).write_bytes(data[:half])

    _get(server.base + "/a.jsonl.gz", dest)

    assert server.requests == [{"path": "/a.jsonl.gz", "range": f"bytes={half}-"}]
    assert server.sent == [len(data) - half]
    assert dest.read_bytes() == data
    assert not _part(dest).exists()


def test_server_ignoring_range_starts_over(server, tmp_path):
    data = _payload()
    half = len(data) // 2
    server.files["/a.jsonl.gz"] = data
    server.ignore_range.add("/a.jsonl.gz")
    dest = tmp_path / "a.jsonl.gz"
    _part(dest).write_bytes(b"\xff" * half)  # junk: must be thrown away, not appended to

    _get(server.base + "/a.jsonl.gz", dest)

    assert server.requests == [{"path": "/a.jsonl.gz", "range": f"bytes={half}-"}]
    assert server.sent == [len(data)]
    assert dest.read_bytes() == data


def test_dropped_connection_is_retried_and_resumed(server, tmp_path):
    data = _payload()
    server.files["/a.jsonl.gz"] = data
    server.cut_once.add("/a.jsonl.gz")
    dest = tmp_path / "a.jsonl.gz"

    _get(server.base + "/a.jsonl.gz", dest, retries=2)

    assert len(server.requests) == 2
    assert server.requests[0]["range"] is None
    first = server.sent[0]
    assert 0 < first < len(data)
    assert server.requests[1]["range"] == f"bytes={first}-"
    assert server.sent[1] == len(data) - first
    assert dest.read_bytes() == data


def test_complete_part_answered_416_is_verified(server, tmp_path):
    data = _payload()
    server.files["/a.jsonl.gz"] = data
    dest = tmp_path / "a.jsonl.gz"
    _part(dest).write_bytes(data)

    _get(server.base + "/a.jsonl.gz", dest)

    assert server.requests == [{"path": "/a.jsonl.gz", "range": f"bytes={len(data)}-"}]
    assert server.sent == [0]
    assert dest.read_bytes() == data
    assert not _part(dest).exists()


def _truncated(data: bytes) -> bytes:
    return data[: len(data) - 50]


def _bitflipped(data: bytes) -> bytes:
    mid = len(data) // 2
    return data[:mid] + bytes([data[mid] ^ 0xFF]) + data[mid + 1 :]


@pytest.mark.parametrize("spoil", [_truncated, _bitflipped], ids=["truncated", "bitflip"])
def test_corrupt_gzip_is_rejected_and_cleaned_up(server, tmp_path, spoil):
    bad = spoil(_payload())
    server.files["/bad.jsonl.gz"] = bad  # Content-Length matches, so only gzip can tell
    dest = tmp_path / "bad.jsonl.gz"
    url = server.base + "/bad.jsonl.gz"

    with pytest.raises(DownloadError) as info:
        _get(url, dest)

    message = str(info.value)
    assert url in message
    assert "bad.jsonl.gz" in message and "gzip" in message
    assert not dest.exists()
    assert not _part(dest).exists()
    assert len(server.requests) == 1  # an integrity failure is not retried


def test_empty_body_is_rejected(server, tmp_path):
    server.files["/empty.jsonl.gz"] = b""
    dest = tmp_path / "empty.jsonl.gz"

    with pytest.raises(DownloadError, match="empty"):
        _get(server.base + "/empty.jsonl.gz", dest)

    assert not dest.exists() and not _part(dest).exists()


def test_http_404_names_url_and_is_not_retried(server, tmp_path):
    url = server.base + "/missing.jsonl.gz"
    dest = tmp_path / "missing.jsonl.gz"

    with pytest.raises(DownloadError) as info:
        _get(url, dest, retries=3)

    assert url in str(info.value)
    assert "404" in str(info.value)
    assert info.value.status == 404
    assert len(server.requests) == 1
    assert not dest.exists() and not _part(dest).exists()


def test_http_5xx_is_retried_then_gives_up(server, tmp_path):
    server.status["/busy.jsonl.gz"] = 503
    url = server.base + "/busy.jsonl.gz"

    with pytest.raises(DownloadError, match="503") as info:
        _get(url, tmp_path / "busy.jsonl.gz", retries=2)

    assert url in str(info.value)
    assert len(server.requests) == 3  # first try + 2 retries


def test_existing_dest_is_skipped_without_network(server, tmp_path, caplog):
    server.files["/a.jsonl.gz"] = _payload()
    dest = tmp_path / "a.jsonl.gz"
    already = gzip.compress(b'{"already": "here"}\n')
    dest.write_bytes(already)

    with caplog.at_level("INFO", logger="dataset_prep.download"):
        got = _get(server.base + "/a.jsonl.gz", dest)

    assert got == dest
    assert server.requests == []
    assert dest.read_bytes() == already
    assert any("skipping" in r.getMessage() for r in caplog.records)


def test_truncated_file_at_dest_is_downloaded_again(server, tmp_path, caplog):
    server.files["/a.jsonl.gz"] = _payload()
    dest = tmp_path / "a.jsonl.gz"
    dest.write_bytes(_payload()[:-20])  # cut short, e.g. copied by hand from a full disk

    with caplog.at_level("INFO", logger="dataset_prep.download"):
        _get(server.base + "/a.jsonl.gz", dest)

    assert server.requests  # fetched, not skipped
    assert dest.read_bytes() == _payload()
    assert "holds corrupt or truncated gzip data" in caplog.text


def test_download_categories_against_local_server(server, tmp_path):
    expected = {}
    for i, category in enumerate(["Movies_and_TV", "CDs_and_Vinyl"]):
        for j, (url, filename) in enumerate(category_files(category, server.base + "/raw/")):
            data = _payload(300, seed=10 * i + j)
            server.files[url[len(server.base) :]] = data
            expected[filename] = data
    raw_dir = tmp_path / "raw"

    paths = download_categories(
        ["Movies_and_TV", "CDs_and_Vinyl"],
        raw_dir,
        base_url=server.base + "/raw",
        show_progress=False,
    )

    assert [p.name for p in paths] == [
        "Movies_and_TV.jsonl.gz",
        "meta_Movies_and_TV.jsonl.gz",
        "CDs_and_Vinyl.jsonl.gz",
        "meta_CDs_and_Vinyl.jsonl.gz",
    ]
    assert all(p.parent == raw_dir for p in paths)
    for p in paths:
        assert p.read_bytes() == expected[p.name]
    assert sorted(r["path"] for r in server.requests) == sorted(
        [
            "/raw/review_categories/Movies_and_TV.jsonl.gz",
            "/raw/meta_categories/meta_Movies_and_TV.jsonl.gz",
            "/raw/review_categories/CDs_and_Vinyl.jsonl.gz",
            "/raw/meta_categories/meta_CDs_and_Vinyl.jsonl.gz",
        ]
    )
    assert sorted(f.name for f in raw_dir.iterdir()) == sorted(expected)  # no .part left over

    # a second run finds everything in place and asks for nothing
    n = len(server.requests)
    again = download_categories(
        ["Movies_and_TV", "CDs_and_Vinyl"],
        raw_dir,
        base_url=server.base + "/raw",
        show_progress=False,
    )
    assert again == paths
    assert len(server.requests) == n


def test_download_categories_falls_back_to_next_host(server, tmp_path):
    for url, _ in category_files("Books", server.base + "/mirror/"):
        server.files[url[len(server.base) :]] = _payload(50)

    paths = download_categories(
        ["Books"],
        tmp_path,
        base_url=server.base + "/gone/",
        fallback_base_urls=[server.base + "/mirror/"],
        show_progress=False,
    )

    assert [p.name for p in paths] == ["Books.jsonl.gz", "meta_Books.jsonl.gz"]
    assert [r["path"] for r in server.requests] == [
        "/gone/review_categories/Books.jsonl.gz",
        "/mirror/review_categories/Books.jsonl.gz",
        "/gone/meta_categories/meta_Books.jsonl.gz",
        "/mirror/meta_categories/meta_Books.jsonl.gz",
    ]


def test_download_categories_without_fallback_raises(server, tmp_path):
    with pytest.raises(DownloadError, match="404"):
        download_categories(
            ["Books"], tmp_path, base_url=server.base + "/gone/", show_progress=False
        )
    assert len(server.requests) == 1
