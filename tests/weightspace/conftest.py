from tests.common import _one_thread  # noqa: F401  (autouse: one torch thread)
