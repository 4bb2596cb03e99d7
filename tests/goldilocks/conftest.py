"""One torch thread for the goldilocks tests (tiny models; the machine's cores are shared)."""
from tests.common import _one_thread  # noqa: F401  (an autouse fixture)
