"""Where cases run: in this process, on a local process pool, or on a Dask cluster.

Each executor takes the cases and a callback, calls it once per finished case with its
record (in completion order), and returns when all are done.  Ctrl-C stops it at once:
what has completed is already stored by the callback.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

from homenode.errors import HomenodeError, InputError
from homenode.sweep.cases import Case
from homenode.sweep.runner import run_case

OnRecord = Callable[[dict[str, Any]], None]
CONNECT_TIMEOUT_S = 10.0   # an unreachable scheduler is an error after this long
DASK_WINDOW = 64           # cases in flight on a Dask cluster, at least (4 per worker)


class Serial:
    """In this process, one case after another (``--jobs 1``)."""

    name = "serial"

    def __init__(self, root: Path):
        self.root = root

    def run(self, cases: list[Case], on_record: OnRecord) -> None:
        for c in cases:
            on_record(run_case(c, str(self.root)))

    def close(self) -> None:
        pass


class LocalPool:
    """A process pool on this machine; workers read trace files from the traces dir."""

    name = "local"

    def __init__(self, root: Path, jobs: int):
        self.root, self.jobs = root, jobs

    def run(self, cases: list[Case], on_record: OnRecord) -> None:
        pool = ProcessPoolExecutor(max_workers=self.jobs)
        try:
            # A bounded window of submissions keeps memory flat for huge sweeps.
            todo = iter(cases)
            pending = set()
            for c in todo:
                pending.add(pool.submit(run_case, c, str(self.root)))
                if len(pending) >= 4 * self.jobs:
                    break
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    on_record(fut.result())
                    nxt = next(todo, None)
                    if nxt is not None:
                        pending.add(pool.submit(run_case, nxt, str(self.root)))
        except BaseException:
            # Python 3.11 has no public way to stop running workers, and exiting would
            # wait for their cases: a SIGINT sent to the driver alone must stop it now.
            # (shutdown forgets the processes: take them first.)
            procs = list((getattr(pool, "_processes", None) or {}).values())
            pool.shutdown(wait=False, cancel_futures=True)
            for proc in procs:
                with contextlib.suppress(Exception):
                    proc.terminate()
            raise
        pool.shutdown()

    def close(self) -> None:
        pass


class Dask:
    """A Dask cluster: ``tcp://host:port`` of a running scheduler, or ``local:N`` for a
    ``LocalCluster`` of N single-threaded worker processes started here.

    Each trace file is one task holding its bytes (keyed by sha256), and every case task
    depends on the files it reads: a worker fetches a file once, workers need no shared
    filesystem, and -- unlike scattered data -- a file lost with a dying worker is
    recomputed from the scheduler's copy.  A worker that dies mid-case loses nothing: the
    scheduler runs its tasks again elsewhere, and the driver stores each key once.
    """

    name = "dask"

    def __init__(self, address: str, files: dict[str, Path]):
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            raise InputError("--dask", address, "needs the dask extra: pip install "
                             "'homenode[dask]'") from None
        self.cluster = None
        if address.startswith("local:"):
            n = address.partition(":")[2]
            if not n.isdigit() or int(n) < 1:
                raise InputError("--dask", address, "local:N needs N >= 1 worker processes")
            self.cluster = LocalCluster(n_workers=int(n), threads_per_worker=1,
                                        processes=True, dashboard_address=":0",
                                        host="127.0.0.1")
            target: Any = self.cluster
        elif address.startswith(("tcp://", "tls://", "ucx://")) or ":" in address:
            target = address
        else:
            raise InputError("--dask", address, "expected tcp://HOST:PORT or local:N")
        try:
            self.client = Client(target, timeout=CONNECT_TIMEOUT_S)
        except (OSError, TimeoutError) as e:
            self.close()
            raise InputError("--dask", address, f"cannot reach the scheduler: "
                             f"{str(e).splitlines()[0] if str(e) else type(e).__name__}"
                             ) from None
        self.files = files

    def run(self, cases: list[Case], on_record: OnRecord) -> None:
        from distributed import as_completed

        needed = sorted({sha for c in cases for _, sha in c.traces})
        blobs = {sha: self.client.submit(_blob, self.files[sha].read_bytes(),
                                         key=f"trace-{sha}", pure=False)
                 for sha in needed}

        def submit(c: Case) -> Any:
            return self.client.submit(run_case, c, {sha: blobs[sha] for _, sha in c.traces},
                                      key=f"case-{c.key}", pure=False)

        # A bounded window of cases in flight, as for the local pool: the scheduler holds
        # a few hundred tasks, not the whole sweep, whatever its size.
        workers = max(1, len(self.client.scheduler_info().get("workers", {})))
        todo = iter(cases)
        futures = [submit(c) for c in itertools.islice(todo, max(DASK_WINDOW, 4 * workers))]
        try:
            pending = as_completed(futures)
            for fut in pending:
                on_record(fut.result())
                fut.release()
                nxt = next(todo, None)
                if nxt is not None:
                    futures.append(submit(nxt))
                    pending.add(futures[-1])
        except KeyboardInterrupt:
            with contextlib.suppress(Exception):
                self.client.cancel(futures)
            raise
        except Exception as e:
            # The scheduler (or the connection to it) is gone: cases cannot fail like
            # this (run_case returns their errors), so the sweep stops, resumable.
            raise HomenodeError(f"dask: lost the cluster ({type(e).__name__}: "
                                f"{str(e).splitlines()[0] if str(e) else ''}); what finished "
                                "is stored: run again with --resume") from None

    def close(self) -> None:
        for thing in (getattr(self, "client", None), self.cluster):
            if thing is not None:
                with contextlib.suppress(Exception):
                    thing.close()


def _blob(data: bytes) -> bytes:
    """A trace file's bytes as a task result (see ``Dask``)."""
    return data
