"""Make a follower receive InstallSnapshot while it writes a snapshot of its
own: libraft 0.22 crashes there (NULL dereference in takeSnapshotCb) unless
the binding's io guard holds the message back. Deterministic: the
follower's persist() blocks, which keeps its snapshot "being written"; its
FSM then stalls the loop while the leader compacts its log past it.

Prints one JSON line; exit status 0 means no crash.
"""

import json
import sys
import tempfile
import threading
import time

import canonical_raft as raft
from canonical_raft.testing import LocalCluster, wait_until


class Snapshot:
    def __init__(self, fsm, value):
        self.fsm, self.value = fsm, value

    def persist(self):
        self.fsm.persisting.set()
        self.fsm.release_persist.wait(30)
        return str(self.value).encode()


class Counter(raft.FSM):
    def __init__(self):
        self.value = 0
        self.hold_persist = False     # set by the test on the chosen follower
        self.persisting = threading.Event()
        self.release_persist = threading.Event()
        self.stall = 0.0
        self.restored = 0

    def apply(self, command):
        if command == b"stall" and self.stall:
            time.sleep(self.stall)    # this node's loop stops meanwhile
        self.value += 1
        return self.value

    def snapshot(self):
        if self.hold_persist:
            return Snapshot(self, self.value)
        return str(self.value).encode()

    def restore(self, data):
        self.value = int(data)
        self.restored += 1


def main():
    with tempfile.TemporaryDirectory() as base:
        with LocalCluster(3, Counter, base, election_timeout=2.0, heartbeat_timeout=0.1,
                          snapshot_threshold=8, snapshot_trailing=0) as cluster:
            try:
                report = race(cluster)
            finally:
                for fsm in cluster.fsms:
                    fsm.release_persist.set()
    report.update(raft._raft.debug_counters(), installs_deferred=raft._raft.installs_deferred())
    print(json.dumps(report))


def race(cluster):
    leader = cluster.leader(10)
    fsm = cluster.fsm(cluster.followers(leader)[0].id)
    fsm.hold_persist = True
    fsm.stall = 1.0
    for _ in range(20):       # the follower snapshots; persist() blocks
        leader.apply(b"x").result(10)
    wait_until(fsm.persisting.is_set, 10, message="the follower to start persist()")
    leader.apply(b"stall").result(10)   # the follower stalls 1 s ...
    for _ in range(40):                 # ... the leader compacts past it
        leader.apply(b"x").result(10)
    # The leader now sends InstallSnapshot into the follower's write.
    # (Not an error if it does not: the caller checks the counter.)
    try:
        wait_until(lambda: raft._raft.installs_deferred() >= 1, 10)
    except TimeoutError:
        time.sleep(1.0)   # unguarded: give the message time to arrive
    fsm.release_persist.set()
    value = leader.apply(b"x").result(10)
    wait_until(lambda: fsm.value == value, 20, message="the follower to catch up")
    return {"value": value, "follower_restores": fsm.restored}


if __name__ == "__main__":
    sys.exit(main())
