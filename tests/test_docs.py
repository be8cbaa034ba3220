"""The documentation holds together: relative links resolve, nothing cites files a clone lacks."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DOCS = [
    ROOT / "README.md",
    *sorted((ROOT / "docs").glob("*.md")),
    ROOT / "bench" / "README.md",
    ROOT / "bench" / "results" / "README.md",
    ROOT / "CHANGELOG.md",
]
# [text](target) — not images' remote URLs, not <autolinks>; code spans are removed first.
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
CODE = re.compile(r"```.*?```|`[^`\n]*`", re.S)
# Design notes that lived beside the repository, never in it (spelt in parts so that this file
# does not match itself).
OUTSIDE_NOTES = [name + ".md" for name in ("PROTOCOL", "METHOD", "STACK", "LAYOUT")]
OUTSIDE_NOTES.append("shared" + "/design")


def heading_anchors(markdown: str) -> set[str]:
    """GitHub's anchors of a file's headings: lower case, punctuation dropped, spaces → '-'."""
    anchors = set()
    for line in CODE.sub(lambda m: m.group(0).replace("#", ""), markdown).splitlines():
        match = re.match(r"#{1,6}\s+(.*)", line)
        if match:
            text = match.group(1).strip().lower()
            anchors.add(re.sub(r"[^\w\- ]", "", text).replace(" ", "-"))
    return anchors


def relative_links(path: Path) -> list[tuple[int, str]]:
    """(line number, target) of every link in a Markdown file that is not a URL or mail."""
    found = []
    # Code is blanked, keeping its line breaks so that the line numbers stay true.
    text = CODE.sub(lambda m: "\n" * m.group(0).count("\n"), path.read_text(encoding="utf-8"))
    for number, line in enumerate(text.splitlines(), 1):
        for target in LINK.findall(line):
            if not re.match(r"[a-z][a-z0-9+.-]*:", target):
                found.append((number, target))
    return found


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(doc):
    assert doc.is_file(), f"{doc.relative_to(ROOT)} is missing"
    broken = []
    for number, target in relative_links(doc):
        file_part, _, anchor = target.partition("#")
        linked = (doc.parent / file_part).resolve() if file_part else doc
        where = f"{doc.relative_to(ROOT)}:{number}: {target}"
        if not linked.exists():
            broken.append(f"{where} (no such file)")
        elif ROOT not in linked.parents and linked != ROOT:
            broken.append(f"{where} (outside the repository)")
        elif anchor and linked.suffix == ".md":
            if anchor not in heading_anchors(linked.read_text(encoding="utf-8")):
                broken.append(f"{where} (no heading with that anchor)")
    assert not broken, "broken links:\n" + "\n".join(broken)


def test_link_checker_sees_a_broken_link(tmp_path):
    doc = tmp_path / "doc.md"
    doc.write_text(
        "# Top\n[ok](doc.md#top) `[code](x.md)`\n[gone](missing.md) [web](https://x.org)\n"
    )
    assert relative_links(doc) == [(2, "doc.md#top"), (3, "missing.md")]
    assert heading_anchors(doc.read_text()) == {"top"}


def tracked_files() -> list[Path]:
    try:
        listing = subprocess.run(
            ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout: the tracked files are unknown")
    return [ROOT / name for name in listing.decode().split("\0") if name]


def test_no_tracked_file_cites_design_notes_outside_the_repository():
    citing = []
    for path in tracked_files():
        if not path.is_file():  # deleted in the working tree, not yet committed
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:  # binary (a figure)
            continue
        for number, line in enumerate(text.splitlines(), 1):
            if any(name in line for name in OUTSIDE_NOTES):
                citing.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not citing, (
        "cite docs/protocol.md or docs/music.md instead of notes a clone does not have:\n"
        + "\n".join(citing)
    )


def documented_size_search(markdown: str) -> list:
    """The list docs/music.md quotes as ``interaction_size_search``'s default (the code span
    after "default"), read as YAML."""
    flat = " ".join(markdown.split())  # the quote may wrap
    match = re.search(r"`interaction_size_search` \(default `(\[\[.*?\]\])`", flat)
    assert match, "docs/music.md no longer quotes interaction_size_search's default list"
    return yaml.safe_load(match.group(1))


def test_music_doc_quotes_the_size_search_default_of_the_yaml():
    """docs/music.md spells out the default search; the YAML is where the default lives."""
    documented = documented_size_search((ROOT / "docs" / "music.md").read_text(encoding="utf-8"))
    defaults = yaml.safe_load((ROOT / "properties" / "model" / "MuSiC.yaml").read_text())
    assert documented == defaults["interaction_size_search"]


def test_a_changed_default_list_would_be_seen():
    quoted = "the entries of `interaction_size_search` (default `[[128, 64], [64, 32]]`: an"
    assert documented_size_search(quoted) == [[128, 64], [64, 32]]
    assert documented_size_search(quoted) != [[128, 64], [64, 32, "symmetric"]]
