"""The cross-domain builder on tiny hand-made raw files (Amazon 2023 layout and TSV)."""

from __future__ import annotations

import gzip
import json
import logging
from pathlib import Path

import pandas as pd
import pytest

from dataset_prep import builder, readers
from dataset_prep.atomic_output import clean_text, staged_dataset_dir
from dataset_prep.builder import DomainSource, build_dataset
from dataset_prep.errors import DataError
from dataset_prep.filters import NO_FILTERS, PAPER_FILTERS, FilterSettings, default_filters
from dataset_prep.presets import find_category_files

LONG = "this review has easily more than ten words in it so it passes"  # 13 words
FILTERS = FilterSettings(
    min_review_words=10, require_description=True, require_image=True, min_user_reviews=2
)


# --- tiny raw files ------------------------------------------------------------------------


def rev(user, item, rating=5.0, ts=None, text=LONG, title="Nice"):
    r = {
        "user_id": user,
        "parent_asin": item,
        "asin": item,
        "rating": rating,
        "title": title,
        "text": text,
    }
    r["timestamp"] = ts if ts is not None else 1_600_000_000_000 + sum(map(ord, user + item)) * 1000
    return r


def meta(
    item,
    description="A fine item.",
    image="https://img.example/x.jpg",
    title=None,
    categories=("Cat",),
):
    images = [{"thumb": image, "large": image, "variant": "MAIN", "hi_res": None}] if image else []
    return {
        "parent_asin": item,
        "title": title or f"Title {item}",
        "description": [description] if description else [],
        "features": [],
        "images": images,
        "categories": list(categories),
    }


def write_jsonl(path: Path, records, gz=True) -> Path:
    data = "".join(json.dumps(r) + "\n" for r in records).encode()
    path.write_bytes(gzip.compress(data, mtime=0) if gz else data)
    return path


def write_domain(folder: Path, category: str, reviews, metas) -> DomainSource:
    folder.mkdir(parents=True, exist_ok=True)
    r = write_jsonl(folder / f"{category}.jsonl.gz", reviews)
    m = write_jsonl(folder / f"meta_{category}.jsonl.gz", metas)
    return DomainSource(r, m, "amazon2023", label=category)


def standard_raw(folder: Path) -> tuple[DomainSource, DomainSource]:
    """u1 overlap, u2 aux_only, u3 side; u4/u5 dropped by the user filter; one duplicate;
    reviews of an item without description, of an item without meta, of an item without image."""
    aux_reviews = [
        rev("u1", "m1", 4, ts=1_600_000_001_000),
        rev("u1", "m2", 5, ts=1_600_000_002_000),
        rev("u1", "m1", 1, ts=1_600_000_003_000),  # duplicate (u1, m1): dropped, first kept
        rev("u1", "m4"),  # m4 has no description
        rev("u2", "m1", 3, ts=1_600_000_004_000),
        rev("u2", "m2", 2, ts=1_600_000_005_000),
        rev("u2", "m9"),  # m9 has no meta line
        rev("u4", "m1"),  # u4: only one review -> below min_user_reviews=2
        rev("u5", "m1", text="too short", title=""),  # short
        rev("u5", "m2"),  # u5 then has one review -> dropped
    ]
    aux_meta = [meta("m1"), meta("m2"), meta("m4", description="")]
    target_reviews = [
        rev("u1", "c1", 5, ts=1_600_000_010_000),
        rev("u1", "c2", 4, ts=1_600_000_011_000),
        rev("u3", "c1", 2, ts=1_600_000_012_000),
        rev("u3", "c2", 1, ts=1_600_000_013_000),
        rev("u3", "c3"),  # c3 has no image
    ]
    target_meta = [meta("c1"), meta("c2"), meta("c3", image="")]
    aux = write_domain(folder / "raw", "Movies_and_TV", aux_reviews, aux_meta)
    target = write_domain(folder / "raw", "CDs_and_Vinyl", target_reviews, target_meta)
    return aux, target


def read_atomic(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)


def build(tmp_path, aux, target, name="tiny", filters=FILTERS, **kw):
    return build_dataset(
        name, aux, target, out_root=tmp_path / "out", filters=filters, show_progress=False, **kw
    )


# --- roles, counts, filters ----------------------------------------------------------------


def test_roles_and_counts(tmp_path):
    aux, target = standard_raw(tmp_path)
    result = build(tmp_path, aux, target)
    folder = result.path
    assert folder == tmp_path / "out" / "tiny"

    users = read_atomic(folder / "tiny.user")
    assert list(users.columns) == ["user_id:token", "role:token"]
    assert dict(zip(users["user_id:token"], users["role:token"])) == {
        "u1": "overlap",
        "u2": "aux_only",
        "u3": "side",
    }
    inter = read_atomic(folder / "tiny.inter")
    assert list(inter.columns) == [
        "user_id:token",
        "item_id:token",
        "rating:float",
        "timestamp:float",
        "domain:token",
    ]
    pairs = set(zip(inter["user_id:token"], inter["item_id:token"], inter["domain:token"]))
    assert pairs == {
        ("u1", "m1", "aux"),
        ("u1", "m2", "aux"),
        ("u2", "m1", "aux"),
        ("u2", "m2", "aux"),
        ("u1", "c1", "target"),
        ("u1", "c2", "target"),
        ("u3", "c1", "target"),
        ("u3", "c2", "target"),
    }
    # the first of the duplicate (u1, m1) reviews is the one kept: rating 4, not 1
    row = inter[(inter["user_id:token"] == "u1") & (inter["item_id:token"] == "m1")]
    assert row["rating:float"].tolist() == ["4"]
    assert row["timestamp:float"].tolist() == ["1600000001"]  # ms in the 2023 layout -> seconds
    # sorted by user, timestamp, item
    keys = list(
        zip(inter["user_id:token"], inter["timestamp:float"].astype(float), inter["item_id:token"])
    )
    assert keys == sorted(keys)

    s = result.stats
    assert s["users"] == {"total": 3, "overlap": 1, "side": 1, "aux_only": 1}
    assert s["domains"]["aux"]["users"] == 2 and s["domains"]["aux"]["items"] == 2
    assert s["domains"]["target"]["interactions"] == 4
    assert s["domains"]["aux"]["density"] == pytest.approx(4 / (2 * 2))
    a, t = s["dropped"]["aux"], s["dropped"]["target"]
    assert a["reviews_read"] == 10
    assert a["items_no_description"] == 1 and a["reviews_item_filtered"] == 1
    assert a["reviews_item_no_meta"] == 1
    assert a["reviews_too_short"] == 1
    assert a["duplicates"] == 1
    assert a["users_below_min"] == 2  # u4 and u5
    assert a["reviews_of_users_below_min"] == 2
    assert t["items_no_image"] == 1 and t["reviews_item_filtered"] == 1
    assert json.loads((folder / "stats.json").read_text()) == s
    assert "overlap 1" in (folder / "stats.md").read_text()


def test_each_filter_can_be_turned_off(tmp_path):
    aux, target = standard_raw(tmp_path)
    result = build(tmp_path, aux, target, filters=NO_FILTERS)
    inter = read_atomic(result.path / "tiny.inter")
    pairs = set(zip(inter["user_id:token"], inter["item_id:token"]))
    # no description/image/length/user filters: m4, c3, u4, u5 are back; m9 (no meta) stays out
    assert {("u1", "m4"), ("u3", "c3"), ("u4", "m1"), ("u5", "m1"), ("u5", "m2")} <= pairs
    assert ("u2", "m9") not in pairs
    assert result.stats["dropped"]["aux"]["duplicates"] == 1  # duplicates always go
    assert len(inter) == 13  # 10 + 5 read, less one duplicate and one review without meta
    # items without description/image were not counted with those filters off: not "0"
    assert result.stats["dropped"]["aux"]["items_no_description"] is None
    assert result.stats["dropped"]["target"]["items_no_image"] is None
    stats_md = (result.path / "stats.md").read_text()
    assert "| items without description | not checked (filter off) |" in stats_md


def test_default_filters_by_layout():
    assert default_filters("amazon2023") == PAPER_FILTERS
    assert PAPER_FILTERS.min_review_words == 10 and PAPER_FILTERS.min_user_reviews == 20
    assert default_filters("csv") == NO_FILTERS
    assert NO_FILTERS.with_overrides(min_user_reviews=5, require_image=None).min_user_reviews == 5


def test_colliding_items_dropped_from_both(tmp_path, caplog):
    aux = write_domain(
        tmp_path / "raw",
        "A",
        [rev("u1", "m1"), rev("u1", "x1"), rev("u1", "m2"), rev("u2", "m1"), rev("u2", "m2")],
        [meta("m1"), meta("m2"), meta("x1")],
    )
    target = write_domain(
        tmp_path / "raw",
        "B",
        [rev("u1", "c1"), rev("u1", "x1"), rev("u1", "c2"), rev("u3", "c1"), rev("u3", "c2")],
        [meta("c1"), meta("c2"), meta("x1")],
    )
    with caplog.at_level(logging.WARNING):
        result = build(tmp_path, aux, target)
    inter = read_atomic(result.path / "tiny.inter")
    assert "x1" not in set(inter["item_id:token"])
    items = read_atomic(result.path / "tiny.item")
    assert "x1" not in set(items["item_id:token"])
    assert result.stats["dropped"]["aux"]["colliding_items"] == 1
    assert result.stats["dropped"]["target"]["reviews_of_colliding_items"] == 1
    assert "both domains" in caplog.text


# --- output format -------------------------------------------------------------------------


def write_tsv(path: Path, header, rows) -> Path:
    path.write_text("\n".join("\t".join(map(str, r)) for r in [header, *rows]) + "\n")
    return path


def tabular_raw(folder: Path) -> tuple[DomainSource, DomainSource]:
    folder.mkdir(parents=True, exist_ok=True)
    inter = write_tsv(
        folder / "interactions.tsv",
        ["user_id", "item_id", "domain", "position"],
        [
            ("a", "f1", "food", 0),
            ("a", "k1", "kitchen", 1),
            ("b", "f2", "food", 0),
            ("c", "k2", "kitchen", 0),
            ("c", "k1", "kitchen", 1),
        ],
    )
    items = write_tsv(
        folder / "items.tsv",
        ["item_id", "domain", "title"],
        [
            ("f1", "food", "Tea"),
            ("f2", "food", "Jam"),
            ("k1", "kitchen", "Pot"),
            ("k2", "kitchen", "Pan"),
        ],
    )
    aux = DomainSource(inter, items, "csv", where={"domain": "food"})
    target = DomainSource(inter, items, "csv", where={"domain": "kitchen"})
    return aux, target


def test_implicit_feedback_from_tsv(tmp_path):
    aux, target = tabular_raw(tmp_path / "raw")
    result = build(tmp_path, aux, target, name="fk", filters=default_filters("csv"))
    folder = result.path
    inter = read_atomic(folder / "fk.inter")
    assert list(inter.columns) == [
        "user_id:token",
        "item_id:token",
        "timestamp:float",
        "domain:token",
    ]
    assert inter.values.tolist() == [
        ["a", "f1", "0", "aux"],
        ["a", "k1", "1", "target"],
        ["b", "f2", "0", "aux"],
        ["c", "k2", "0", "target"],
        ["c", "k1", "1", "target"],
    ]
    cfg = __import__("yaml").safe_load((folder / "fk.yaml").read_text())
    assert cfg["RATING_FIELD"] is None and cfg["feedback"] == "implicit"
    assert cfg["load_col"]["inter"] == ["user_id", "item_id", "timestamp", "domain"]
    assert set(cfg["load_col"]) == {"inter"}
    assert cfg["valid_metric"] == "NDCG@20"
    assert (cfg["aux_domain"], cfg["target_domain"], cfg["generated"]) == ("food", "kitchen", False)
    assert result.stats["feedback"] == "implicit"
    assert result.stats["users"] == {"total": 3, "overlap": 1, "side": 1, "aux_only": 1}
    items = read_atomic(folder / "fk.item")
    assert list(items.columns) == [
        "item_id:token",
        "domain:token",
        "title:token_seq",
        "description:token_seq",
        "categories:token_seq",
        "image:token",
    ]
    assert dict(zip(items["item_id:token"], items["title:token_seq"]))["k1"] == "Pot"
    review = read_atomic(folder / "fk.review")
    assert list(review.columns) == [
        "user_id:token",
        "item_id:token",
        "domain:token",
        "text:token_seq",
    ]
    assert review.empty  # no review text in the source
    build_json = json.loads((folder / "build.json").read_text())
    assert build_json["generated"] is False and build_json["inputs"]["aux"]["where"] == {
        "domain": "food"
    }


def test_explicit_config_and_text_cleaning(tmp_path):
    aux, target = standard_raw(tmp_path)
    # rewrite the aux files with dirty text
    nasty = 'He said "great"\tfilm\r\nsecond   line with many more words here to pass'
    aux = write_domain(
        tmp_path / "raw",
        "Movies_and_TV",
        [
            rev("u1", "m1", text=nasty, title='A "quoted"\ttitle'),
            rev("u1", "m2"),
            rev("u2", "m1"),
            rev("u2", "m2"),
        ],
        [
            meta("m1", title='The "Best"\tMovie\nEver', description="Line one\nline\ttwo"),
            meta("m2"),
        ],
    )
    result = build(tmp_path, aux, target)
    folder = result.path
    cfg = __import__("yaml").safe_load((folder / "tiny.yaml").read_text())
    assert cfg["RATING_FIELD"] == "rating" and cfg["feedback"] == "explicit"
    assert cfg["load_col"]["inter"] == ["user_id", "item_id", "rating", "timestamp", "domain"]
    review = read_atomic(folder / "tiny.review")
    text = review[(review["user_id:token"] == "u1") & (review["item_id:token"] == "m1")][
        "text:token_seq"
    ].item()
    assert (
        text
        == "A 'quoted' title He said 'great' film second line with many more words here to pass"
    )
    raw = (folder / "tiny.item").read_text()
    assert '"' not in raw and "\r" not in raw
    items = read_atomic(folder / "tiny.item")
    row = items[items["item_id:token"] == "m1"].iloc[0]
    assert row["title:token_seq"] == "The 'Best' Movie Ever"
    assert row["description:token_seq"] == "Line one line two"
    assert row["image:token"] == "https://img.example/x.jpg"
    # every line has exactly the header's number of fields
    for f in folder.glob("tiny.*"):
        if f.suffix != ".yaml":
            lines = f.read_text().splitlines()
            assert {ln.count("\t") for ln in lines} == {lines[0].count("\t")}, f.name


def test_clean_text():
    assert clean_text(' a\t"b"\r\n\n  c ') == "a 'b' c"
    assert clean_text(None) == ""


def test_local_images_copied_and_missing_counts_as_none(tmp_path):
    raw = tmp_path / "raw"
    (raw / "img").mkdir(parents=True)
    (raw / "img" / "m1.png").write_bytes(b"\x89PNG fake")
    (raw / "img" / "m2.png").write_bytes(b"\x89PNG other")
    aux = write_domain(
        raw,
        "A",
        [rev("u1", "m1"), rev("u1", "m2"), rev("u1", "m3"), rev("u2", "m1"), rev("u2", "m2")],
        [
            meta("m1", image="img/m1.png"),
            meta("m2", image="img/m2.png"),
            meta("m3", image="img/gone.png"),
        ],
    )
    _, target = standard_raw(tmp_path)
    result = build(tmp_path, aux, target)
    items = read_atomic(result.path / "tiny.item")
    images = dict(zip(items["item_id:token"], items["image:token"]))
    assert images["m1"] == "images/m1.png"
    assert (result.path / "images" / "m1.png").read_bytes() == b"\x89PNG fake"
    assert "m3" not in images  # missing local file = no image = filtered
    assert result.stats["dropped"]["aux"]["items_no_image"] == 1


# --- errors --------------------------------------------------------------------------------


def test_empty_domain_error_names_domain_and_filter(tmp_path):
    aux, _ = standard_raw(tmp_path)
    target = write_domain(
        tmp_path / "raw2", "CDs_and_Vinyl", [rev("u1", "c1", text="short", title="")], [meta("c1")]
    )
    with pytest.raises(DataError) as err:
        build(tmp_path, aux, target)
    msg = str(err.value)
    assert "target domain 'CDs_and_Vinyl'" in msg
    assert "min_review_words=10" in msg
    assert "CDs_and_Vinyl.jsonl.gz" in msg
    assert not (tmp_path / "out" / "tiny").exists()


def test_no_overlap_error(tmp_path):
    aux, target = standard_raw(tmp_path)
    target = write_domain(
        tmp_path / "raw2",
        "CDs_and_Vinyl",
        [rev("z1", "c1"), rev("z1", "c2")],
        [meta("c1"), meta("c2")],
    )
    with pytest.raises(DataError, match="no user is in both domains") as err:
        build(tmp_path, aux, target)
    assert "Movies_and_TV" in str(err.value) and "CDs_and_Vinyl" in str(err.value)


# --- atomicity, resume, determinism --------------------------------------------------------


def test_failed_build_leaves_old_dataset_and_no_temp(tmp_path, monkeypatch):
    aux, target = standard_raw(tmp_path)
    first = build(tmp_path, aux, target)
    before = {p.name: p.read_bytes() for p in first.path.iterdir() if p.is_file()}

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(builder, "_write_reviews", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        build(tmp_path, aux, target, filters=NO_FILTERS)
    after = {p.name: p.read_bytes() for p in first.path.iterdir() if p.is_file()}
    assert after == before
    assert [
        p.name for p in (tmp_path / "out").iterdir() if ".tmp-" in p.name or ".old-" in p.name
    ] == []


def test_staged_dir_interrupted(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with staged_dataset_dir(tmp_path, "d") as tmp:
            (tmp / "half").write_text("x")
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_resume_reuses_aux_spool(tmp_path, monkeypatch, caplog):
    aux, target = standard_raw(tmp_path)
    read = []
    real = readers.read_reviews
    fail_target = [True]

    def spy(path, *args, **kwargs):
        read.append(Path(path).name)
        if fail_target[0] and Path(path) == target.reviews:
            raise KeyboardInterrupt  # Ctrl-C while reading the target domain
        return real(path, *args, **kwargs)

    monkeypatch.setattr(readers, "read_reviews", spy)
    with pytest.raises(KeyboardInterrupt):
        build(tmp_path, aux, target)
    assert read == ["Movies_and_TV.jsonl.gz", "CDs_and_Vinyl.jsonl.gz"]
    assert (tmp_path / "out" / ".work" / "tiny" / "aux" / "done.json").is_file()

    read.clear()
    fail_target[0] = False
    with caplog.at_level(logging.INFO):
        result = build(tmp_path, aux, target)
    assert read == ["CDs_and_Vinyl.jsonl.gz"]  # the aux reviews were not read again
    assert result.reused_domains == ("aux",)
    assert "reusing the aux spool" in caplog.text
    assert result.stats["dropped"]["aux"]["duplicates"] == 1  # counts come back from the cache
    assert not (tmp_path / "out" / ".work").exists()  # deleted after success

    # other settings invalidate the cache
    read.clear()
    build(tmp_path, aux, target, keep_work=True)
    assert read == ["Movies_and_TV.jsonl.gz", "CDs_and_Vinyl.jsonl.gz"]
    read.clear()
    build(tmp_path, aux, target, filters=FilterSettings(min_review_words=3, min_user_reviews=2))
    assert read == ["Movies_and_TV.jsonl.gz", "CDs_and_Vinyl.jsonl.gz"]


def test_rerun_is_byte_identical(tmp_path):
    aux, target = standard_raw(tmp_path)

    def snapshot(folder):
        return {
            p.name: p.read_bytes()
            for p in folder.iterdir()
            if p.is_file() and p.name != "build.json"
        }

    first = snapshot(build(tmp_path, aux, target).path)
    second = snapshot(build(tmp_path, aux, target).path)
    assert first == second
    assert set(first) == {
        "tiny.inter",
        "tiny.item",
        "tiny.user",
        "tiny.review",
        "tiny.yaml",
        "stats.json",
        "stats.md",
    }


# --- presets -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("names", "layout"),
    [
        (["Books.jsonl.gz", "meta_Books.jsonl.gz"], "amazon2023"),
        (["Books.jsonl", "meta_Books.jsonl"], "amazon2023"),
        (["Books_5.json.gz", "meta_Books.json.gz"], "amazon2018"),
        (["Books.json", "meta_Books.json"], "amazon2018"),
        (["reviews_Books_5.json.gz", "meta_Books.json.gz"], "amazon2014"),
    ],
)
def test_presets_find_official_names(tmp_path, names, layout):
    for n in names:
        (tmp_path / n).write_text("")
    found = find_category_files("Books", tmp_path)
    assert (found.reviews.name, found.meta.name, found.layout) == (names[0], names[1], layout)


def test_presets_missing_files_lists_names(tmp_path):
    (tmp_path / "Books.jsonl.gz").write_text("")
    with pytest.raises(DataError) as err:
        find_category_files("Books", tmp_path)
    msg = str(err.value)
    assert (
        str(tmp_path) in msg and "meta_Books.jsonl.gz" in msg and "reviews_Books_5.json.gz" in msg
    )


def rated_tabular_raw(folder: Path, empty_cell: bool) -> tuple[DomainSource, DomainSource]:
    folder.mkdir(parents=True, exist_ok=True)
    rows = [
        ("a", "f1", "food", 0, 5),
        ("a", "k1", "kitchen", 1, 4),
        ("b", "f2", "food", 0, 3),
        ("c", "k2", "kitchen", 0, 2),
        ("c", "k1", "kitchen", 1, "" if empty_cell else 1),
    ]
    inter = write_tsv(
        folder / "interactions.tsv", ["user_id", "item_id", "domain", "position", "rating"], rows
    )
    items = write_tsv(
        folder / "items.tsv",
        ["item_id", "domain", "title"],
        [
            ("f1", "food", "Tea"),
            ("f2", "food", "Jam"),
            ("k1", "kitchen", "Pot"),
            ("k2", "kitchen", "Pan"),
        ],
    )
    aux = DomainSource(inter, items, "csv", where={"domain": "food"})
    target = DomainSource(inter, items, "csv", where={"domain": "kitchen"})
    return aux, target


def test_an_empty_rating_cell_is_a_bad_line_not_implicit_feedback(tmp_path, caplog):
    aux, target = rated_tabular_raw(tmp_path / "raw", empty_cell=True)
    with caplog.at_level(logging.WARNING):
        result = build(tmp_path, aux, target, name="fk", filters=default_filters("csv"))
    assert result.stats["feedback"] == "explicit"  # the other ratings are kept
    inter = read_atomic(result.path / "fk.inter")
    assert "rating:float" in inter.columns and len(inter) == 4  # the bad line is dropped
    assert "interactions.tsv:6: field 'rating': missing" in caplog.text
    with pytest.raises(DataError, match=r"interactions.tsv:6: field 'rating': missing"):
        build(tmp_path, aux, target, name="fk2", filters=default_filters("csv"), max_bad_lines=0)


def test_a_domain_without_ratings_makes_the_data_implicit_and_says_so(tmp_path, caplog):
    aux, target = rated_tabular_raw(tmp_path / "raw", empty_cell=False)
    unrated, _ = tabular_raw(tmp_path / "unrated")  # food without a rating column
    with caplog.at_level(logging.WARNING):
        result = build(tmp_path, unrated, target, name="fk", filters=default_filters("csv"))
    assert result.stats["feedback"] == "implicit"
    assert "domain(s) ['food'] have no ratings, ['kitchen'] have" in caplog.text
