"""A replicated counter: three nodes in this process, a crash of the leader.

    python examples/counter.py [--increments N] [--data-dir DIR]

Starts a 3-node cluster on free ports of 127.0.0.1 (data in a temporary
directory unless --data-dir is given), adds 1..N to the counter through the
leader, closes the leader, keeps counting on the new one, restarts the old
leader and checks that all three nodes end with the same value.
"""

from __future__ import annotations

import argparse
import socket
import sys
import tempfile
import time
from pathlib import Path

import canonical_raft as raft


class Counter(raft.FSM):
    """The replicated state: one integer. Commands are decimal increments."""

    def __init__(self) -> None:
        self.value = 0

    def apply(self, command: bytes) -> int:
        self.value += int(command)
        return self.value

    def snapshot(self) -> bytes:
        return str(self.value).encode()

    def restore(self, data: bytes) -> None:
        self.value = int(data)


def free_ports(n: int) -> list[int]:
    """Ports of 127.0.0.1 that nothing listens on right now."""
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def find_leader(nodes: list[raft.Node], timeout: float = 20.0) -> raft.Node:
    """The node that leads, among ``nodes`` (which must agree on it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        leader = nodes[0].wait_for_leader(timeout=max(0.1, deadline - time.monotonic()))
        for node in nodes:
            if node.id == leader.id and node.is_leader:
                return node
        time.sleep(0.05)
    raise TimeoutError(f"no leader among nodes {[n.id for n in nodes]} after {timeout} s")


def wait_equal(fsms: list[Counter], expected: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while any(f.value != expected for f in fsms):
        if time.monotonic() > deadline:
            raise TimeoutError(f"values {[f.value for f in fsms]} != {expected}")
        time.sleep(0.01)


def run(data_dir: Path, increments: int) -> int:
    servers = [raft.Server(i + 1, f"127.0.0.1:{port}") for i, port in enumerate(free_ports(3))]
    fsms = {s.id: Counter() for s in servers}
    nodes = {s.id: raft.Node(s.id, s.address, data_dir / f"node{s.id}", fsms[s.id],
                             election_timeout=0.5, heartbeat_timeout=0.05)
             for s in servers}
    try:
        for node in nodes.values():
            node.bootstrap(servers)  # a new cluster: every node gets the same list
            node.start()
        leader = find_leader(list(nodes.values()))
        print(f"leader: node {leader.id} ({leader.address})")

        half = increments // 2
        # apply() returns a future at once; many can be in flight.
        futures = [leader.apply(str(i).encode()) for i in range(1, half + 1)]
        total = futures[-1].result(timeout=20) if futures else 0
        print(f"after {half} increments on node {leader.id}: {total}")

        print(f"closing the leader, node {leader.id}")
        leader.close()
        survivors = [n for n in nodes.values() if n.id != leader.id]
        new_leader = find_leader(survivors)
        print(f"new leader: node {new_leader.id}")
        for i in range(half + 1, increments + 1):
            total = new_leader.apply(str(i).encode()).result(timeout=20)
        print(f"after {increments} increments: {total}")

        # The old leader comes back: same data dir, same address, no bootstrap.
        old = leader.id
        fsms[old] = Counter()
        nodes[old] = raft.Node(old, leader.address, data_dir / f"node{old}", fsms[old],
                               election_timeout=0.5, heartbeat_timeout=0.05)
        nodes[old].start()
        wait_equal(list(fsms.values()), total)
        print("values: " + ", ".join(f"node {i}={f.value}" for i, f in sorted(fsms.items())))
        expected = increments * (increments + 1) // 2
        if total != expected:
            print(f"FAILED: expected {expected}, got {total}")
            return 1
        print(f"OK: all three nodes agree on {total}")
        return 0
    finally:
        for node in nodes.values():
            node.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--increments", type=int, default=100, help="how many increments (default 100)")
    parser.add_argument("--data-dir", type=Path, help="where the nodes keep their data "
                        "(default: a temporary directory, removed at the end)")
    args = parser.parse_args(argv)
    if args.data_dir is not None:
        return run(args.data_dir, args.increments)
    with tempfile.TemporaryDirectory(prefix="raft-counter-") as tmp:
        return run(Path(tmp), args.increments)


if __name__ == "__main__":
    sys.exit(main())
