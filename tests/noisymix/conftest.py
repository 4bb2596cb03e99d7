from tests.common import _one_thread  # noqa: F401  (autouse: these tests run on one torch thread)
