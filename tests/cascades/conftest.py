from tests.common import _one_thread  # noqa: F401  (autouse: these tests run on one torch thread)
import pytest
import torch


@pytest.fixture(scope="session")
def cascades_smoke_run():
    """One smoke run of the ``cascades`` experiment (every evaluation) shared by the experiment and view tests."""
    import workbench

    threads = torch.get_num_threads()
    res = workbench.run("cascades", smoke=True, progress=False)
    torch.set_num_threads(threads)
    assert res.status == "completed", res.error
    return res
