"""Drive a 3-node cluster so that followers receive InstallSnapshot while
writing snapshots of their own (libraft 0.22 crashes there without the
binding's io guard). Prints one JSON line; exit 0 means no crash."""

import json
import socket
import sys
import tempfile
import time

import canonical_raft as raft


class Counter(raft.FSM):
    """A counter; a slow one lags behind the leader's compacted log (so it
    is sent snapshots) while it keeps taking big snapshots of its own."""

    def __init__(self, slow=False):
        self.value = 0
        self.slow = slow

    def apply(self, command):
        self.value += 1
        if self.slow:
            time.sleep(0.0001)
        return self.value

    def snapshot(self):
        return str(self.value).encode().ljust((1 << 20) if self.slow else 0)

    def restore(self, data):
        self.value = int(data)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(budget):
    deadline = time.monotonic() + budget
    rounds = applied = 0
    while time.monotonic() < deadline:
        rounds += 1
        with tempfile.TemporaryDirectory() as base:
            servers = [raft.Server(i, f"127.0.0.1:{free_port()}") for i in (1, 2, 3)]
            nodes = [raft.Node(s.id, s.address, f"{base}/{s.id}", Counter(slow=s.id == 3),
                               election_timeout=1.0, heartbeat_timeout=0.1,
                               snapshot_threshold=8, snapshot_trailing=0)
                     for s in servers]
            try:
                for node in nodes:
                    node.bootstrap(servers)
                    node.start()
                for _ in range(10):
                    # In-process nodes share one GIL: on a busy machine
                    # leadership may move, which is fine here.
                    leader_id = nodes[0].wait_for_leader(10).id
                    leader = next(n for n in nodes if n.id == leader_id)
                    futures = [leader.apply(b"x") for _ in range(2000)]
                    for f in futures:
                        try:
                            f.result(30)
                            applied += 1
                        except (raft.NotLeaderError, raft.LeadershipLostError):
                            pass
            finally:
                for node in nodes:
                    node.close()
        if raft._raft.debug_counters()["installs_deferred"] > 0:
            break
    print(json.dumps({"rounds": rounds, "applied": applied,
                      **raft._raft.debug_counters()}))


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 60.0)
