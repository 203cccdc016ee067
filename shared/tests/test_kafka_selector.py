"""The selector given to kafka-python answers as the standard one, without formatting a socket
into the error for one that is not registered."""

from __future__ import annotations

import selectors
import socket
from collections.abc import Iterator

import pytest

from pension_shared.messaging.kafka import _Selector


class CountedSocket(socket.socket):
    """A socket that counts how often it is formatted (``repr`` asks the kernel for its names)."""

    formatted = 0

    def __repr__(self) -> str:
        CountedSocket.formatted += 1
        return super().__repr__()


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    left, right = socket.socketpair()
    counted = CountedSocket(fileno=left.detach())
    CountedSocket.formatted = 0
    yield counted, right
    counted.close()
    right.close()


@pytest.fixture
def selector() -> Iterator[_Selector]:
    chosen = _Selector()
    yield chosen
    chosen.close()


def test_the_key_of_a_socket_not_registered_is_a_key_error_without_formatting_the_socket(pair, selector) -> None:
    sock, _ = pair

    with pytest.raises(KeyError):
        selector.get_key(sock)
    selector.register(sock, selectors.EVENT_READ, "reader")
    selector.unregister(sock)
    with pytest.raises(KeyError):
        selector.get_key(sock)

    assert CountedSocket.formatted == 0


def test_registered_modified_and_unregistered_keys_are_the_standard_selectors(pair, selector) -> None:
    sock, _ = pair
    standard = selectors.DefaultSelector()
    try:
        for chosen in (selector, standard):
            registered = chosen.register(sock, selectors.EVENT_READ, ("reader", None))
            assert chosen.get_key(sock) == registered
            same_events = chosen.modify(sock, selectors.EVENT_READ, ("reader", "other"))
            assert chosen.get_key(sock) == same_events and same_events.data == ("reader", "other")
            both = chosen.modify(sock, selectors.EVENT_READ | selectors.EVENT_WRITE, ("reader", "writer"))
            assert chosen.get_key(sock) == both
            assert chosen.get_key(sock.fileno()) == both, "a file descriptor finds the key as well"
            assert chosen.unregister(sock) == both
            with pytest.raises(KeyError):
                chosen.get_key(sock)
            with pytest.raises(KeyError):
                chosen.get_key(sock.fileno())
    finally:
        standard.close()


def test_it_selects_what_is_ready(pair, selector) -> None:
    sock, other = pair
    selector.register(sock, selectors.EVENT_READ, "reader")
    assert selector.select(timeout=0) == []

    other.send(b"x")
    [(key, events)] = selector.select(timeout=1)

    assert key == selector.get_key(sock) and key.data == "reader" and events == selectors.EVENT_READ


def test_a_closed_selector_says_so_as_the_standard_one(pair) -> None:
    sock, _ = pair
    chosen = _Selector()
    chosen.register(sock, selectors.EVENT_READ)
    chosen.close()

    with pytest.raises(RuntimeError, match="Selector is closed"):
        chosen.get_key(sock)
