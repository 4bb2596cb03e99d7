from tests.common import _one_thread, shared, smoke_run  # noqa: F401  (autouse: these tests run on one torch thread)
import pytest


@pytest.fixture(scope="session")
@shared("smoke-cascades")
def cascades_smoke_run():
    """The ``cascades`` experiment's one smoke run (every evaluation), shared by the experiment and view tests and
    the contract."""
    res = smoke_run("cascades").result
    assert res.status == "completed", res.error
    return res
