"""What gets embedded: item and user rows read from the dataset folder.

* Items (``<name>.item``): the item prompt over title, categories and description, plus the
  ``image`` column (a path relative to the dataset folder, or a URL).
* Users (``<name>.review`` + timestamps from ``<name>.inter``): one row per (user, domain),
  table ``users_aux`` / ``users_target``. Review texts are merged by :class:`UserTextRule`:
  newest first, each review cut to ``max_review_words`` words, reviews added while the total
  stays within ``budget_words`` (the newest review always goes in, cut to the budget). So an
  active user's text is bounded and holds their most recent tastes; the tokenizer's
  ``max_length`` truncation is a second, hard cap.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path

from dataset_prep.features.prompts import PromptSet
from dataset_prep.layout import review_file


@dataclass(frozen=True)
class Row:
    id: str
    text: str
    image: str = ""  # the image reference, '' when none
    empty_text: bool = False  # no title/description/categories (items) or review text (users)


@dataclass(frozen=True)
class UserTextRule:
    max_review_words: int = 128
    budget_words: int = 384
    order: str = "newest-first"

    def as_dict(self) -> dict:
        return asdict(self)

    def merge(self, reviews: list[tuple[float, str]]) -> str:
        """``reviews`` = (timestamp, text); returns '- review' lines, newest first."""
        lines, used = [], 0
        for _, text in sorted(reviews, key=lambda r: -r[0]):
            words = text.split()[: self.max_review_words]
            if not words:
                continue
            room = self.budget_words - used
            if room <= 0:
                break
            if len(words) > room:
                if lines:
                    break
                words = words[:room]
            lines.append("- " + " ".join(words))
            used += len(words)
        return "\n".join(lines)


def _read_atomic(path: Path):
    """(column names without types, row iterator) of a RecBole atomic file.

    Our atomic files are plain tab-separated lines (no quoting: text was cleaned when written),
    so a split on tabs reads them; no csv module, whose field-size limit is process-wide.
    """
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found (build the dataset first)")
    handle = open(path, encoding="utf-8", newline="\n")
    header = [h.split(":", 1)[0] for h in handle.readline().rstrip("\n").split("\t")]

    def rows():
        with handle:
            for line_no, line in enumerate(handle, start=2):
                row = line.rstrip("\n").split("\t")
                if len(row) != len(header):
                    raise ValueError(
                        f"{path}:{line_no}: {len(row)} fields, header has {len(header)}"
                    )
                yield dict(zip(header, row))

    return header, rows()


def read_item_table(folder: Path, name: str):
    """The rows (dicts) of ``<folder>/<name>.item``, which must have an ``item_id`` column."""
    path = folder / f"{name}.item"
    header, rows = _read_atomic(path)
    if "item_id" not in header:
        raise ValueError(f"{path}: no item_id column")
    return rows


def item_text(row: dict, prompts: PromptSet) -> str:
    """The text an encoder reads for one row of the ``.item`` file ('' when it has none)."""
    title, desc, cats = (row.get(k, "").strip() for k in ("title", "description", "categories"))
    if not (title or desc or cats):
        return ""
    return prompts.item_text(title, cats, desc, row.get("domain", ""))


def item_rows(folder: Path, name: str, prompts: PromptSet) -> list[Row]:
    rows = read_item_table(folder, name)
    out = []
    for r in rows:
        text = item_text(r, prompts)
        out.append(Row(r["item_id"], text, r.get("image", "").strip(), not text))
    out.sort(key=lambda row: row.id)
    return out


def reviews_by_user(folder: Path, name: str, domain: str) -> dict[str, list[tuple[float, str]]]:
    """Each user's (timestamp, review text) pairs in ``domain`` (``aux`` or ``target``), the
    timestamps from ``<name>.inter`` (0 where the interaction has none)."""
    times: dict[tuple[str, str], float] = {}
    _, inter = _read_atomic(folder / f"{name}.inter")
    for r in inter:
        if r.get("domain") == domain:
            times[(r["user_id"], r["item_id"])] = float(r.get("timestamp") or 0.0)
    path = review_file(folder, name)
    header, reviews = _read_atomic(path)
    if not {"user_id", "item_id", "domain", "text"} <= set(header):
        raise ValueError(f"{path}: needs user_id, item_id, domain and text columns")
    by_user: dict[str, list[tuple[float, str]]] = {}
    for r in reviews:
        if r["domain"] == domain:
            by_user.setdefault(r["user_id"], []).append(
                (times.get((r["user_id"], r["item_id"]), 0.0), r["text"])
            )
    return by_user


def user_text(
    reviews: list[tuple[float, str]], domain: str, prompts: PromptSet, rule: UserTextRule
) -> str:
    """The text the encoder reads for one user in one domain ('' when no review has words)."""
    merged = rule.merge(reviews)
    return prompts.user_text(merged, domain) if merged else ""


def user_rows(
    folder: Path, name: str, domain: str, prompts: PromptSet, rule: UserTextRule
) -> list[Row]:
    """One row per user with reviews in ``domain`` (``aux`` or ``target``)."""
    by_user = reviews_by_user(folder, name, domain)
    out = []
    for user in sorted(by_user):
        text = user_text(by_user[user], domain, prompts, rule)
        out.append(Row(user, text, "", not text))
    return out


def rows_digest(rows: list[Row]) -> str:
    h = hashlib.sha256()
    for r in rows:
        h.update(f"{r.id}\x1f{r.text}\x1f{r.image}\x1e".encode())
    return h.hexdigest()


def texts_digest(rows: list[Row]) -> str:
    """The ids and texts of the rows that have text (what a text encoder reads)."""
    h = hashlib.sha256()
    for r in rows:
        if not r.empty_text:
            h.update(f"{r.id}\x1f{r.text}\x1e".encode())
    return h.hexdigest()
