"""pytest plugin of canonical_raft: the ``raft_cluster`` fixture.

Installed with canonical_raft (a ``pytest11`` entry point), so any test can
ask for it::

    def test_replicates(raft_cluster):
        cluster = raft_cluster(n=3, fsm_factory=Counter)
        cluster.apply(b"1")
        cluster.wait_converged(key=lambda fsm: fsm.value)

Without the installed entry point (running from a source tree), load it with
``pytest_plugins = ["canonical_raft.pytest_plugin"]`` in a conftest.py or
``pytest -p canonical_raft.pytest_plugin``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Protocol

import pytest

from .testing import LocalCluster, RecordingFSM, _close_each

__all__ = ["raft_cluster", "RaftClusterFactory"]


class RaftClusterFactory(Protocol):
    """The type of the ``raft_cluster`` fixture, for annotating tests."""

    def __call__(self, n: int = 3, fsm_factory: Callable[[], Any] = RecordingFSM,
                 **node_kwargs: Any) -> LocalCluster[Any]: ...


@pytest.fixture
def raft_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RaftClusterFactory]:
    """Factory of started in-process clusters, all closed at teardown.

    ``raft_cluster(n=3, fsm_factory=RecordingFSM, **node_kwargs)`` returns a
    started :class:`canonical_raft.testing.LocalCluster` of ``n`` nodes on
    127.0.0.1, each with a new state machine from ``fsm_factory`` and its
    data in a fresh temporary directory (``LocalCluster``'s own keywords,
    ``start``, ``timeout`` and ``host``, are passed on too). Call it more
    than once for more clusters.
    """
    made: list[LocalCluster[Any]] = []

    def factory(n: int = 3, fsm_factory: Callable[[], Any] = RecordingFSM,
                **node_kwargs: Any) -> LocalCluster[Any]:
        base = tmp_path_factory.mktemp("raft_cluster")
        cluster: LocalCluster[Any] = LocalCluster(n, fsm_factory, base, **node_kwargs)
        made.append(cluster)
        return cluster

    yield factory
    _close_each(cluster.close for cluster in made)
