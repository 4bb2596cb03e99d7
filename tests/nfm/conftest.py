"""One torch thread while these tests run: the test machine's cores are shared, and tiny models are slower
with two threads fighting for them than with one."""
import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
