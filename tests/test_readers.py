"""Raw-data readers: every layout, plain and gzipped, and every kind of bad input."""

from __future__ import annotations

import gzip
import json
import os

import pytest

from dataset_prep.errors import DataError
from dataset_prep.readers import LAYOUTS, detect_layout, lines, read_items, read_reviews


def write(directory, name: str, rows: list, gz: bool = False):
    """Write ``rows`` (dicts → JSON, str → as is, bytes → raw) one per line; gzip if asked."""
    data = b"".join(
        (
            row
            if isinstance(row, bytes)
            else (json.dumps(row) if isinstance(row, dict) else row).encode()
        )
        + b"\n"
        for row in rows
    )
    path = directory / name
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


REVIEW_2023 = {
    "rating": 4.0,
    "title": "Fine film",
    "text": "Watched it twice.",
    "images": [],
    "asin": "B01VARIANT",
    "parent_asin": "B01PARENT",
    "user_id": "AUSER1",
    "timestamp": 1588687728923,
    "helpful_vote": 2,
    "verified_purchase": True,
}
META_2023 = {
    "main_category": "Movies & TV",
    "title": "A Film",
    "features": ["Widescreen", ""],
    "description": ["First paragraph.", "Second one."],
    "images": [
        {"thumb": "t.jpg", "large": None, "hi_res": "h.jpg", "variant": "MAIN"},
        {"thumb": "t2.jpg", "large": "l2.jpg", "variant": "PT01"},
    ],
    "categories": ["Movies & TV", "Drama"],
    "details": {"Director": "Someone"},
    "parent_asin": "B01PARENT",
}
REVIEW_2018 = {
    "overall": 5.0,
    "verified": True,
    "reviewTime": "06 17, 2018",
    "reviewerID": "A31U",
    "asin": "B004",
    "style": {"Gift Amount:": " 50"},
    "reviewerName": "john",
    "reviewText": "Another great gift.",
    "summary": "Five Stars",
    "unixReviewTime": 1529193600,
}
META_2018 = {
    "category": ["Gift Cards", "Gift Cards", "Restaurants"],
    "tech1": "",
    "description": ["Card for a restaurant.", ""],
    "title": "Serendipity Gift Card",
    "feature": ["No fees"],
    "rank": "1,786 in Gift Cards (",
    "details": {"\n    Product Dimensions: \n    ": "3.4 x 2.1 inches"},
    "main_cat": "Grocery",
    "price": "",
    "asin": "B001",
    "imageURL": ["small.jpg"],
    "imageURLHighRes": ["big.jpg"],
}
REVIEW_2014 = {
    "reviewerID": "A2SU",
    "asin": "0000013714",
    "reviewerName": "J. McDonald",
    "helpful": [2, 3],
    "reviewText": "I bought this for my husband.",
    "overall": 5.0,
    "summary": "Heavenly Highway Hymns",
    "unixReviewTime": 1252800000,
    "reviewTime": "09 13, 2009",
}
# 2014 metadata lines are Python literals (single quotes), not JSON.
META_2014 = (
    "{'asin': '0000031852', 'title': 'Girls Ballet Tutu', 'price': 3.17, "
    "'imUrl': 'http://ecx.images-amazon.com/images/I/51fAmVkTbyL._SY300_.jpg', "
    "'related': {'also_bought': ['B00JHONN1S']}, 'salesRank': {'Toys & Games': 211836}, "
    "'categories': [['Clothing, Shoes & Jewelry', 'Girls'], ['Clothing, Shoes & Jewelry', 'Novelty'], "
    "['Sports & Outdoors']], 'description': 'A tutu for little dancers.'}"
)


def strict(path, reader=read_reviews, **kwargs):
    """Read with no bad line allowed; return the DataError raised."""
    with pytest.raises(DataError) as caught:
        list(reader(path, max_bad_lines=0, **kwargs))
    return caught.value


# --- Amazon 2023 ---------------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [False, True])
def test_2023_reviews(tmp_path, gz):
    no_parent = {
        **REVIEW_2023,
        "parent_asin": None,
        "user_id": 12345,
        "timestamp": 1000,
        "title": None,
    }
    path = write(tmp_path, "Movies.jsonl" + (".gz" if gz else ""), [REVIEW_2023, "", no_parent])
    first, second = read_reviews(path)
    assert (first.user_id, first.item_id, first.rating) == ("AUSER1", "B01PARENT", 4.0)
    assert first.timestamp == pytest.approx(1588687728.923)
    assert (first.text, first.summary, first.line) == ("Watched it twice.", "Fine film", 1)
    # no parent_asin → asin; an int id → str; the blank line is skipped but still counted
    assert (second.user_id, second.item_id, second.timestamp) == ("12345", "B01VARIANT", 1.0)
    assert (second.summary, second.line) == ("", 3)


@pytest.mark.parametrize("gz", [False, True])
def test_2023_items(tmp_path, gz):
    bare = {"parent_asin": "B02", "title": None, "images": [], "description": "Just a string."}
    path = write(tmp_path, "meta_Movies.jsonl" + (".gz" if gz else ""), [META_2023, bare])
    item, other = read_items(path, "amazon2023")
    assert (item.item_id, item.title) == ("B01PARENT", "A Film")
    assert item.description == "First paragraph. Second one. Widescreen"
    assert item.categories == ("Movies & TV", "Drama")  # main_category first, no repeat
    assert item.image == "h.jpg"  # the first image: large is null there, so hi_res
    assert (other.title, other.description, other.categories, other.image) == (
        "",
        "Just a string.",
        (),
        "",
    )


def test_2023_image_falls_back_to_thumb(tmp_path):
    path = write(
        tmp_path, "meta.jsonl", [{**META_2023, "images": [{"thumb": "t.jpg", "large": ""}]}]
    )
    assert next(read_items(path)).image == "t.jpg"


# --- Amazon 2018 / 2014 ----------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [False, True])
def test_2018_reviews_and_items(tmp_path, gz):
    suffix = ".json.gz" if gz else ".json"
    no_text = {key: value for key, value in REVIEW_2018.items() if key != "reviewText"}
    reviews = list(read_reviews(write(tmp_path, "Gift_Cards" + suffix, [REVIEW_2018, no_text])))
    assert [(r.user_id, r.item_id, r.rating, r.timestamp) for r in reviews] == [
        ("A31U", "B004", 5.0, 1529193600.0)
    ] * 2
    assert (reviews[0].text, reviews[0].summary, reviews[1].text) == (
        "Another great gift.",
        "Five Stars",
        "",
    )

    bare = {"asin": "B002", "title": "", "description": "", "imageURL": [], "imageURLHighRes": []}
    item, other = read_items(write(tmp_path, "meta_Gift_Cards" + suffix, [META_2018, bare]))
    assert (item.item_id, item.title, item.image) == ("B001", "Serendipity Gift Card", "big.jpg")
    assert item.description == "Card for a restaurant. No fees"
    assert item.categories == ("Gift Cards", "Restaurants")
    assert (other.item_id, other.description, other.categories, other.image) == ("B002", "", (), "")


def test_2018_image_falls_back_to_low_res(tmp_path):
    path = write(tmp_path, "meta.json", [{**META_2018, "imageURLHighRes": []}])
    assert next(read_items(path, "amazon2018")).image == "small.jpg"


@pytest.mark.parametrize("gz", [False, True])
def test_2014_python_literal_meta(tmp_path, gz):
    path = write(tmp_path, "meta_Clothing.json" + (".gz" if gz else ""), [META_2014])
    assert detect_layout(path) == "amazon2014"
    (item,) = read_items(path, max_bad_lines=0)
    assert (item.item_id, item.title, item.description) == (
        "0000031852",
        "Girls Ballet Tutu",
        "A tutu for little dancers.",
    )
    # paths flattened, de-duplicated, order kept
    assert item.categories == ("Clothing, Shoes & Jewelry", "Girls", "Novelty", "Sports & Outdoors")
    assert item.image.endswith("51fAmVkTbyL._SY300_.jpg")


def test_2014_reviews(tmp_path):
    path = write(tmp_path, "reviews_Books.json", [REVIEW_2014])
    assert detect_layout(path) == "amazon2014"
    (review,) = read_reviews(path)
    assert (review.user_id, review.item_id, review.rating, review.timestamp) == (
        "A2SU",
        "0000013714",
        5.0,
        1252800000.0,
    )


def test_python_literals_only_for_legacy_layouts(tmp_path):
    path = write(tmp_path, "meta.jsonl", [META_2014.replace("'asin'", "'parent_asin'")])
    error = strict(path, read_items, layout="amazon2023")
    assert (error.line, error.field) == (1, "json")


# --- bad lines -------------------------------------------------------------------------------------

BAD_2023_REVIEWS = [
    ('{"rating": 4.0, "user_id": "A"', "json", "malformed JSON"),
    ("[1, 2]", "json", "expected an object"),
    ({**REVIEW_2023, "rating": 7.0}, "rating", "7.0 is outside 1..5"),
    ({**REVIEW_2023, "rating": 0}, "rating", "0 is outside 1..5"),
    ({**REVIEW_2023, "rating": True}, "rating", "expected a number, got bool"),
    ({**REVIEW_2023, "rating": "5"}, "rating", "expected a number, got str"),
    ({**REVIEW_2023, "rating": None}, "rating", "missing"),
    ({k: v for k, v in REVIEW_2023.items() if k != "user_id"}, "user_id", "missing"),
    ({**REVIEW_2023, "user_id": {"id": 1}}, "user_id", "expected a string id, got dict"),
    ({**REVIEW_2023, "parent_asin": ["B"]}, "parent_asin", "expected a string id, got list"),
    ({**REVIEW_2023, "title": {"t": 1}}, "title", "expected a string, got dict"),
    ({**REVIEW_2023, "timestamp": "yesterday"}, "timestamp", "expected a number, got str"),
    ({k: v for k, v in REVIEW_2023.items() if k != "timestamp"}, "timestamp", "missing"),
    ({**REVIEW_2023, "timestamp": -1000}, "timestamp", "outside 0..4102444800000 (milli"),
    ({**REVIEW_2023, "timestamp": 1e30}, "timestamp", "outside 0..4102444800000"),
    ("\xe9t\xe9".encode("latin-1"), "encoding", "not valid UTF-8"),
]


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize(("bad", "field", "message"), BAD_2023_REVIEWS)
def test_bad_review_line_names_file_line_and_field(tmp_path, gz, bad, field, message):
    path = write(tmp_path, "Movies.jsonl" + (".gz" if gz else ""), [REVIEW_2023, bad, REVIEW_2023])
    error = strict(path)
    assert (error.path, error.line, error.field) == (str(path), 2, field)
    assert message in error.message
    assert str(error).startswith(f"{path}:2: field '{field}': ")
    # under the default budget the bad line is skipped and the others read
    assert [r.line for r in read_reviews(path)] == [1, 3]


def test_rating_error_text(tmp_path):
    path = write(tmp_path, "Movies.jsonl", [REVIEW_2023] * 16 + [{**REVIEW_2023, "rating": 7.0}])
    assert str(strict(path)) == f"{path}:17: field 'rating': 7.0 is outside 1..5"


BAD_ITEMS = [
    ("amazon2023", {**META_2023, "title": {"en": "x"}}, "title"),
    ("amazon2023", {**META_2023, "description": {"p": 1}}, "description"),
    ("amazon2023", {**META_2023, "features": [1, 2]}, "features"),
    ("amazon2023", {**META_2023, "images": "x.jpg"}, "images"),
    ("amazon2023", {**META_2023, "images": ["x.jpg"]}, "images"),
    ("amazon2023", {**META_2023, "parent_asin": None}, "parent_asin"),
    ("amazon2018", {**META_2018, "category": 5}, "category"),
    ("amazon2018", {**META_2018, "imageURL": [], "imageURLHighRes": [{"u": 1}]}, "imageURLHighRes"),
    ("amazon2018", {k: v for k, v in META_2018.items() if k != "asin"}, "asin"),
    ("amazon2014", {"asin": "A1", "categories": "Books"}, "categories"),
    ("amazon2014", {"asin": "A1", "imUrl": ["a.jpg"]}, "imUrl"),
]


@pytest.mark.parametrize(("layout", "bad", "field"), BAD_ITEMS)
def test_bad_item_line_names_the_field(tmp_path, layout, bad, field):
    path = write(tmp_path, "meta.json", [bad])
    error = strict(path, read_items, layout=layout)
    assert (error.line, error.field) == (1, field)
    assert str(error).startswith(f"{path}:1: field '{field}': ")


def test_bad_line_budget(tmp_path, caplog):
    rows = [REVIEW_2023, "not json", {**REVIEW_2023, "rating": 9}, REVIEW_2023, b"\xff\xfe"]
    path = write(tmp_path, "Movies.jsonl", rows)
    assert [r.line for r in read_reviews(path, max_bad_lines=3)] == [1, 4]
    assert "skipped 3 bad line(s)" in caplog.text
    with pytest.raises(DataError, match="3 bad lines, more than the allowed 2") as caught:
        list(read_reviews(path, max_bad_lines=2))
    assert (caught.value.line, caught.value.field) == (5, "encoding")


@pytest.mark.parametrize("layout", ["amazon2023", "amazon2018"])
def test_truncated_gzip_is_always_an_error(tmp_path, layout):
    data = gzip.compress(b"".join(json.dumps(REVIEW_2023).encode() + b"\n" for _ in range(200)))
    path = tmp_path / "Movies.jsonl.gz"
    path.write_bytes(data[:-20])  # cut inside the last deflate block / the trailer
    with pytest.raises(
        DataError, match=r"truncated or corrupt gzip stream after line \d+"
    ) as caught:
        list(read_reviews(path, layout, max_bad_lines=10**6))
    assert caught.value.path == str(path)


def test_corrupt_gzip_is_an_error(tmp_path):
    data = bytearray(
        gzip.compress(b"".join(json.dumps(REVIEW_2023).encode() + b"\n" for _ in range(50)))
    )
    data[-6] ^= 0xFF  # damage the CRC trailer
    path = tmp_path / "Movies.jsonl.gz"
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match="truncated or corrupt gzip stream after line 50"):
        list(read_reviews(path, max_bad_lines=10**6))


def test_gzip_told_by_magic_bytes_not_name(tmp_path):
    gzipped = write(tmp_path, "Movies.jsonl", [REVIEW_2023], gz=True)
    plain = write(tmp_path, "Other.jsonl.gz", [REVIEW_2023])
    assert [r.user_id for r in read_reviews(gzipped)] == ["AUSER1"]
    assert [r.user_id for r in read_reviews(plain)] == ["AUSER1"]


# --- detect_layout ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "rows", "layout"),
    [
        ("Movies.jsonl", [REVIEW_2023], "amazon2023"),
        ("meta_Movies.jsonl", [META_2023], "amazon2023"),
        ("Gift.json", [REVIEW_2018], "amazon2018"),
        ("meta_Gift.json", [META_2018], "amazon2018"),
        ("Books.json", [REVIEW_2014], "amazon2014"),
        ("meta_Books.json", [META_2014], "amazon2014"),
        # the keys both years share: reviews read the same either way
        ("Books.json", [{"reviewerID": "A", "asin": "B", "overall": 3.0}], "amazon2018"),
        ("ratings.csv", ["userId,itemId,rating"], "csv"),
        ("ratings.tsv", ["user_id\titem_id"], "csv"),
    ],
)
@pytest.mark.parametrize("gz", [False, True])
def test_detect_layout(tmp_path, name, rows, layout, gz):
    path = write(tmp_path, name, ["", *rows], gz=gz)
    assert detect_layout(path) == layout
    assert layout in LAYOUTS


def test_detect_layout_error_names_file_and_keys(tmp_path):
    path = write(tmp_path, "mystery.jsonl", [{"foo": 1, "bar": 2}])
    with pytest.raises(DataError, match=r"keys \['bar', 'foo'\]") as caught:
        detect_layout(path)
    assert str(caught.value).startswith(str(path))
    with pytest.raises(DataError, match="empty file"):
        detect_layout(write(tmp_path, "empty.jsonl", ["", "  "]))
    with pytest.raises(DataError, match="not JSON and not a CSV/TSV header"):
        detect_layout(write(tmp_path, "words.txt", ["hello"]))


def test_layout_argument_checked(tmp_path):
    path = write(tmp_path, "Movies.jsonl", [REVIEW_2023])
    with pytest.raises(DataError, match="unknown layout 'amazon2020'"):
        read_reviews(path, "amazon2020")
    with pytest.raises(DataError, match="only apply to CSV/TSV"):
        read_reviews(path, where={"domain": "movies"})


# --- CSV / TSV -------------------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [False, True])
def test_csv_reviews_with_columns(tmp_path, gz):
    rows = [
        "uid,Movie,Stars,Time,review",
        'u1,m1,4,100,"Great, really"',
        "u2,m2,3,200.5,",
    ]
    path = write(tmp_path, "ratings.csv" + (".gz" if gz else ""), rows, gz=gz)
    first, second = read_reviews(path, columns={"user": "uid", "item": "movie"})
    assert (first.user_id, first.item_id, first.rating, first.timestamp) == ("u1", "m1", 4.0, 100.0)
    assert (first.text, first.summary, first.line) == ("Great, really", "", 2)
    assert (second.rating, second.timestamp, second.text) == (3.0, 200.5, "")


def test_tsv_unbalanced_quote_and_where(tmp_path):
    rows = [
        "item_id\tdomain\ttitle\tcategory\tbrand\tprice\timage_url",
        'B1\tfood\t12" Pizza Pan "Deluxe\tKitchen|Bakeware|Kitchen\tAcme\t9.99\thttp://x/1.jpg',
        "B2\tkitchen\tKnife\tKitchen, Knives\t\t\t",
        "B3\tfood\tSalt\t\tSaltCo\t1.00\t",
    ]
    path = write(tmp_path, "items.tsv", rows)
    food = list(read_items(path, where={"domain": "food"}, max_bad_lines=0))
    assert [item.item_id for item in food] == ["B1", "B3"]
    pan = food[0]
    assert pan.title == '12" Pizza Pan "Deluxe'
    assert pan.categories == ("Kitchen", "Bakeware")
    assert pan.image == "http://x/1.jpg"
    assert pan.description == "brand: Acme; price: 9.99"  # no domain, no role columns
    (knife,) = read_items(path, where={"domain": "kitchen"})
    assert (knife.categories, knife.description) == (("Kitchen", "Knives"), "")


def test_tsv_where_column_left_out_of_description(tmp_path):
    path = write(tmp_path, "items.txt", ["asin\tname\tshop\tcolour", "A1\tMug\tnorth\tred"])
    (item,) = read_items(path, where={"shop": "north"})
    assert (item.item_id, item.title, item.description) == ("A1", "Mug", "colour: red")


def test_tabular_reviews_where_and_position(tmp_path):
    rows = [
        "user_id\titem_id\tdomain\tposition",
        "u1\ti1\tfood\t0",
        "u1\ti2\tkitchen\t1",
        "u2\ti3\tfood\t2",
    ]
    path = write(tmp_path, "interactions.tsv", rows, gz=True)
    assert detect_layout(path) == "csv"
    food = list(read_reviews(path, where={"domain": "food"}))
    assert [(r.user_id, r.item_id, r.rating, r.timestamp) for r in food] == [
        ("u1", "i1", None, 0.0),
        ("u2", "i3", None, 2.0),
    ]


@pytest.mark.parametrize(
    ("row", "field", "message"),
    [
        ("u1,m1,6", "rating", "6.0 is outside 1..5"),
        ("u1,m1,good", "rating", "expected a number, got 'good'"),
        (",m1,4", "user", "missing"),
        # an empty rating cell is a bad line: it must not turn the whole file implicit
        ("u1,m1,", "rating", "missing (the file has a rating column"),
        ("u1,m1,4,extra", None, "row has 4 fields, the header has 3"),
        (b"u1,m\xe9,4", "encoding", "not valid UTF-8"),
    ],
)
def test_tabular_bad_rows(tmp_path, row, field, message):
    path = write(tmp_path, "ratings.csv", ["user,item,rating", "u0,m0,5", row])
    error = strict(path)
    assert (error.line, error.field) == (3, field)
    assert message in error.message
    assert str(error).startswith(f"{path}:3: ")
    assert [r.user_id for r in read_reviews(path)] == ["u0"]


def test_unreadable_csv_row_is_a_bad_line(tmp_path):
    # a field over the csv module's size limit: that row is skipped, the reader carries on
    path = write(tmp_path, "ratings.csv", ["user,item", "u1," + "x" * 200_000, "u2,i2"])
    assert [(r.user_id, r.line) for r in read_reviews(path)] == [("u2", 3)]
    assert strict(path).line == 2


@pytest.mark.parametrize(
    ("cell", "message"),
    [
        ("monday", "expected a number"),
        ("", "missing"),  # not the line number among epoch seconds
        ("-5", "outside 0..4102444800"),
        ("1e30", "outside 0..4102444800"),
        ("nan", "outside"),
    ],
)
def test_tabular_timestamp_must_parse_and_be_in_range(tmp_path, cell, message):
    path = write(tmp_path, "ratings.tsv", ["user\titem\ttime", "u0\tm0\t5", f"u1\tm1\t{cell}"])
    error = strict(path)
    assert (error.line, error.field) == (3, "time")
    assert message in error.message
    assert [r.timestamp for r in read_reviews(path)] == [5.0]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, r"no user column .*the header is \['who', 'item'\]"),
        ({"columns": {"user": "uid"}}, "no column 'uid'"),
        ({"columns": {"colour": "who"}}, r"unknown role\(s\) \['colour'\]"),
        ({"columns": {"user": "who"}, "where": {"domain": "food"}}, "where: no column 'domain'"),
    ],
)
def test_tabular_header_errors(tmp_path, kwargs, message):
    path = write(tmp_path, "ratings.csv", ["who,item", "u1,m1"])
    with pytest.raises(DataError, match=message) as caught:
        list(read_reviews(path, **kwargs))
    assert caught.value.path == str(path)


def test_tabular_explicit_none_role_and_bom(tmp_path):
    path = tmp_path / "ratings.csv"
    path.write_bytes("\ufeffuser,item,rating\nu1,m1,not a rating\n".encode())
    (review,) = read_reviews(path, columns={"rating": None}, max_bad_lines=0)
    assert (review.user_id, review.rating) == ("u1", None)


# --- progress --------------------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("layout", ["amazon2023", "csv"])
def test_on_bytes_adds_up_to_file_size(tmp_path, monkeypatch, gz, layout):
    monkeypatch.setattr(lines, "PROGRESS_EVERY", 7)  # several calls even for a small file
    if layout == "csv":
        rows = ["user,item"] + [f"u{i},i{i}" for i in range(100)]
    else:
        rows = [{**REVIEW_2023, "user_id": f"u{i}"} for i in range(100)]
    path = write(tmp_path, "data.csv" if layout == "csv" else "data.jsonl", rows, gz=gz)
    calls: list[int] = []
    assert len(list(read_reviews(path, on_bytes=calls.append))) == 100
    assert len(calls) > 3
    assert all(n >= 0 for n in calls)
    assert sum(calls) == os.path.getsize(path)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({k: v for k, v in REVIEW_2018.items() if k != "unixReviewTime"}, "missing"),
        ({**REVIEW_2018, "unixReviewTime": -1}, "-1 is outside 0..4102444800 (seconds"),
        ({**REVIEW_2018, "unixReviewTime": 1.7e12}, "is outside 0..4102444800"),  # milliseconds
    ],
)
def test_2018_review_time_is_required_and_in_range(tmp_path, bad, message):
    path = write(tmp_path, "Gift_Cards.json", [REVIEW_2018, bad])
    error = strict(path)
    assert (error.line, error.field) == (2, "unixReviewTime")
    assert message in error.message
