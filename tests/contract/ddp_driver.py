"""Run under ``torchrun``: every registered experiment in smoke mode (with its ``ddp_smoke`` overrides).

Rank 0 writes ``{name: {"refused": message} | {"run_id": id, "status": status}}`` to the JSON file given as
the first argument; a refusal must come before anything runs (no run in the store, no process group hung).
"""
import json
import sys

import workbench
from workbench.core.params import ConfigError
from workbench.store.store import Store

out, home = sys.argv[1], sys.argv[2]
rank = int(__import__("os").environ.get("RANK", "0"))
store = Store(home) if rank == 0 else None
results = {}
for name, exp in workbench.experiments().items():
    try:
        res = workbench.run(name, dict(exp.ddp_smoke), smoke=True, progress=False, store=store)
        results[name] = {"run_id": res.run_id, "status": res.status, "error": res.error}
    except ConfigError as err:
        results[name] = {"refused": str(err)}
if rank == 0:
    with open(out, "w") as fh:
        json.dump(results, fh)

import torch.distributed as dist  # noqa: E402

if dist.is_initialized():  # leave together: a rank exiting while the other still talks to it aborts
    dist.barrier()
    dist.destroy_process_group()
if rank > 0:  # as `workbench run` does: no C++ static destructors in a worker (gloo threads may abort at teardown)
    sys.stdout.flush()
    sys.stderr.flush()
    __import__("os")._exit(0)
