"""``python -m dataset_prep``: build, demo, errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from dataset_prep.cli import main

REPO = Path(__file__).resolve().parents[1]
LONG = "this review has easily more than ten words in it so it passes"


def rev(user, item, text=LONG, title="Nice"):
    return {
        "user_id": user,
        "parent_asin": item,
        "rating": 4.0,
        "title": title,
        "text": text,
        "timestamp": 1_600_000_000_000,
    }


def meta(item):
    image = {"large": "https://img.example/x.jpg", "variant": "MAIN"}
    return {
        "parent_asin": item,
        "title": f"T {item}",
        "description": ["Fine."],
        "images": [image],
        "categories": [],
    }


def write_domain(folder: Path, category: str, reviews, metas) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for path, records in (
        ((folder / f"{category}.jsonl"), reviews),
        ((folder / f"meta_{category}.jsonl"), metas),
    ):
        path.write_text("".join(json.dumps(r) + "\n" for r in records))


def write_tsv(path: Path, header, rows) -> Path:
    path.write_text("\n".join("\t".join(map(str, r)) for r in [header, *rows]) + "\n")
    return path


def run_module(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "dataset_prep", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_help_reads_well(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["build", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for option in (
        "--task",
        "--aux-where",
        "--columns",
        "--no-filters",
        "--require-image",
        "--keep-work",
    ):
        assert option in out


def test_build_tabular_files(tmp_path, capsys):
    inter = write_tsv(
        tmp_path / "interactions.tsv",
        ["user_id", "item_id", "domain", "position"],
        [("a", "f1", "food", 0), ("a", "k1", "kitchen", 1), ("b", "k1", "kitchen", 0)],
    )
    items = write_tsv(
        tmp_path / "items.tsv",
        ["item_id", "domain", "title"],
        [("f1", "food", "Tea"), ("k1", "kitchen", "Pot")],
    )
    argv = ["build", "--aux", str(inter), "--aux-meta", str(items), "--aux-where", "domain=food"]
    argv += [
        "--target",
        str(inter),
        "--target-meta",
        str(items),
        "--target-where",
        "domain=kitchen",
    ]
    argv += ["--name", "fk", "--out", str(tmp_path / "out"), "--no-progress"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "overlap 1" in out and "side (target only) 1" in out
    stats = json.loads((tmp_path / "out" / "fk" / "stats.json").read_text())
    assert stats["feedback"] == "implicit" and stats["filters"]["min_user_reviews"] == 1
    df = pd.read_csv(tmp_path / "out" / "fk" / "fk.inter", sep="\t")
    assert len(df) == 3


def test_build_categories_with_filter_overrides(tmp_path, capsys):
    raw = tmp_path / "raw"
    write_domain(raw, "Movies_and_TV", [rev("u1", "m1"), rev("u2", "m1")], [meta("m1")])
    write_domain(
        raw,
        "CDs_and_Vinyl",
        [rev("u1", "c1"), rev("u3", "c1", text="short", title="")],
        [meta("c1")],
    )
    argv = ["build", "--aux", "Movies_and_TV", "--target", "CDs_and_Vinyl", "--raw-dir", str(raw)]
    argv += ["--out", str(tmp_path / "out"), "--min-user-reviews", "1", "--no-progress"]
    assert main(argv) == 0
    folder = tmp_path / "out" / "movies_and_tv_cds_and_vinyl"
    stats = json.loads((folder / "stats.json").read_text())
    assert stats["filters"] == {
        "min_review_words": 10,
        "require_description": True,
        "require_image": True,
        "min_user_reviews": 1,
    }
    assert stats["dropped"]["target"]["reviews_too_short"] == 1
    assert stats["users"]["overlap"] == 1


def test_bad_input_exits_2_naming_the_file(tmp_path):
    bad = tmp_path / "broken.jsonl"
    bad.write_text("{not json\n" * 5)
    meta_file = tmp_path / "meta.jsonl"
    meta_file.write_text(json.dumps(meta("m1")) + "\n")
    res = run_module(
        "build", "--aux", str(bad), "--aux-meta", str(meta_file), "--target", str(bad),
        "--target-meta", str(meta_file), "--layout", "amazon2023", "--max-bad-lines", "0",
        "--out", str(tmp_path / "out"), "--no-progress", cwd=tmp_path,
    )  # fmt: skip
    assert res.returncode == 2
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "broken.jsonl" in last
    assert "Traceback" not in res.stderr


def test_missing_file_and_bad_options_exit_2(tmp_path, capsys):
    assert (
        main(
            [
                "build",
                "--aux",
                "nope.tsv",
                "--aux-meta",
                "x.tsv",
                "--target",
                "t.tsv",
                "--target-meta",
                "y.tsv",
            ]
        )
        == 2
    )
    assert "nope.tsv" in capsys.readouterr().err
    assert (
        main(["build", "--aux", "Books", "--target", "CDs_and_Vinyl", "--raw-dir", str(tmp_path)])
        == 2
    )
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Books.jsonl.gz" in err and str(tmp_path) in err
    assert main(["build", "--aux", "a.tsv", "--target", "b.tsv"]) == 2
    assert "a.tsv: file not found" in capsys.readouterr().err


RATINGS = [  # user, item, rating, time, domain: books and movies in one file, no item file
    ("a", "b1", 5, 3, "books"),
    ("a", "b2", 3, 1, "books"),
    ("a", "m1", 4, 2, "movies"),
    ("b", "b1", 2, 1, "books"),
    ("b", "m2", 1, 2, "movies"),
    ("c", "m1", 5, 1, "movies"),
]


@pytest.mark.parametrize("with_time", [True, False], ids=["ratings+timestamps", "ratings"])
def test_build_ratings_only_without_an_item_file(tmp_path, capsys, with_time):
    header = ["user_id", "item_id", "rating"] + (["timestamp"] if with_time else []) + ["domain"]
    rows = [r if with_time else r[:3] + r[4:] for r in RATINGS]
    inter = write_tsv(tmp_path / "inter.tsv", header, rows)
    argv = ["build", "--aux", str(inter), "--aux-where", "domain=books", "--target", str(inter)]
    argv += ["--target-where", "domain=movies", "--out", str(tmp_path / "out"), "--no-progress"]
    assert main(argv) == 0
    folder = tmp_path / "out" / "books_movies"
    items = pd.read_csv(folder / "books_movies.item", sep="\t", dtype=str, keep_default_na=False)
    assert sorted(items["item_id:token"]) == ["b1", "b2", "m1", "m2"]
    assert set(items["domain:token"]) == {"aux", "target"}
    text = ["title:token_seq", "description:token_seq", "categories:token_seq", "image:token"]
    assert (items[text] == "").all().all()  # items carry no text
    inter_out = pd.read_csv(folder / "books_movies.inter", sep="\t")
    assert len(inter_out) == len(RATINGS)
    build = json.loads((folder / "build.json").read_text())
    assert build["inputs"]["aux"]["meta"] is None
    assert "overlap 2" in capsys.readouterr().out


def test_an_item_file_is_needed_for_the_item_filters(tmp_path, capsys):
    inter = write_tsv(
        tmp_path / "inter.tsv",
        ["user_id", "item_id", "rating", "domain"],
        [r[:3] + r[4:] for r in RATINGS],
    )
    argv = ["build", "--aux", str(inter), "--aux-where", "domain=books", "--target", str(inter)]
    argv += ["--target-where", "domain=movies", "--require-description", "--no-progress"]
    assert main(argv + ["--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "inter.tsv" in err and "no item file" in err


def test_demo_end_to_end(tmp_path):
    res = run_module("demo", "--scale", "0.1", "--out", "data", "--no-progress", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "GENERATED" in res.stderr and "GENERATED" in res.stdout
    folder = tmp_path / "data" / "movie_music_demo"
    build_json = json.loads((folder / "build.json").read_text())
    assert build_json["generated"] is True
    assert "generated: true" in (folder / "movie_music_demo.yaml").read_text()
    stats = json.loads((folder / "stats.json").read_text())
    assert stats["generated"] is True and stats["users"]["overlap"] > 0
    assert stats["filters"]["min_user_reviews"] == 20  # the same path and filters as real data
    assert (tmp_path / "data" / "raw" / "movie_music_demo" / "GENERATED.md").is_file()
    # the demo pipeline embeds items and users with the default (packaged, real) encoder
    for table in ("items", "users_aux", "users_target"):
        manifest = json.loads((folder / "features" / f"{table}.json").read_text())
        assert manifest["dim"] == 384 and manifest["rows"] > 0 and manifest["generated"] is True
        assert "minilm" in manifest["model_path"].lower()

    from dataset_prep.demo_build import ensure_demo_dataset

    stamp = (folder / "build.json").stat().st_mtime_ns
    assert ensure_demo_dataset(tmp_path / "data") == folder
    assert (folder / "build.json").stat().st_mtime_ns == stamp  # present: not rebuilt
