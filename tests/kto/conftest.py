import pytest

from tests.common import _one_thread, shared, smoke_run  # noqa: F401  (autouse: these tests run on one torch thread)


@pytest.fixture(scope="session")
@shared("smoke-kto")
def kto_smoke_run():
    """The ``kto`` experiment's one smoke run, shared by the experiment and view tests and the contract."""
    res = smoke_run("kto").result
    assert res.status == "completed", res.error
    return res
