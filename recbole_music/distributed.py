"""Training on several processes through RecBole's own DDP path (``--nproc``).

``python run_recbole_music.py ... --nproc=2`` takes RecBole's settings — ``nproc``,
``world_size``, ``ip``, ``port``, ``group_offset`` — and starts one process per device. Every
process builds the same split (same seed) and the same model; RecBole's training loaders give
each process its share of every epoch (``DistributedSampler``) and its ``_train_epoch`` averages
the gradients across processes, so one step sees the whole batch, as a single process does.

RecBole 1.2 assumes one GPU per process. What this module adds:

* the process group: NCCL on GPUs (``cuda:<local_rank>``), gloo on CPU (:class:`GroupConfig`;
  RecBole always asks for NCCL and a GPU);
* the DDP wrapper without ``device_ids`` on CPU, and without broadcasting buffers at every
  step (:func:`wrap_for_processes`): the frozen feature and base-MF tables are the same on every
  process, and sending them each step would cost more than the step;
* one answer: validation runs on rank 0 and its score and metrics go to every process
  (:func:`broadcast_json`), so early stopping decides alike everywhere; rank 0 alone writes
  checkpoints, shows progress, evaluates the test users and returns the result.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist
from recbole.config import Config
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data.distributed import DistributedSampler

# a process that waits longer than this on the others (one died, a port is blocked) stops
GROUP_TIMEOUT = timedelta(minutes=10)


@dataclass(frozen=True)
class ProcessGroupSpec:
    """RecBole's multi-process settings (``recbole.quick_start.run``'s arguments)."""

    nproc: int = 1  # processes on this machine
    world_size: int = -1  # processes on all machines (-1: nproc)
    ip: str = "localhost"  # the address of the machine that runs rank 0
    port: int = 5678
    group_offset: int = 0  # this machine's first rank

    @property
    def processes(self) -> int:
        return self.world_size if self.world_size > 0 else self.nproc

    @property
    def active(self) -> bool:
        return self.processes > 1

    def settings(self) -> dict:
        """The config entries RecBole's DDP code reads (``offset`` is its name for the offset)."""
        return {
            "nproc": self.nproc,
            "world_size": self.processes,
            "ip": self.ip,
            "port": self.port,
            "offset": self.group_offset,
        }

    def check(self, use_gpu: bool = True) -> None:
        """A ValueError for settings that cannot run here, before any process starts."""
        if self.nproc < 1:
            raise ValueError(f"--nproc must be at least 1, not {self.nproc}")
        if self.world_size > 0 and self.world_size < self.nproc + self.group_offset:
            raise ValueError(
                f"--world_size={self.world_size} is smaller than this machine's ranks "
                f"(--group_offset={self.group_offset} + --nproc={self.nproc})"
            )
        if not 0 < int(self.port) < 65536:
            raise ValueError(f"--port must be a TCP port (1-65535), not {self.port}")
        if uses_gpus(use_gpu):
            devices, kind = torch.cuda.device_count(), "GPU(s)"
        else:
            devices, kind = os.cpu_count() or 1, "CPU core(s)"
        if self.nproc > devices:
            raise ValueError(
                f"--nproc={self.nproc} is more processes than this machine has devices: "
                f"{devices} {kind} (one process per device)"
            )


def free_local_port() -> int:
    """A TCP port free on this machine now, for a one-machine group's ``--port`` (tests and
    benches start several groups; the OS may hand the port out again once it is closed)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def uses_gpus(use_gpu: bool = True) -> bool:
    return bool(use_gpu) and torch.cuda.is_available()


class GroupConfig(Config):
    """RecBole's Config; with ``local_rank`` set (a process of a group), it joins the process
    group on gloo when there is no GPU to use instead of insisting on NCCL and CUDA."""

    def _init_device(self):
        settings = self.final_config_dict
        if "local_rank" not in settings:
            return super()._init_device()
        settings["gpu_id"] = str(settings["gpu_id"])
        gpu = uses_gpus(settings["use_gpu"]) and settings["gpu_id"] != ""
        rank = settings["local_rank"] + settings["offset"]
        if not dist.is_initialized():
            dist.init_process_group(
                backend="nccl" if gpu else "gloo",
                init_method=f"tcp://{settings['ip']}:{settings['port']}",
                rank=rank,
                world_size=settings["world_size"],
                timeout=GROUP_TIMEOUT,
            )
        if gpu:
            torch.cuda.set_device(settings["local_rank"])
            settings["device"] = torch.device("cuda", settings["local_rank"])
        else:
            settings["device"] = torch.device("cpu")
        settings["single_spec"] = False
        if rank != 0:  # as RecBole: the other processes log errors only and show nothing
            settings["state"] = "error"
            settings["show_progress"] = False
            settings["verbose"] = False


def is_distributed(config) -> bool:
    return not config["single_spec"]


def is_main_process(config) -> bool:
    """Rank 0 of a group, or the only process."""
    return config["single_spec"] or config["local_rank"] + config["offset"] == 0


def wrap_for_processes(model: torch.nn.Module, config) -> DistributedDataParallel:
    """The DDP wrapper RecBole's ``_train_epoch`` syncs gradients through."""
    if not any(p.requires_grad for p in model.parameters()):
        raise ValueError(
            f"--nproc: {config['model']} has no parameters trained by gradient descent, so "
            "there is nothing to share across processes; run it with one process"
        )
    # (RecBole also converts BatchNorm layers to SyncBatchNorm; no model trained here has one)
    device = config["device"]
    device_ids = [device.index] if device.type == "cuda" else None
    # buffers synced once, at construction, not before every forward
    return DistributedDataParallel(model, device_ids=device_ids, forward_sync_buffers=False)


def seed_process_shares(loader, config) -> None:
    """RecBole's training loader on a ``--nproc`` group shuffles through a ``DistributedSampler``
    that it builds with the sampler's default seed, 0, whatever ``--seed`` says: every seed would
    see the same data order. Give the sampler the run's seed, as one process's loader has it."""
    sampler = getattr(loader, "sampler", None)
    if isinstance(sampler, DistributedSampler):
        sampler.seed = int(config["seed"])


def broadcast_json(value, config, src: int = 0):
    """``value`` (JSON data) as rank ``src`` has it, on every process (as text, not pickle)."""
    device = config["device"]
    if dist.get_rank() == src:
        data = torch.tensor(list(json.dumps(value).encode()), dtype=torch.uint8, device=device)
        size = torch.tensor([len(data)], dtype=torch.long, device=device)
    else:
        size = torch.zeros(1, dtype=torch.long, device=device)
    dist.broadcast(size, src)
    if dist.get_rank() != src:
        data = torch.empty(int(size.item()), dtype=torch.uint8, device=device)
    dist.broadcast(data, src)
    return json.loads(bytes(data.cpu().tolist()).decode())


def check_processes_agree(model: torch.nn.Module, config) -> None:
    """A RuntimeError unless every process ends with the same trained weights (a trainer that
    stepped without RecBole's gradient sync would leave each process its own model)."""
    with torch.no_grad():
        mine = torch.stack(
            [torch.stack([p.double().sum(), p.double().pow(2).sum()]) for p in model.parameters()]
        ).flatten()
    mine = mine.to(config["device"])
    lowest, highest = mine.clone(), mine.clone()
    dist.all_reduce(lowest, op=dist.ReduceOp.MIN)
    dist.all_reduce(highest, op=dist.ReduceOp.MAX)
    gap = float((highest - lowest).abs().max()) if len(mine) else 0.0
    if gap > 1e-6 * max(1.0, float(mine.abs().max())):
        raise RuntimeError(
            f"--nproc: the {dist.get_world_size()} processes ended training with different "
            f"weights (largest checksum gap {gap:.3g}): {config['model']}'s trainer updates "
            "the model outside RecBole's gradient sync"
        )


def leave_group() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def run_on_processes(
    model: str,
    dataset: str,
    spec: ProcessGroupSpec,
    config_file_list: list[str] | None = None,
    config_dict: dict | None = None,
    result_json=None,
) -> dict:
    """:func:`~recbole_music.quick_start.run_recbole_music` on ``spec.nproc`` processes of this
    machine (ranks ``group_offset`` …); rank 0's result (the other machines return nothing)."""
    import torch.multiprocessing as mp

    from recbole_music.quick_start import ensure_dataset, probe_config

    spec.check(use_gpu=(config_dict or {}).get("use_gpu", True))
    # what every process would create at once is created here, first: the demo data, and the
    # folders RecBole makes with a check-then-create (two processes racing there fail)
    probe = probe_config(config_file_list, config_dict)
    ensure_dataset(dataset, Path(probe["data_path"]).parent)
    for folder in (Path("log") / model, Path(probe["checkpoint_dir"])):  # RecBole's ./log/
        folder.mkdir(parents=True, exist_ok=True)
    queue = mp.get_context("spawn").SimpleQueue()
    settings = {**(config_dict or {}), **spec.settings()}
    mp.spawn(
        _process,
        args=(model, dataset, config_file_list, settings, result_json, queue),
        nprocs=spec.nproc,
        join=True,
    )
    answer = None if queue.empty() else queue.get()
    if answer and "error" in answer:
        raise ValueError(answer["error"])
    return answer


def _process(local_rank, model, dataset, config_file_list, settings, result_json, queue):
    from dataset_prep.errors import DataError
    from recbole_music.quick_start import DatasetNotFoundError, run_recbole_music

    settings = {**settings, "local_rank": local_rank}
    main = local_rank + settings["offset"] == 0
    try:
        result = run_recbole_music(
            model, dataset, config_file_list, settings, result_json=result_json if main else None
        )
    except (DatasetNotFoundError, DataError, ValueError) as error:
        if main:  # the same input fails alike on every process: one message
            queue.put({"error": str(error)})
        return
    finally:
        leave_group()
    if main:
        queue.put(result)
