import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models: intra-op threads only contend on a shared CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def kto_smoke_run():
    """One smoke run of the ``kto`` experiment shared by the experiment and view tests."""
    import workbench

    threads = torch.get_num_threads()
    res = workbench.run("kto", smoke=True, progress=False)
    torch.set_num_threads(threads)
    assert res.status == "completed", res.error
    return res
