"""futures.py uses concurrent.futures' private attributes and states: if the
running CPython changes them, fail here, loudly, rather than in a hang."""

import concurrent.futures._base as base
import types

import pytest

from canonical_raft import futures

pytestmark = pytest.mark.timeout(30)


def _names_read(fn):
    names = set()

    def walk(code):
        names.update(code.co_names)
        for const in code.co_consts:
            if isinstance(const, types.CodeType):
                walk(const)
    walk(fn.__code__)
    return names


def _base_code():
    """Every function of concurrent.futures._base that touches a Future's
    insides: the Future's methods, wait(), as_completed() and helpers."""
    for cls in (base.Future, base._AcquireFutures):
        yield from (v for v in vars(cls).values() if isinstance(v, types.FunctionType))
    yield from (v for v in vars(base).values() if isinstance(v, types.FunctionType))


def test_base_reads_exactly_the_attributes_we_provide():
    read = set()
    for fn in _base_code():
        read |= _names_read(fn)
    private = {n for n in read if n.startswith("_") and not n.startswith("__")
               and not hasattr(base.Future, n) and not hasattr(base, n)}
    assert private == futures.BASE_ATTRIBUTES, (
        "concurrent.futures changed the private attributes it reads: "
        f"now {sorted(private)}, futures.py provides {sorted(futures.BASE_ATTRIBUTES)}")


def test_base_instance_has_exactly_those_attributes():
    assert set(vars(base.Future())) == futures.BASE_ATTRIBUTES


def test_our_future_provides_each_attribute_without_the_base_init():
    fut = futures.Future()
    for name in futures.BASE_ATTRIBUTES:
        getattr(fut, name)           # each one, lazily made or set in __init__
    assert fut._state is futures.RUNNING


def test_state_names_are_the_base_class_objects():
    plain = base.Future()
    assert plain._state is base.PENDING
    plain.set_running_or_notify_cancel()
    assert plain._state is futures.RUNNING
    plain.set_result(1)
    assert plain._state is futures.FINISHED
    cancelled = base.Future()
    cancelled.cancel()
    assert cancelled._state is futures.CANCELLED
    assert set(base._STATE_TO_DESCRIPTION_MAP) >= {
        futures.RUNNING, futures.FINISHED, futures.CANCELLED, futures.CANCELLED_AND_NOTIFIED}
