"""Feature extraction over several workers on Ray: the shards of a table, spread over actors.

Each actor loads the encoder once and embeds whole shards with the same code as a
single-process run (``pipeline.encode_shard``), so a shard's vectors do not depend on where it
ran. The driver keeps the shard cache: it writes each shard that comes back, as a
single-process run does, so an interrupted run resumes from the finished shards whichever
worker embedded them. A worker that dies is restarted by Ray and its shard is embedded again
(``WORKER_RETRIES`` times); the driver never loads the model itself.

``--ray local`` starts a cluster inside this process (several GPUs of one machine);
``--ray auto`` or ``--ray HOST:PORT`` joins a running one (``ray start --head`` on the head
node, ``ray start --address HEAD:PORT`` on the others; every node needs the model folder at
the same path and this package installed).
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass

logger = logging.getLogger("dataset_prep.features")

WORKER_RETRIES = 2  # restarts of a dead worker, and retries of the shard it was embedding
CONNECT_TIMEOUT_S = 5.0


class RayClusterError(ValueError):
    """The Ray cluster cannot be reached or cannot host the workers asked for."""


@dataclass(frozen=True)
class RaySettings:
    address: str  # "local", "auto" or HOST:PORT
    num_workers: int = 2
    gpus_per_worker: float = 0.0
    cpus_per_worker: float = 1.0
    torch_threads: int | None = None  # in each worker; default: cpus_per_worker


@dataclass(frozen=True)
class EncoderSnapshot:
    """What the driver needs of an encoder that lives in the workers: its description (for the
    shard fingerprint and the table's manifest), never its weights."""

    spec: object
    path: str
    kind: str
    pooling: str
    max_length: int
    dim: int
    supports_images: bool
    description: dict
    model_identity: dict

    def describe(self) -> dict:
        return dict(self.description)


def _check_reachable(address: str) -> None:
    """Ray retries an unreachable head for minutes; a plain TCP connect answers in seconds."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise RayClusterError(f"--ray {address}: expected local, auto or HOST:PORT")
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise RayClusterError(
            f"--ray {address}: no Ray head answers there ({exc.strerror or exc}); start one "
            "with `ray start --head` on that machine, or use --ray local"
        ) from None


class RayCluster:
    """A connection to a Ray cluster for one command (``with RayCluster(s) as c``): starts or
    joins it on entry, leaves it on exit (a cluster this process did not start keeps running;
    nor is one that was already initialised in this process, as in tests, shut down)."""

    def __init__(self, settings: RaySettings):
        if settings.num_workers < 1:
            raise RayClusterError("--num-workers must be >= 1")
        if settings.gpus_per_worker < 0 or settings.cpus_per_worker <= 0:
            raise RayClusterError("--gpus-per-worker must be >= 0 and CPUs per worker > 0")
        self.settings = settings
        self._owns_connection = False

    def __enter__(self) -> RayCluster:
        import ray

        s = self.settings
        if not ray.is_initialized():
            kwargs = {"include_dashboard": False, "log_to_driver": False}
            if s.address == "local":
                ray.init(num_cpus=max(1, int(s.num_workers * s.cpus_per_worker)), **kwargs)
            else:
                if s.address != "auto":
                    _check_reachable(s.address)
                try:
                    ray.init(address=s.address, **kwargs)
                except ConnectionError as exc:
                    raise RayClusterError(f"--ray {s.address}: {exc}") from None
            self._owns_connection = True
        self._check_resources(ray.cluster_resources())
        return self

    def __exit__(self, *exc) -> None:
        if self._owns_connection:
            import ray

            ray.shutdown()

    def _check_resources(self, resources: dict) -> None:
        s = self.settings
        for name, each in (("GPU", s.gpus_per_worker), ("CPU", s.cpus_per_worker)):
            need, have = s.num_workers * each, float(resources.get(name, 0))
            if need > have:
                raise RayClusterError(
                    f"--num-workers {s.num_workers} × {each:g} {name} each needs {need:g} "
                    f"{name}s; the Ray cluster has {have:g}"
                )

    def workers(self, spec, encoder_factory: Callable | None = None) -> ShardWorkers:
        return ShardWorkers(self.settings, spec, encoder_factory)


def _worker_class():
    import ray

    @ray.remote
    class ShardWorker:
        def __init__(self, spec, encoder_factory, torch_threads):
            import torch

            from dataset_prep.features.encoders import load_encoder

            torch.set_num_threads(torch_threads)
            self.encoder = (encoder_factory or load_encoder)(spec)

        def snapshot(self) -> EncoderSnapshot:
            from dataset_prep.features.pipeline import model_identity

            e = self.encoder
            return EncoderSnapshot(
                spec=e.spec,
                path=e.path,
                kind=e.kind,
                pooling=e.pooling,
                max_length=e.max_length,
                dim=e.dim,
                supports_images=e.supports_images,
                description=e.describe(),
                model_identity=model_identity(e.path),
            )

        def encode(self, k, rows, settings, base_dir, images):
            from dataset_prep.features.pipeline import encode_shard_reading_images
            from dataset_prep.progress import Progress

            silent = Progress(len(rows), "", enabled=False)
            return k, *encode_shard_reading_images(
                rows, self.encoder, settings, base_dir, images, silent
            )

    return ShardWorker


class ShardWorkers:
    """``num_workers`` actors, each holding the encoder; ``encode`` yields shards as they finish."""

    def __init__(self, settings: RaySettings, spec, encoder_factory=None):
        import ray

        threads = settings.torch_threads or max(1, int(settings.cpus_per_worker))
        options = {
            "num_cpus": settings.cpus_per_worker,
            "num_gpus": settings.gpus_per_worker,
            "max_restarts": WORKER_RETRIES,
            "max_task_retries": WORKER_RETRIES,
        }
        worker = _worker_class()
        self.actors = [
            worker.options(**options).remote(spec, encoder_factory, threads)
            for _ in range(settings.num_workers)
        ]
        try:
            self.snapshot = ray.get(self.actors[0].snapshot.remote())
        except ray.exceptions.RayError as exc:
            self.close()
            raise RayClusterError(
                f"a Ray worker could not load the encoder: {_cause(exc)}"
            ) from None

    @property
    def parallelism(self) -> int:
        return len(self.actors)

    def encode(
        self, todo: list[int], shards: list, settings, base_dir, images: dict
    ) -> Iterator[tuple[int, dict, list]]:
        """(shard index, shard result, unreadable images) for each shard in ``todo``, in the
        order they finish; one shard per worker at a time."""
        import ray

        queue, running = list(todo), {}

        def submit(actor):
            k = queue.pop(0)
            ref = actor.encode.remote(k, shards[k], settings, base_dir, images)
            running[ref] = (actor, k)

        for actor in self.actors[: len(queue)]:
            submit(actor)
        try:
            while running:
                done, _ = ray.wait(list(running), num_returns=1)
                actor, k = running.pop(done[0])
                try:
                    yield ray.get(done[0])
                except ray.exceptions.RayError as exc:
                    ids = shards[k]
                    raise RayClusterError(
                        f"shard {k} (rows {ids[0].id} … {ids[-1].id}) failed on a Ray worker "
                        f"{WORKER_RETRIES + 1} times: {_cause(exc)}"
                    ) from None
                if queue:
                    submit(actor)
        finally:
            for ref in running:
                ray.cancel(ref, force=True)

    def close(self) -> None:
        import ray

        for actor in self.actors:
            ray.kill(actor)


def _cause(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[-1] if text else type(exc).__name__
