"""--nproc: RecBole's DDP path on CPU processes (gloo) — the result of two processes against one,
MuSiC's two stages and a mapping baseline on two processes, the weight check, bad settings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import run_recbole_music
from recbole_music.distributed import (
    ProcessGroupSpec,
    check_processes_agree,
    free_local_port,
    wrap_for_processes,
)

pytestmark = [
    pytest.mark.usefixtures("restore_root_logger"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]

FAST = ("--epochs=2", "--torch_threads=1")


def _run(model: str, out: str, *more: str) -> dict:
    argv = [f"--model={model}", "--dataset=tiny", *FAST, f"--result_json={out}", *more]
    assert run_recbole_music.main(argv) == 0
    return json.loads(Path(out).read_text())


def test_two_processes_give_the_single_process_result_within_tolerance(tiny_data_root):
    one = _run("TargetMF", "one.json", "--seed=3")
    two = _run("TargetMF", "two.json", "--seed=3", "--nproc=2", f"--port={free_local_port()}")
    assert set(two["test"]) == set(one["test"])
    assert two["run"]["settings_changed"]["nproc"] == 2
    # the same split, the same full batch per step; the order of the shards and the negatives
    # differ, so the numbers agree closely rather than bit for bit (docs/scaling.md)
    assert two["test"]["rmse"] == pytest.approx(one["test"]["rmse"], abs=0.05)
    assert two["test"]["mae"] == pytest.approx(one["test"]["mae"], abs=0.05)


@pytest.mark.parametrize("model", ["MuSiC", "EMCDR"])
def test_staged_models_train_on_two_processes(tiny_data_root, model, capfd):
    more = ("--stage1_epochs=1",) if model == "MuSiC" else ()
    result = _run(model, "r.json", "--nproc=2", f"--port={free_local_port()}", *more)
    assert result["run"]["model"] == model
    assert 0 < result["test"]["rmse"] < 5
    # one progress line per epoch and one summary line: the second process shows nothing
    out = capfd.readouterr().out  # the processes write to the file descriptor
    assert out.count(f"{model}: 50% (1/2 epochs") == 1
    assert out.count(f"{model}: best epoch") == 1
    if model == "MuSiC":
        assert out.count("MuSiC stage 1 (side users): 100%") == 1


def test_more_processes_than_devices_is_a_clear_error(tiny_data_root, capsys):
    argv = ["--model=TargetMF", "--dataset=tiny", "--nproc=100000", "--use_gpu=False"]
    assert run_recbole_music.main(argv) == 2
    err = capsys.readouterr().err
    assert "--nproc=100000 is more processes than this machine has devices" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    "spec, message",
    [
        (ProcessGroupSpec(nproc=0), "at least 1"),
        (ProcessGroupSpec(nproc=2, world_size=1), "smaller than this machine's ranks"),
        (ProcessGroupSpec(nproc=1, world_size=2, port=70000), "TCP port"),
    ],
)
def test_bad_group_settings(spec, message):
    with pytest.raises(ValueError, match=message):
        spec.check(use_gpu=False)


def test_a_model_with_nothing_to_train_is_refused():
    frozen = torch.nn.Linear(2, 2).requires_grad_(False)
    config = {"device": torch.device("cpu"), "model": "Frozen"}
    with pytest.raises(ValueError, match="no parameters trained by gradient descent"):
        wrap_for_processes(frozen, config)


def _diverge(rank: int, port: int, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    config = {"device": torch.device("cpu"), "model": "Linear"}
    check_processes_agree(model, config)  # the same weights: passes
    with torch.no_grad():
        model.weight[0, 0] += rank  # as if one process had stepped alone
    try:
        check_processes_agree(model, config)
        outcome = "passed"
    except RuntimeError as error:
        outcome = str(error)
    finally:
        dist.destroy_process_group()
    Path(f"{out}.{rank}").write_text(outcome)


def test_the_weight_check_catches_processes_that_drifted_apart(tmp_path):
    out = str(tmp_path / "outcome")
    mp.spawn(_diverge, args=(free_local_port(), out), nprocs=2, join=True)
    for rank in (0, 1):
        outcome = Path(f"{out}.{rank}").read_text()
        assert "ended training with different weights" in outcome


def test_process_shares_follow_the_run_seed():
    """RecBole builds its DistributedSampler with seed 0: two --seed values must not share one
    data order."""
    from types import SimpleNamespace

    from torch.utils.data.distributed import DistributedSampler

    from recbole_music.distributed import seed_process_shares

    orders = {}
    for seed in (1, 2):
        loader = SimpleNamespace(
            sampler=DistributedSampler(list(range(40)), num_replicas=2, rank=0, shuffle=True)
        )
        seed_process_shares(loader, {"seed": seed})
        assert loader.sampler.seed == seed
        orders[seed] = list(loader.sampler)
    assert orders[1] != orders[2]
    one_process = SimpleNamespace(sampler=None)
    seed_process_shares(one_process, {"seed": 3})  # nothing to seed: a no-op
