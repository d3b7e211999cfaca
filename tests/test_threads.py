"""ganlib.utils.configure_threads: one torch thread by default, GANLIB_THREADS overrides it."""

import pytest

from ganlib.utils import configure_threads

torch = pytest.importorskip("torch")


@pytest.fixture(autouse=True)
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_default_is_one_thread(monkeypatch):
    monkeypatch.delenv("GANLIB_THREADS", raising=False)
    torch.set_num_threads(2)
    assert configure_threads() == 1 == torch.get_num_threads()


def test_explicit_number_wins_over_the_environment(monkeypatch):
    monkeypatch.setenv("GANLIB_THREADS", "1")
    assert configure_threads(2) == 2 == torch.get_num_threads()


@pytest.mark.parametrize("value,expected", [("2", 2), (" 1 ", 1)])
def test_environment_sets_the_number(monkeypatch, value, expected):
    monkeypatch.setenv("GANLIB_THREADS", value)
    assert configure_threads() == expected == torch.get_num_threads()


@pytest.mark.parametrize("value", ["0", "auto", "AUTO"])
def test_zero_or_auto_keeps_torch_default(monkeypatch, value):
    torch.set_num_threads(2)
    monkeypatch.setenv("GANLIB_THREADS", value)
    assert configure_threads() == 2 == torch.get_num_threads()


@pytest.mark.parametrize("n", [0, -1, 1.5, True, "2"])
def test_bad_argument_is_a_clear_error(n):
    with pytest.raises(ValueError, match="positive integer"):
        configure_threads(n)


def test_bad_environment_value_names_the_variable(monkeypatch):
    monkeypatch.setenv("GANLIB_THREADS", "many")
    with pytest.raises(ValueError, match="GANLIB_THREADS='many'"):
        configure_threads()
