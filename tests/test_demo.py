"""The synthetic demo's raw files: layout, determinism, counts, and learnable transfer."""

from __future__ import annotations

import gzip
import json
import re
import shutil
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dataset_prep.demo import AUX_CATEGORY, TARGET_CATEGORY, generate_demo_raw

SCALE = 0.2
CATEGORIES = (AUX_CATEGORY, TARGET_CATEGORY)
REVIEW_TYPES = {
    "rating": float,
    "title": str,
    "text": str,
    "images": list,
    "asin": str,
    "parent_asin": str,
    "user_id": str,
    "timestamp": int,
    "helpful_vote": int,
    "verified_purchase": bool,
}
META_TYPES = {
    "main_category": str,
    "title": str,
    "average_rating": float,
    "rating_number": int,
    "features": list,
    "description": list,
    "price": float,
    "images": list,
    "videos": list,
    "store": str,
    "categories": list,
    "details": dict,
    "parent_asin": str,
    "bought_together": type(None),
}


def _files(raw: Path) -> dict[str, bytes]:
    return {str(p.relative_to(raw)): p.read_bytes() for p in sorted(raw.rglob("*")) if p.is_file()}


def _jsonl(path: Path) -> list[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    raw = tmp_path_factory.mktemp("demo_seed0")
    summary = generate_demo_raw(raw, seed=0, scale=SCALE)
    data = {
        c: (_jsonl(raw / f"{c}.jsonl.gz"), _jsonl(raw / f"meta_{c}.jsonl.gz")) for c in CATEGORIES
    }
    return raw, summary, data


def test_same_seed_gives_identical_bytes_other_seed_differs(demo, tmp_path):
    raw, _, _ = demo
    again = generate_demo_raw(tmp_path / "again", seed=0, scale=SCALE)
    first, second = _files(raw), _files(tmp_path / "again")
    assert again["reviews"] == demo[1]["reviews"]
    assert first.keys() == second.keys()
    assert [k for k in first if first[k] != second[k]] == []

    generate_demo_raw(tmp_path / "other", seed=1, scale=SCALE)
    other = _files(tmp_path / "other")
    for name in (f"{c}.jsonl.gz" for c in CATEGORIES):
        assert other[name] != first[name]
    # ASINs are drawn from the seed too, so the image file names differ.
    assert {k for k in other if k.startswith("images/")}.isdisjoint(
        {k for k in first if k.startswith("images/")}
    )


def test_user_blocks_do_not_change_the_data(demo, tmp_path, monkeypatch):
    # Large scales rank users against items block by block; the bytes must not depend on it.
    monkeypatch.setattr("dataset_prep.demo_taste.USER_BLOCK", 37)
    generate_demo_raw(tmp_path / "blocks", seed=0, scale=SCALE)
    first, blocked = _files(demo[0]), _files(tmp_path / "blocks")
    assert first.keys() == blocked.keys()
    assert [k for k in first if first[k] != blocked[k]] == []


def test_activity_grows_the_reviews_of_a_fixed_population_without_images(demo, tmp_path):
    _, base, _ = demo
    raw = tmp_path / "busy"
    busy = generate_demo_raw(raw, seed=0, scale=SCALE, activity=2.0, images=False)
    assert busy["users"] == base["users"] and busy["items"] == base["items"]
    for c in CATEGORIES:
        assert 1.8 < busy["reviews"][c] / base["reviews"][c] < 2.2
        links = [m["images"][0]["large"] for m in _jsonl(raw / f"meta_{c}.jsonl.gz") if m["images"]]
        assert links and all(link.startswith("https://") for link in links)
    assert list((raw / "images").iterdir()) == []
    assert "activity=2.0, images=False" in (raw / "GENERATED.md").read_text(encoding="utf-8")


def test_grouped_sampler_draws_what_the_exact_one_does():
    from dataset_prep import demo_taste as gen

    rng = np.random.default_rng(0)
    items = gen.draw_items(rng, 2000)
    taste = rng.normal(size=(3000, gen.K))
    drawn = {}
    for name, choose in (("exact", gen.choose_exact), ("grouped", gen.choose_grouped)):
        users, chosen, fit = choose(np.random.default_rng(1), taste, items, 1.0)
        assert len(np.unique(users * 10_000 + chosen)) == len(users)  # no item twice per user
        np.testing.assert_allclose(fit, (taste[users] * items["attrs"][chosen]).sum(1))
        drawn[name] = (len(users), fit.mean(), np.bincount(chosen, minlength=2000))
    # as many reviews (each sampler draws its own counts), the same taste in them
    assert abs(drawn["grouped"][0] - drawn["exact"][0]) < 0.02 * drawn["exact"][0]
    assert abs(drawn["grouped"][1] - drawn["exact"][1]) < 0.03
    assert np.corrcoef(drawn["grouped"][2], drawn["exact"][2])[0, 1] > 0.9


def test_counts_can_be_set_outright_and_the_sampler_is_checked(tmp_path):
    raw = tmp_path / "shaped"
    summary = generate_demo_raw(
        raw, users=(30, 40, 50), items=(300, 200), images=False, sampler="grouped"
    )
    assert summary["users"] == {"overlap": 30, "side": 40, "aux_only": 50}
    assert summary["items"] == {AUX_CATEGORY: 300, TARGET_CATEGORY: 200}
    assert "users=(30, 40, 50), items=(300, 200), sampler='grouped'" in (
        raw / "GENERATED.md"
    ).read_text(encoding="utf-8")
    with pytest.raises(ValueError, match="sampler"):
        generate_demo_raw(tmp_path / "bad", scale=SCALE, sampler="bogus")


def test_rerun_with_another_seed_leaves_no_stale_files(demo, tmp_path):
    raw = tmp_path / "raw"
    shutil.copytree(demo[0], raw)
    generate_demo_raw(raw, seed=1, scale=SCALE)
    meta_images = {
        m["images"][0]["large"]
        for c in CATEGORIES
        for m in _jsonl(raw / f"meta_{c}.jsonl.gz")
        if m["images"]
    }
    on_disk = {str(p.relative_to(raw)) for p in (raw / "images").iterdir()}
    assert on_disk == meta_images
    assert [p.name for p in raw.rglob(".*")] == []  # no temp files left behind


def test_every_line_has_the_2023_keys_and_types(demo):
    raw, _, data = demo
    user_re, asin_re = re.compile(r"^AE[A-Z0-9]{26}$"), re.compile(r"^B0[A-Z0-9]{8}$")
    parents: dict[str, set[str]] = {}
    for category, (reviews, meta) in data.items():
        for m in meta:
            assert m.keys() == META_TYPES.keys()
            for key, typ in META_TYPES.items():
                assert isinstance(m[key], typ), (key, m[key])
            assert asin_re.match(m["parent_asin"])
            assert 1.0 <= m["average_rating"] <= 5.0
            assert all(isinstance(s, str) for s in m["description"] + m["categories"])
            for img in m["images"]:
                assert img.keys() == {"thumb", "large", "variant", "hi_res"}
                assert img["hi_res"] is None and img["thumb"] == img["large"]
        parents[category] = {m["parent_asin"] for m in meta}
        assert len(parents[category]) == len(meta)
        for r in reviews:
            assert r.keys() == REVIEW_TYPES.keys()
            for key, typ in REVIEW_TYPES.items():
                assert type(r[key]) is typ, (key, r[key])
            assert r["rating"] in (1.0, 2.0, 3.0, 4.0, 5.0)
            assert user_re.match(r["user_id"]) and asin_re.match(r["asin"])
            assert r["parent_asin"] in parents[category]
            assert 1_199_145_600_000 <= r["timestamp"] < 1_704_067_200_000  # 2008..2023, in ms
            assert r["helpful_vote"] >= 0 and r["text"] and r["title"]
    # Item ids are unique across both domains.
    assert parents[AUX_CATEGORY].isdisjoint(parents[TARGET_CATEGORY])
    text = (raw / "GENERATED.md").read_text()
    assert "synthetic" in text and "GENERATED" in text and "default_rng(0)" in text


def test_images_exist_and_open(demo):
    raw, _, data = demo
    n_images = 0
    for _, meta in data.values():
        for m in meta:
            for img in m["images"]:
                with Image.open(raw / img["large"]) as im:
                    assert im.mode == "RGB" and im.size == (32, 32)
                    im.load()
                n_images += 1
    assert n_images == len(list((raw / "images").glob("*.png")))


def test_counts_follow_the_scale_and_leave_work_for_the_filters(demo):
    _, summary, data = demo
    (movie_reviews, movie_meta), (music_reviews, music_meta) = data.values()
    movie_users = {r["user_id"] for r in movie_reviews}
    music_users = {r["user_id"] for r in music_reviews}
    kinds = {
        "overlap": len(movie_users & music_users),
        "side": len(music_users - movie_users),
        "aux_only": len(movie_users - music_users),
    }
    print("users by kind:", kinds, "summary:", summary)
    assert kinds == summary["users"] == {"overlap": 300, "side": 240, "aux_only": 160}
    assert (len(movie_meta), len(music_meta)) == (200, 160)
    total = len(movie_reviews) + len(music_reviews)
    assert total == summary["reviews_total"]
    short = sum(len(r["text"].split()) < 10 for r in movie_reviews + music_reviews)
    assert short == sum(summary["short_reviews"].values())
    assert 0.8 * 120_000 * SCALE < total < 1.2 * 120_000 * SCALE

    for reviews in (movie_reviews, music_reviews):
        per_user = np.array(list(_count_by(reviews, "user_id").values()))
        assert np.mean((per_user >= 20) & (per_user <= 40)) > 0.8  # mostly 20-40
        assert 0.03 < np.mean(per_user < 20) < 0.2  # some for the >= 20 filter to drop
        words = np.array([len(r["text"].split()) for r in reviews])
        assert 0.02 < np.mean(words < 10) < 0.12
        assert np.median(words) >= 15
        stars = np.array([r["rating"] for r in reviews])
        assert np.mean(stars >= 4) > 0.6 and np.mean(stars <= 2) > 0.05  # skewed, not all 5s
    for meta in (movie_meta, music_meta):
        assert 0 < sum(not m["description"] for m in meta) < 0.1 * len(meta)
        assert 0 < sum(not m["images"] for m in meta) < 0.1 * len(meta)


def test_review_text_follows_rating_and_item_genre(demo):
    _, _, data = demo
    reviews, meta = data[TARGET_CATEGORY]
    genre = {m["parent_asin"]: m["categories"][1] for m in meta}
    by_star = defaultdict(list)
    for r in reviews:
        by_star[r["rating"]].append(r["text"].lower())
    praise = np.mean([("superb" in t or "wonderful" in t) for t in by_star[5.0]])
    praise_low = np.mean([("superb" in t or "wonderful" in t) for t in by_star[1.0]])
    assert praise > 3 * praise_low
    # Reviews of Ambient albums use calm words far more often than reviews of Metal albums.
    calm = defaultdict(list)
    for r in reviews:
        calm[genre[r["parent_asin"]]].append("soothing" in r["text"] or "peaceful" in r["text"])
    assert np.mean(calm["Ambient"]) > 3 * np.mean(calm["Metal"])


def _count_by(rows: list[dict], key: str) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for r in rows:
        counts[r[key]] += 1
    return counts


def _shrunk_item_means(reviews: list[dict], prior: float = 5.0) -> tuple[dict[str, float], float]:
    sums: dict[str, float] = defaultdict(float)
    counts: dict[str, int] = defaultdict(int)
    for r in reviews:
        sums[r["parent_asin"]] += r["rating"]
        counts[r["parent_asin"]] += 1
    mean = sum(sums.values()) / sum(counts.values())
    return {a: (sums[a] + prior * mean) / (counts[a] + prior) for a in sums}, mean


def _genre_vectors(meta: list[dict]) -> dict[str, np.ndarray]:
    """Item -> normalised indicator of its genres (the categories after the root)."""
    names = sorted({g for m in meta for g in m["categories"][1:]})
    index = {g: i for i, g in enumerate(names)}
    out = {}
    for m in meta:
        v = np.zeros(len(names))
        v[[index[g] for g in m["categories"][1:]]] = 1.0
        out[m["parent_asin"]] = v / max(1.0, v.sum())
    return out


def test_movie_history_predicts_music_ratings(demo):
    """Cold-start transfer is learnable from the raw files alone.

    Half the overlapping users are held out (their music ratings are the test set). The
    transfer predictor profiles each user from their movie ratings (rating bias and per-genre
    residuals), learns on the other overlapping users a ridge map from that profile x music
    genre to the music residual, and adds it to the music item mean. The non-transfer baseline
    is the item mean itself (from side users and training overlapping users).
    """
    _, _, data = demo
    (movie_reviews, movie_meta), (music_reviews, music_meta) = data.values()
    movie_genres, music_genres = _genre_vectors(movie_meta), _genre_vectors(music_meta)
    overlap = sorted({r["user_id"] for r in movie_reviews} & {r["user_id"] for r in music_reviews})
    np.random.default_rng(0).shuffle(overlap)
    test_users = set(overlap[: len(overlap) // 2])
    train_users = set(overlap) - test_users

    movie_mean, _ = _shrunk_item_means(movie_reviews)
    music_mean, music_global = _shrunk_item_means(
        [r for r in music_reviews if r["user_id"] not in test_users]
    )

    # Movie profile: [1, bias, per-genre residual after the bias], each shrunk toward 0.
    n_genres = len(next(iter(movie_genres.values())))
    acc = defaultdict(lambda: [0.0, 0, np.zeros(n_genres), np.zeros(n_genres)])
    for r in movie_reviews:
        a = acc[r["user_id"]]
        residual, genres = (
            r["rating"] - movie_mean[r["parent_asin"]],
            movie_genres[r["parent_asin"]],
        )
        a[0] += residual
        a[1] += 1
        a[2] += residual * genres
        a[3] += genres
    profile = {}
    for user, (res_sum, count, genre_sum, genre_count) in acc.items():
        bias = res_sum / (count + 3)
        profile[user] = np.r_[1.0, bias, (genre_sum - bias * genre_count) / (genre_count + 3)]

    def design(rows):
        x = np.array(
            [
                np.outer(profile[r["user_id"]], np.r_[1.0, music_genres[r["parent_asin"]]]).ravel()
                for r in rows
            ]
        )
        base = np.array([music_mean.get(r["parent_asin"], music_global) for r in rows])
        return x, base, np.array([r["rating"] for r in rows])

    x_tr, base_tr, y_tr = design([r for r in music_reviews if r["user_id"] in train_users])
    w = np.linalg.solve(x_tr.T @ x_tr + 10.0 * np.eye(x_tr.shape[1]), x_tr.T @ (y_tr - base_tr))
    x_te, base_te, y_te = design([r for r in music_reviews if r["user_id"] in test_users])
    transfer = np.clip(base_te + x_te @ w, 1.0, 5.0)

    def rmse(pred):
        return float(np.sqrt(np.mean((pred - y_te) ** 2)))

    rmse_item, rmse_transfer = rmse(base_te), rmse(transfer)
    rmse_global = rmse(np.full_like(y_te, music_global))
    corr_item, corr_transfer = np.corrcoef(base_te, y_te)[0, 1], np.corrcoef(transfer, y_te)[0, 1]
    print(
        f"\n{len(y_te)} test ratings of {len(test_users)} cold-start users: RMSE global mean "
        f"{rmse_global:.4f}, item mean {rmse_item:.4f}, movie-history transfer {rmse_transfer:.4f}"
        f" (-{rmse_item - rmse_transfer:.4f}); corr item mean {corr_item:.3f}, transfer "
        f"{corr_transfer:.3f}"
    )
    assert rmse_item < rmse_global  # item quality is real signal too
    assert rmse_transfer < rmse_item - 0.06
    assert corr_transfer > corr_item + 0.15


def test_rejects_a_non_positive_scale(tmp_path):
    with pytest.raises(ValueError, match="scale"):
        generate_demo_raw(tmp_path, seed=0, scale=0)
    assert list(tmp_path.iterdir()) == []  # nothing written
