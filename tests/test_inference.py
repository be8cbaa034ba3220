"""Cold-start inference for a new user from a MuSiC checkpoint (function and command)."""

from __future__ import annotations

import glob

import pytest
import torch

from recbole_music.inference import ColdStartRecommender
from recbole_music.quick_start import run_recbole_music
from recbole_music.recommend import main as recommend_main

FAST = {"epochs": 3, "stage1_epochs": 1, "state": "ERROR"}


@pytest.fixture
def checkpoint(tiny_data_root):
    run_recbole_music("MuSiC", "tiny", config_dict=dict(FAST), saved=True)
    return glob.glob("saved/MuSiC-*.pth")[0]


def first_held_out_user(recommender) -> tuple[str, torch.Tensor]:
    """A held-out (cold-start) user's token and the u_A the model evaluates them with."""
    model = recommender.model
    held = int(torch.nonzero(model.is_held_out).flatten()[0])
    with torch.no_grad():
        trained = model.features.users_aux(torch.tensor([held]))[0]
    return recommender.dataset.id2token("user_id", held), trained


def test_recommends_target_items_from_an_aux_history(checkpoint):
    recommender = ColdStartRecommender.from_checkpoint(checkpoint)
    dataset = recommender.dataset
    test_user = next(u for u in dataset.field2id_token["user_id"][1:] if u.startswith("o"))
    items, ratings = recommender.history_of(test_user)
    assert items and all(i.startswith("a") for i in items)  # auxiliary items only
    first = recommender.recommend_from_history(items, ratings, topk=5, seed=1)
    again = recommender.recommend_from_history(items, ratings, topk=5, seed=1)
    assert len(first.items) == 5 and all(i.startswith("t") for i in first.items)
    assert first.items == again.items and torch.equal(first.target_feature, again.target_feature)
    assert first.scores == sorted(first.scores, reverse=True)
    # a different history gives a different user feature
    other = recommender.recommend_from_history(items, [6 - r for r in ratings], topk=5, seed=1)
    assert not torch.allclose(other.target_feature, first.target_feature)


def test_bad_histories_are_refused(checkpoint):
    recommender = ColdStartRecommender.from_checkpoint(checkpoint)
    with pytest.raises(ValueError, match="auxiliary-domain items only"):
        recommender.fold_in_aux_feature(["t000"], [5.0])
    with pytest.raises(ValueError, match="ratings"):
        recommender.fold_in_aux_feature(["a000"])
    with pytest.raises(ValueError, match="none of the history"):
        recommender.fold_in_aux_feature(["nope"], [3.0])
    with pytest.raises(ValueError, match="'s000' has no auxiliary-domain interactions"):
        recommender.history_of("s000")  # a side user: target domain only


def test_reviews_given_to_a_model_that_does_not_read_them_are_said_unused(checkpoint, caplog):
    recommender = ColdStartRecommender.from_checkpoint(checkpoint)
    assert not recommender.reads_reviews  # no feature tables: ID embeddings
    with caplog.at_level("WARNING"):
        with_reviews = recommender.fold_in_aux_feature(["a001"], [5.0], [(1.0, "great album")])
    assert "the reviews given are not used" in caplog.text
    assert torch.equal(with_reviews, recommender.fold_in_aux_feature(["a001"], [5.0]))


def test_command_prints_a_ranked_list(checkpoint, tmp_path, capsys):
    history = tmp_path / "history.tsv"
    history.write_text("a001\t5\na002\t1\na003\t4\n")
    assert (
        recommend_main(["--checkpoint", checkpoint, "--history", str(history), "--topk", "3"]) == 0
    )
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[1] == "rank\titem_id\tscore" and len(lines) == 5
    assert lines[2].startswith("1\tt")
    history.write_text("a001\tfive\n")
    assert recommend_main(["--checkpoint", checkpoint, "--history", str(history)]) == 2
    assert "history.tsv:1: field 'rating'" in capsys.readouterr().err


def test_new_user_generation_is_the_models_own(checkpoint):
    """recommend() generates u_T by the model's own path (with its residual and scale): for a
    held-out user with the model's starting noise it reproduces the evaluated feature."""
    recommender = ColdStartRecommender.from_checkpoint(checkpoint)
    model = recommender.model
    model.eval()
    held = int(torch.nonzero(model.is_held_out).flatten()[0])
    u_a = model.features.users_aux(torch.tensor([held]))[0].detach()
    generator = torch.Generator().manual_seed(7)  # recommend(seed=7) draws x_T, then each step
    x_T = torch.randn(1, u_a.shape[0], generator=generator)
    expected = model.generate(u_a.view(1, -1), x_T=x_T.clone(), generator=generator)
    assert torch.allclose(recommender.recommend(u_a, topk=3, seed=7).target_feature, expected[0])
    if model.condition_residual:
        # the denoiser's own output alone would give another feature
        plain = model.feature_scale * model.diffusion.sample(
            model.denoiser, cond=u_a.view(1, -1), x_T=x_T
        )
        assert not torch.allclose(plain[0], expected[0])


# -- a model whose user vectors read reviews (user_vectors: both) ----------------------------


@pytest.fixture
def review_checkpoint(tiny_data_root, tmp_path):
    """MuSiC trained on review vectors that the real feature pipeline wrote with a tiny BERT."""
    import numpy as np
    from tiny_models import CORPUS, save_tiny_bert

    from dataset_prep.features.encoders import EncoderSpec
    from dataset_prep.features.pipeline import RunSettings, extract_features
    from dataset_prep.vector_table import save_vectors

    folder = tiny_data_root / "tiny"
    rows = [line.split("\t") for line in (folder / "tiny.inter").read_text().splitlines()[1:]]
    rng = np.random.default_rng(0)
    words = " ".join(CORPUS).split()
    with open(folder / "tiny.review", "w") as out:
        out.write("user_id:token\titem_id:token\tdomain:token\ttext:token_seq\n")
        for user, item, *_, domain in rows:
            out.write(f"{user}\t{item}\t{domain}\t{' '.join(rng.choice(words, size=6))}\n")
    items = sorted({row[1] for row in rows})
    save_vectors(folder / "features", "items", items, rng.normal(size=(len(items), 6)))
    encoder = EncoderSpec(model=save_tiny_bert(tmp_path / "bert"), kind="text")
    extract_features(
        tiny_data_root,
        "tiny",
        encoder,
        tables=("users_aux", "users_target"),
        settings=RunSettings(progress=False),
    )
    config = {**FAST, "feature_source": "multimodal", "user_vectors": "both"}
    run_recbole_music("MuSiC", "tiny", config_dict=config, saved=True)
    return glob.glob("saved/MuSiC-*.pth")[0]


def test_a_users_reviews_fold_in_to_the_u_a_the_model_trained_on(review_checkpoint, caplog):
    """Re-embedding a held-out user's auxiliary reviews (encoder, prompt and merging rule read
    from the table's manifest) and their history gives exactly the u_A the model trained on."""
    recommender = ColdStartRecommender.from_checkpoint(review_checkpoint)
    assert recommender.reads_reviews
    user, trained = first_held_out_user(recommender)
    items, ratings = recommender.history_of(user)
    reviews = recommender.reviews_of(user)
    assert len(reviews) == len(items)
    folded = recommender.fold_in_aux_feature(items, ratings, reviews)
    assert torch.allclose(folded, trained, atol=1e-5)
    assert (
        recommender.fold_in_path(reviews) == "exact (the model's user MLP over reviews + history)"
    )

    # other words, another u_A: the reviews are read
    other = [(stamp, "upbeat cheerful pop music") for stamp, _ in reviews]
    assert not torch.allclose(recommender.fold_in_aux_feature(items, ratings, other), folded)
    # no reviews: the ridge fit, said in the log
    with caplog.at_level("WARNING"):
        ridge = recommender.fold_in_aux_feature(items, ratings)
    assert "none were given" in caplog.text
    assert not torch.allclose(ridge, folded)


def test_command_reads_a_users_reviews(review_checkpoint, tmp_path, capsys):
    recommender = ColdStartRecommender.from_checkpoint(review_checkpoint)
    held = int(torch.nonzero(recommender.model.is_held_out).flatten()[0])
    user = recommender.dataset.id2token("user_id", held)
    assert recommend_main(["--checkpoint", review_checkpoint, "--user", user, "--topk", "3"]) == 0
    by_user = capsys.readouterr().out.splitlines()
    assert "reviews; u_A: exact (the model's user MLP over reviews + history)" in by_user[0]

    # the same user as files: history.tsv and reviews.tsv (timestamp, tab, text)
    items, ratings = recommender.history_of(user)
    history, reviews = tmp_path / "history.tsv", tmp_path / "reviews.tsv"
    history.write_text("".join(f"{i}\t{r:g}\n" for i, r in zip(items, ratings)))
    stamped = recommender.reviews_of(user)
    reviews.write_text("".join(f"{stamp:g}\t{text}\n" for stamp, text in stamped))
    args = ["--checkpoint", review_checkpoint, "--history", str(history), "--topk", "3"]
    assert recommend_main([*args, "--reviews", str(reviews)]) == 0
    assert capsys.readouterr().out.splitlines()[2:] == by_user[2:]  # same ranking and scores
    assert recommend_main(args) == 0  # no reviews: a visible fallback
    assert "u_A: ridge fit" in capsys.readouterr().out

    reviews.write_text("great\tpop album\n")
    assert recommend_main([*args, "--reviews", str(reviews)]) == 2
    assert "reviews.tsv:1: field 'timestamp'" in capsys.readouterr().err


# -- bad input -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (b"a001\t5\na002\t99\n", "history.tsv:2: field 'rating': 99 is outside the trained"),
        (b"a001\t-5\n", "history.tsv:1: field 'rating': -5 is outside"),
        (b"a001\tnan\n", "history.tsv:1: field 'rating': 'nan' is not a finite number"),
        (b"a001\t1e300\n", "history.tsv:1: field 'rating': 1e+300 is outside"),
        (b"a001\t5\na002\t4\na001\t1\n", "history.tsv:3: field 'item': 'a001' is listed twice"),
        (b"a001\t5\na\xe9\t4\n", "history.tsv:2: not valid UTF-8"),
    ],
)
def test_command_refuses_a_bad_history_naming_file_and_line(
    checkpoint, tmp_path, capsys, lines, message
):
    history = tmp_path / "history.tsv"
    history.write_bytes(lines)
    assert recommend_main(["--checkpoint", checkpoint, "--history", str(history)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_command_refuses_bad_arguments(checkpoint, tmp_path, capsys):
    assert recommend_main(["--checkpoint", checkpoint, "--history", str(tmp_path)]) == 2
    assert "is a folder, not a file" in capsys.readouterr().err
    history = tmp_path / "history.tsv"
    history.write_text("a001\t5\n")
    with pytest.raises(SystemExit) as caught:
        recommend_main(["--checkpoint", checkpoint, "--history", str(history), "--topk", "-1"])
    assert caught.value.code == 2
    assert "expected a positive whole number, got '-1'" in capsys.readouterr().err


def test_unknown_history_items_are_named_and_not_counted(checkpoint, tmp_path, capsys):
    history = tmp_path / "history.tsv"
    history.write_text("a001\t5\nnope1\t4\na002\t1\nnope2\t3\n")
    assert recommend_main(["--checkpoint", checkpoint, "--history", str(history)]) == 0
    captured = capsys.readouterr()
    assert "2 history item(s) unknown to the model, not used: nope1, nope2" in captured.err
    assert captured.out.startswith("history: 2 auxiliary items;")


def test_api_refuses_impossible_ratings_and_repeated_items(checkpoint):
    recommender = ColdStartRecommender.from_checkpoint(checkpoint)
    assert recommender.rating_range == (1.0, 5.0)
    for bad in (99.0, -5.0, float("nan"), 1e300):
        with pytest.raises(ValueError, match="outside the trained ratings' range 1..5"):
            recommender.fold_in_aux_feature(["a001", "a002"], [5.0, bad])
    with pytest.raises(ValueError, match="'a001' is listed twice"):
        recommender.fold_in_aux_feature(["a001", "a001"], [5.0, 1.0])


def test_a_checkpoint_refuses_feature_tables_changed_since_training(tiny_data_root, capsys):
    import numpy as np

    from dataset_prep.vector_table import save_vectors

    folder = tiny_data_root / "tiny"
    rows = [line.split("\t") for line in (folder / "tiny.inter").read_text().splitlines()[1:]]
    items = sorted({row[1] for row in rows})
    rng = np.random.default_rng(0)
    save_vectors(folder / "features", "items", items, rng.normal(size=(len(items), 6)))
    config = {**FAST, "feature_source": "multimodal", "user_vectors": "history"}
    run_recbole_music("MuSiC", "tiny", config_dict=config, saved=True)
    checkpoint = glob.glob("saved/MuSiC-*.pth")[0]
    user = next(
        u
        for u in ColdStartRecommender.from_checkpoint(checkpoint).dataset.field2id_token["user_id"][
            1:
        ]
        if u.startswith("o")
    )
    assert recommend_main(["--checkpoint", checkpoint, "--user", user]) == 0
    capsys.readouterr()
    save_vectors(folder / "features", "items", items, rng.normal(size=(len(items), 6)))
    assert recommend_main(["--checkpoint", checkpoint, "--user", user]) == 2
    error = capsys.readouterr().err
    assert "does not fit dataset 'tiny'" in error and "'item_vectors'" in error
    assert "Traceback" not in error


def test_a_new_users_history_folds_in_as_the_default_searchs_history_entry_trained(
    tiny_data_root,
):
    """A checkpoint on interaction vectors with history vectors times sqrt(n), trained on thinned
    histories (the default search's last entry): a held-out user's full auxiliary history folds
    in to exactly the u_A the model evaluates them with, never a thinned one."""
    config = {
        **FAST,
        "feature_source": "interactions",
        "user_vectors": "history",
        "interaction_size_search": [],
        "history_vector_scale": "sqrt",
        "history_dropout": 0.5,
    }
    run_recbole_music("MuSiC", "tiny_implicit", config_dict=config, saved=True)
    recommender = ColdStartRecommender.from_checkpoint(glob.glob("saved/MuSiC-*.pth")[0])
    assert recommender.model.features.history_scale == "sqrt"
    user, trained = first_held_out_user(recommender)
    items, ratings = recommender.history_of(user)
    folded = recommender.fold_in_aux_feature(items, ratings)
    assert torch.allclose(folded, trained, atol=1e-5)
    # the same items as a shorter history: another (shorter-scaled) u_A
    assert ratings is None  # implicit feedback: a history is its items
    assert not torch.allclose(recommender.fold_in_aux_feature(items[:1], None), folded)
    first = recommender.recommend_from_history(items, ratings, topk=3, seed=1)
    again = recommender.recommend_from_history(items, ratings, topk=3, seed=1)
    assert len(first.items) == 3 and first.items == again.items
