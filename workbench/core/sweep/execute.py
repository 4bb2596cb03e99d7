"""Ray as the sweep's executor: a local cluster on the loopback address, or an existing cluster (``address``).

Locally Ray binds to 127.0.0.1 only (never the machine's network address), with its dashboard and usage
reporting off. Ray's own Python helpers import ``jsonschema``, which builds the ``rfc3987_syntax`` grammar at import
when that package is installed (Jupyter pulls it in): 12 of the 16 s a helper took to start on a loaded 2-core
machine, past the raylet's fixed 15 s wait for them. The local cluster's processes therefore see a stub that makes
that optional import fail (jsonschema then skips the IRI format checks, which Ray does not use).
"""
from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from workbench.core.params import ConfigError

#: Ray's notes at the start of a local cluster that ask nothing of the user (a sweep started from a notebook's
#: background thread sets no SIGTERM handler by design; token authentication is on, as wanted): not shown
_NOTES = {"ray._private.worker": "SIGTERM handler is not set",
          "ray._private.authentication.authentication_token_setup": "Token authentication is enabled"}


class _Quiet(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not any(record.getMessage().startswith(n) for n in _NOTES.values())


_STUB = 'raise ImportError("not loaded in the sweep\'s Ray processes (slow to import; unused by Ray)")\n'


def _stub_dir() -> str:
    path = Path(tempfile.gettempdir()) / "workbench-ray-stubs"
    path.mkdir(exist_ok=True)
    target = path / "rfc3987_syntax.py"
    if not target.exists() or target.read_text() != _STUB:
        tmp = path / f".rfc3987_syntax.{os.getpid()}"
        tmp.write_text(_STUB)
        os.replace(tmp, target)
    return str(path)


def connect(address: str | None = None, num_cpus: int | None = None, num_gpus: int | None = None) -> bool:
    """Start a local Ray cluster on 127.0.0.1 (or join ``address``) unless this process is connected already;
    returns whether this call connected (so the caller shuts down only what it started)."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    local = address is None or address.split("://")[-1].rsplit(":", 1)[0] in ("127.0.0.1", "localhost")
    if local:  # Ray's switch for "this machine only": every Ray process takes the loopback address as its own
        os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    try:
        import ray
    except ImportError:
        raise ConfigError("sweeps run on Ray: pip install 'workbench[sweep]'", "sweep") from None
    if local:  # read when Ray was imported: an earlier import of ray in this process missed the switch
        from ray._private import ray_constants

        ray_constants.ENABLE_RAY_CLUSTER = False
    if ray.is_initialized():
        return False
    if address is not None:
        ray.init(address=address, log_to_driver=False, configure_logging=False)
        return True
    before = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join([_stub_dir(), *([before] if before else [])])
    quiet = _Quiet()
    for name in _NOTES:
        logging.getLogger(name).addFilter(quiet)
    try:
        ray.init(num_cpus=num_cpus or os.cpu_count() or 1, num_gpus=num_gpus, include_dashboard=False,
                 log_to_driver=False, configure_logging=False, logging_level="warning",
                 object_store_memory=128 * 2**20)
    finally:
        for name in _NOTES:
            logging.getLogger(name).removeFilter(quiet)
        if before is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = before
    ip = ray.util.get_node_ip_address()
    if ip != "127.0.0.1":
        ray.shutdown()
        raise ConfigError(f"the local Ray cluster bound to {ip}, not 127.0.0.1; stopped it", "address")
    return True


def shutdown() -> None:
    import ray

    ray.shutdown()


def remote_trial(num_cpus: float, num_gpus: float) -> Any:
    """The Ray task that runs one trial (never retried: a trial whose process dies is failed, not run twice)."""
    import ray

    return ray.remote(num_cpus=num_cpus, num_gpus=num_gpus, max_retries=0, retry_exceptions=False)(_trial_task)


def _trial_task(job: dict[str, Any]) -> dict[str, Any]:
    import torch

    from .trial import run_trial

    torch.set_num_threads(max(1, int(job["config"].get("threads") or 1)))
    return run_trial(job)


def is_worker_death(err: BaseException) -> bool:
    """The trial's process died (killed, out of memory, lost node) rather than the trial raising."""
    import ray.exceptions as rx

    kinds = tuple(k for k in (getattr(rx, n, None) for n in ("WorkerCrashedError", "NodeDiedError",
                                                                "OutOfMemoryError", "LocalRayletDiedError",
                                                                "ActorDiedError")) if k is not None)
    return isinstance(err, kinds)
