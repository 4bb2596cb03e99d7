import pytest

from tests.common import _one_thread  # noqa: F401  (autouse: one torch thread)


@pytest.fixture(scope="session")
def smoke_run():
    """One smoke run of the whole nft experiment, shared by the experiment and view tests."""
    import workbench

    res = workbench.run("nft", smoke=True, progress=False)
    assert res.status == "completed", res.error
    return res
