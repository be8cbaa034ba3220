"""Table-1-style statistics of a built dataset, and what each filter dropped.

:class:`DomainCounts` is the funnel of one domain (counted while building);
:func:`dataset_stats` puts it together with the final interactions into a JSON-able dict, which
:func:`format_table` prints and :func:`write_stats` stores as ``stats.json`` / ``stats.md``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import pandas as pd

from dataset_prep.layout import AUX, DOMAINS, TARGET


@dataclass
class DomainCounts:
    """What happened to one domain's records, step by step."""

    items_in_meta: int = 0
    items_no_description: int = 0  # an item may fail both item filters
    items_no_image: int = 0
    items_passing: int = 0
    reviews_read: int = 0
    reviews_item_no_meta: int = 0  # the item has no meta line at all
    reviews_item_filtered: int = 0  # the item failed an item filter
    reviews_too_short: int = 0
    duplicates: int = 0  # same user, same item again (among users that could pass the user filter)
    users_below_min: int = 0
    reviews_of_users_below_min: int = 0
    colliding_items: int = 0  # item ids present in both domains, dropped from both
    reviews_of_colliding_items: int = 0
    interactions: int = 0  # kept in the end

    @classmethod
    def from_dict(cls, data: dict) -> DomainCounts:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def as_dict(self) -> dict:
        return asdict(self)


# (key, label) of the drop counts shown in the tables, in funnel order
DROP_ROWS = (
    ("reviews_read", "reviews read"),
    ("items_in_meta", "items in meta"),
    ("items_no_description", "items without description"),
    ("items_no_image", "items without image"),
    ("reviews_item_no_meta", "reviews: item has no meta"),
    ("reviews_item_filtered", "reviews: item filtered out"),
    ("reviews_too_short", "reviews: too short"),
    ("duplicates", "reviews: duplicate user-item"),
    ("users_below_min", "users below min reviews"),
    ("reviews_of_users_below_min", "reviews of those users"),
    ("colliding_items", "items in both domains"),
    ("reviews_of_colliding_items", "reviews of those items"),
    ("interactions", "interactions kept"),
)

# Counts made only while their filter is on: with it off, nothing was checked (not "0").
COUNTED_BY_FILTER = {
    "items_no_description": "require_description",
    "items_no_image": "require_image",
}


def _domain_block(inter: pd.DataFrame, label: str) -> dict:
    users = int(inter["user_id"].nunique())
    items = int(inter["item_id"].nunique())
    n = len(inter)
    return {
        "name": label,
        "users": users,
        "items": items,
        "interactions": n,
        "density": (n / (users * items)) if users and items else 0.0,
    }


def dataset_stats(
    name: str,
    inter: pd.DataFrame,
    roles: pd.Series,
    counts: dict[str, DomainCounts],
    labels: dict[str, str],
    *,
    feedback: str,
    generated: bool,
    filters: dict,
) -> dict:
    """The statistics dict. ``inter`` has ``user_id``, ``item_id``, ``domain`` (``aux``/``target``);
    ``roles`` maps user id to ``overlap``/``side``/``aux_only``."""
    role_counts = roles.value_counts()
    return {
        "dataset": name,
        "generated": bool(generated),
        "feedback": feedback,
        "aux_domain": labels[AUX],
        "target_domain": labels[TARGET],
        "domains": {d: _domain_block(inter[inter["domain"] == d], labels[d]) for d in DOMAINS},
        "users": {
            "total": int(len(roles)),
            "overlap": int(role_counts.get("overlap", 0)),
            "side": int(role_counts.get("side", 0)),
            "aux_only": int(role_counts.get("aux_only", 0)),
        },
        "items": int(inter["item_id"].nunique()),
        "interactions": int(len(inter)),
        "filters": dict(filters),
        "dropped": {d: _checked_counts(counts[d], filters) for d in DOMAINS},
    }


def _checked_counts(counts: DomainCounts, filters: dict) -> dict:
    """The funnel's counts; ``None`` for a count whose filter was off (not checked)."""
    result = counts.as_dict()
    for key, flag in COUNTED_BY_FILTER.items():
        if not filters.get(flag, True):
            result[key] = None
    return result


def _rows(stats: dict) -> tuple[list[list[str]], list[list[str]]]:
    doms = stats["domains"]
    table = [["domain", "name", "users", "items", "interactions", "density"]]
    for d in DOMAINS:
        b = doms[d]
        table.append(
            [
                d,
                b["name"],
                f"{b['users']:,}",
                f"{b['items']:,}",
                f"{b['interactions']:,}",
                f"{b['density']:.6f}",
            ]
        )
    drops = [["step", f"aux ({doms['aux']['name']})", f"target ({doms['target']['name']})"]]
    for key, label in DROP_ROWS:
        drops.append([label, *(_count(stats["dropped"][d][key]) for d in DOMAINS)])
    return table, drops


def _count(value: int | None) -> str:
    return "not checked (filter off)" if value is None else f"{value:,}"


def _plain(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = []
    for r in rows:
        cells = [r[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(r[1:], widths[1:])]
        out.append("  ".join(cells).rstrip())
    return "\n".join(out)


def _markdown(rows: list[list[str]]) -> str:
    head, *body = rows
    lines = [
        "| " + " | ".join(head) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|",
    ]
    lines += ["| " + " | ".join(r) + " |" for r in body]
    return "\n".join(lines)


def _users_line(stats: dict) -> str:
    u = stats["users"]
    return (
        f"users: {u['total']:,} in all — overlap {u['overlap']:,}, side (target only) {u['side']:,}, "
        f"aux-only {u['aux_only']:,}"
    )


def _title(stats: dict) -> str:
    kind = "GENERATED (synthetic demo) data" if stats["generated"] else "real data"
    return (
        f"{stats['dataset']}: {stats['aux_domain']} -> {stats['target_domain']}, "
        f"{stats['feedback']} feedback, {kind}"
    )


def _filters_line(stats: dict) -> str:
    return "filters: " + ", ".join(f"{k}={v}" for k, v in stats["filters"].items())


def format_table(stats: dict) -> str:
    """The statistics as plain text for the terminal."""
    table, drops = _rows(stats)
    return "\n".join(
        [
            _title(stats),
            "",
            _plain(table),
            "",
            _users_line(stats),
            _filters_line(stats),
            "",
            _plain(drops),
        ]
    )


def format_markdown(stats: dict) -> str:
    table, drops = _rows(stats)
    return "\n".join(
        [
            f"# {_title(stats)}",
            "",
            _markdown(table),
            "",
            _users_line(stats),
            "",
            _filters_line(stats),
            "",
            "## What each step dropped",
            "",
            _markdown(drops),
            "",
        ]
    )


def write_stats(folder: Path, stats: dict) -> None:
    """``stats.json`` and ``stats.md`` in ``folder``."""
    (folder / "stats.json").write_text(json.dumps(stats, indent=2) + "\n", encoding="utf-8")
    (folder / "stats.md").write_text(format_markdown(stats), encoding="utf-8")
