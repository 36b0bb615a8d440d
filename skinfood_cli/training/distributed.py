"""Training on several processes under torchrun: the DistributedDataParallel plumbing.

`torchrun --nproc-per-node N -m skinfood_cli train ...` starts N copies of the
command with WORLD_SIZE, RANK, LOCAL_RANK and LOCAL_WORLD_SIZE in their
environment. Everything here reads those variables first and is a no-op on one
process: no torch.distributed import, no collective, nothing to pay for a
plain `skinfood train`.

Who does what in a job of N processes ("ranks"):

    rank 0      scans and splits the dataset, fetches the ImageNet weights,
                creates the run folder, reads a checkpoint to resume, writes
                checkpoints, metrics.csv and config.yaml, draws the progress,
                calibrates best.pt; it hands what it found to the others
    every rank  trains on its slice of each global batch (DDP averages the
                gradients) and predicts its slice of the validation split

Every decision that changes which collectives come next (stop on Ctrl-C, stop
early, the phase) is taken from reduced or broadcast values, so the ranks take
it together and none waits in a collective the others skipped.

Backends: gloo for CPU tensors and for the small Python objects broadcast
here; NCCL for CUDA tensors when the machine has GPUs ("cpu:gloo,cuda:nccl").
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading

from skinfood_cli.errors import EXIT_INTERRUPTED, EXIT_SOME_FAILED, PeerError, SkinfoodError, UsageError


def _env_int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        return default


def world_size() -> int:
    """Processes in the job: torchrun's WORLD_SIZE, 1 without torchrun."""
    return max(1, _env_int("WORLD_SIZE", 1))


def launched() -> bool:
    """Whether this process is one of several started by torchrun."""
    return world_size() > 1


def rank() -> int:
    return _env_int("RANK", 0) if launched() else 0


def local_rank() -> int:
    """This process's index on its machine: it picks the GPU (cuda:LOCAL_RANK)."""
    return _env_int("LOCAL_RANK", 0) if launched() else 0


def local_world_size() -> int:
    return max(1, _env_int("LOCAL_WORLD_SIZE", 1)) if launched() else 1


def is_main() -> bool:
    """Rank 0: the one process that writes files and talks to the terminal."""
    return rank() == 0


@contextlib.contextmanager
def session(*, exiting: bool = False):
    """Join the torchrun job for the body, and leave it on the way out (also on errors).

    Re-entrant: an inner session inside an outer one does nothing, so the CLI can
    hold the job open while it prints and the core still works when called alone.
    After a body that ends without an exception every rank meets at a barrier, so
    no process exits (and gets the job torn down) while rank 0 still writes or
    prints; after an exception there is no barrier — the other ranks may be stuck
    elsewhere, and torchrun ends them when this one exits.

    Args:
        exiting: the process ends right after (the CLI). When one rank exits
            with a non-zero status (130 after Ctrl-C) torchrun SIGTERMs the
            others; past the barrier they have nothing left but to exit, so
            they ignore it and report their own status rather than "killed".
    """
    if not launched():
        yield
        return
    import torch
    import torch.distributed as dist

    if dist.is_initialized():
        yield
        return
    backend = "cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo"
    try:
        dist.init_process_group(backend)
    except (RuntimeError, ValueError) as exc:
        first = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0]
        raise UsageError(f"could not join the torchrun job (rank {rank()} of {world_size()}): {first}") from None
    clean = False
    try:
        yield
        clean = True
    finally:
        try:
            if clean:
                dist.barrier()
                if exiting and threading.current_thread() is threading.main_thread():
                    signal.signal(signal.SIGTERM, signal.SIG_IGN)
        finally:
            dist.destroy_process_group()


def share(fn, *args, **kwargs):
    """Run `fn` on rank 0 only and hand its result to every rank.

    What one process should do once (scan the dataset, create the run folder,
    read a checkpoint) runs once. An error there reaches every rank, so none
    waits forever for a result that won't come: rank 0 raises it (and the CLI
    prints it), the others raise a silent PeerError with the same exit code.
    """
    if not launched():
        return fn(*args, **kwargs)
    import torch.distributed as dist

    box: list = [None]
    failure = None
    if is_main():
        try:
            box[0] = ("ok", fn(*args, **kwargs))
        except BaseException as exc:
            failure = exc
            box[0] = ("error", *_describe(exc))
    dist.broadcast_object_list(box, src=0)
    if failure is not None:
        raise failure
    kind, *rest = box[0]
    if kind == "error":
        message, code = rest
        raise PeerError(f"rank 0 stopped: {message}", exit_code=code)
    return rest[0]


def _describe(exc: BaseException) -> tuple[str, int]:
    if isinstance(exc, SkinfoodError):
        return exc.message, exc.exit_code
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted", EXIT_INTERRUPTED
    return f"{exc.__class__.__name__}: {exc}", EXIT_SOME_FAILED


# --- collectives (every rank must call them, in the same order) ----------------------


def any_rank(flag: bool) -> bool:
    """Whether `flag` is true on any rank: how the ranks agree to stop at the same step."""
    if not launched():
        return flag
    import torch
    import torch.distributed as dist

    t = torch.tensor([int(flag)], dtype=torch.int32)  # CPU tensor: gloo, a few microseconds
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def max_ranks(value: float) -> float:
    """The largest `value` over the ranks: one clock for all under --minutes, so every
    rank sets the same learning rate and stops after the same step."""
    if not launched():
        return value
    import torch
    import torch.distributed as dist

    t = torch.tensor([value], dtype=torch.float64)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return float(t.item())


def sum_ranks(values: list[float]) -> list[float]:
    """Element-wise sum of `values` over the ranks (in float64, so counts stay exact)."""
    if not launched():
        return list(values)
    import torch
    import torch.distributed as dist

    t = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.tolist()


def gather(obj) -> list:
    """`obj` from every rank, in rank order (small picklable things: logits, labels)."""
    if not launched():
        return [obj]
    import torch.distributed as dist

    out: list = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_buffers(module) -> None:
    """Copy rank 0's buffers (BatchNorm running statistics) into every rank's `module`.

    DDP sends rank 0's buffers at the start of each training forward, but that
    forward then updates every rank's running statistics from its own slice of
    the batch: after the last step they differ slightly. Validation on several
    ranks must use one model, rank 0's — the one it saves.
    """
    if not launched():
        return
    import torch.distributed as dist

    for buffer in module.buffers():
        dist.broadcast(buffer, src=0)


def barrier() -> None:
    if launched():
        import torch.distributed as dist

        dist.barrier()


# --- sharding ----------------------------------------------------------------------


def shard_indices(n: int, rank_: int | None = None, world: int | None = None) -> range:
    """The items of a list of `n` that one rank handles: every world-th from its rank.

    Nothing is padded or repeated (DistributedSampler pads to equal shards with
    duplicates, which would count some validation photos twice).
    """
    rank_ = rank() if rank_ is None else rank_
    world = world_size() if world is None else world
    return range(rank_, n, world)


def interleave(pieces: list, n: int):
    """Put per-rank numpy arrays from `shard_indices` back into the original order.

    Args:
        pieces: pieces[r] holds rows for indices r, r + W, r + 2W, ... (W = len(pieces)).
        n: the total number of rows.
    Returns:
        One array of `n` rows, row i from the rank that handled item i.
    """
    import numpy as np

    world = len(pieces)
    first = pieces[0]
    out = np.empty((n, *first.shape[1:]), dtype=first.dtype)
    for r, piece in enumerate(pieces):
        out[r::world] = piece
    return out


# --- devices and the model -------------------------------------------------------------


def rank_device(device):
    """This process's place on `device` (what `model.resolve_device` chose for the job): the
    device itself alone; under torchrun, the CPU or cuda:LOCAL_RANK.

    Rank 0 calls it once before any work, so a bad device is one error, not one per rank.

    Raises:
        UsageError: Apple MPS, an explicit cuda:N, or more processes on a machine
            than it has GPUs.
    """
    import torch

    device = torch.device(device)
    if not launched():
        return device
    if device.type == "mps":
        raise UsageError("torchrun training runs on CUDA GPUs (NCCL) or CPUs (gloo), not Apple MPS: pass --device cpu")
    if device.type != "cuda":
        return device
    if device.index is not None:
        raise UsageError(
            f"under torchrun every process uses the GPU of its LOCAL_RANK: pass --device cuda, "
            f"not {device} (choose the GPUs with CUDA_VISIBLE_DEVICES)"
        )
    count = torch.cuda.device_count()
    if local_world_size() > count or local_rank() >= count:
        raise UsageError(
            f"torchrun starts {local_world_size()} processes on this machine but it has {count} "
            f"GPU(s): use --nproc-per-node {count}"
        )
    device = torch.device("cuda", local_rank())
    torch.cuda.set_device(device)
    return device


def wrap(model, device):
    """`model` in DistributedDataParallel, for the parameters that train right now.

    DDP only reduces the gradients of parameters that required grad when it was
    built, so the caller wraps again when that set changes (the backbone
    unfreezing) — after dropping the old wrapper, whose gradient hooks go with
    it. Building one also copies rank 0's parameters and buffers to every rank,
    which is why only rank 0 needs to load the ImageNet weights.
    """
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids, output_device=ids[0] if ids else None)


def convert_sync_batchnorm(model):
    """BatchNorm layers that compute their batch statistics over all ranks (CUDA only).

    Same parameters and buffers under the same names, so checkpoints load into a
    plain ResNet50.
    """
    import torch

    return torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
