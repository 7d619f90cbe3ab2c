"""The test suite's own state machines (the cluster helpers are canonical_raft.testing's)."""

import threading

import canonical_raft as raft
from canonical_raft.testing import RecordingFSM


class Counter(raft.FSM):
    """The Counter of API.md, plus call counts and the threads apply() ran on."""

    def __init__(self):
        self.value = 0
        self.applies = 0
        self.snapshots = 0
        self.restores = 0
        self.threads = set()

    def apply(self, command):
        self.applies += 1
        self.threads.add(threading.get_ident())
        self.value += int(command)
        return self.value

    def snapshot(self):
        self.snapshots += 1
        return str(self.value).encode()

    def restore(self, data):
        self.restores += 1
        self.value = int(data)


class Recorder(RecordingFSM, raft.FSM):
    """RecordingFSM, plus the type of each command it got, snapshot/restore
    counts, and a command it refuses (``fail_on``: raises ValueError after
    recording it)."""

    def __init__(self, fail_on=None):
        super().__init__()
        self.types = []
        self.fail_on = fail_on
        self.snapshots = 0
        self.restores = 0

    def apply(self, command):
        self.types.append(type(command))
        count = super().apply(command)
        if self.fail_on is not None and command == self.fail_on:
            raise ValueError(f"refused {bytes(command)!r} at #{count}")
        return count

    def snapshot(self):
        self.snapshots += 1
        return super().snapshot()

    def restore(self, data):
        self.restores += 1
        super().restore(data)
