import pytest

from tests.common import _one_thread, shared  # noqa: F401  (autouse: one torch thread)
from tests.common import smoke_run as shared_smoke_run


@pytest.fixture(scope="session")
@shared("smoke-nft")
def smoke_run():
    """The nft experiment's one smoke run, shared by the experiment and view tests and the contract."""
    res = shared_smoke_run("nft").result
    assert res.status == "completed", res.error
    return res
