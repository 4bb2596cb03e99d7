import pytest
import torch

from tests.common import _one_thread  # noqa: F401  (autouse: these tests run on one torch thread)


@pytest.fixture(scope="session")
def kto_smoke_run():
    """One smoke run of the ``kto`` experiment shared by the experiment and view tests."""
    import workbench

    threads = torch.get_num_threads()
    res = workbench.run("kto", smoke=True, progress=False)
    torch.set_num_threads(threads)
    assert res.status == "completed", res.error
    return res
