"""A one-node cluster in its own process whose FSM applies every command
twice: to a Group whose dicts are in LMDB (they resume from their stores
after a restart) and to the same Group in memory (restored from its own
snapshot and the log, as any FSM). Killed and restarted, the two must
hold the same: the in-memory twin is the oracle for "nothing twice,
nothing lost".

    python lmdb_dict_child.py --id 1 --address A --data-dir D --store S [--bootstrap ...]

Commands (canonical_raft.testing.procs): ``status``; ``load`` (writes until
the process is killed, an ``acked`` event per batch with the numbers of the
``d`` keys acknowledged); ``check acked=[...]`` (after a barrier: whether
the twins are equal, acknowledged keys missing, the stores' info); ``close``.
"""

import argparse
import itertools
import sys
import threading

import canonical_raft as raft
from canonical_raft.batteries import Group, ReplicatedCounter, ReplicatedDict
from canonical_raft.testing import procs


def make_group(store=None):
    def new(name):
        return ReplicatedDict(path=f"{store}/{name}") if store else ReplicatedDict()
    return Group(d=new("d"), p=new("p"), c=ReplicatedCounter())


class Both:
    """The twins' snapshots as one: the LMDB one's length, it, the other."""

    def __init__(self, disk, mem):
        self.disk, self.mem = disk, mem

    def persist(self):
        disk = self.disk.persist()
        return len(disk).to_bytes(8, "big") + disk + self.mem.persist()

    def release(self):
        self.disk.release()
        self.mem.release()


class Twin:
    def __init__(self, store):
        self.disk = make_group(store)
        self.mem = make_group()

    def apply(self, command):
        try:
            return self.disk.apply(command)
        finally:
            try:
                self.mem.apply(command)
            except Exception:
                pass          # the same failure; the disk group's is the result

    def snapshot(self):
        return Both(self.disk.snapshot(), self.mem.snapshot())

    def restore(self, data):
        data = bytes(data)
        n = int.from_bytes(data[:8], "big")
        self.disk.restore(data[8:8 + n])
        self.mem.restore(data[8 + n:])


def handlers(node, twin, channel):
    group = twin.disk
    numbers = itertools.count(int(node.stats()["last_index"]) * 1000)

    def status():
        return {"is_leader": node.is_leader, "last_applied": node.stats()["last_applied"]}

    def writer():
        d, p, c = group["d"], group["p"], group["c"]
        while True:
            batch = [next(numbers) for _ in range(16)]
            futures = [d.set(f"k{n}", n) for n in batch]
            futures += [p.set(f"p{n}", [n]) for n in batch]
            futures += [c.incr(), d.set_many({f"m{n % 50}": n for n in batch}),
                        d.delete(f"m{batch[0] % 50}")]
            p.popitem()                      # not idempotent: applied twice, it would show
            p.pop(f"p{batch[3]}", None)
            for f in futures:
                f.result(10)
            channel.event("acked", keys=batch)

    def load():
        threading.Thread(target=writer, name="load", daemon=True).start()
        return {}

    def check(acked=()):
        node.barrier().result(10)
        disk, mem = twin.disk, twin.mem
        missing = [n for n in acked if f"k{n}" not in disk["d"]]
        same = all(list(disk[s].items()) == list(mem[s].items()) for s in ("d", "p"))
        return {"same": same and disk["c"].get() == mem["c"].get(), "missing": missing[:10],
                "sizes": [len(disk["d"]), len(mem["d"]), len(disk["p"]), len(mem["p"])],
                "info": {s: disk[s].store_info() for s in ("d", "p")}}

    return {"status": status, "load": load, "check": check}


def main():
    parser = procs.node_arguments(argparse.ArgumentParser(), election_timeout=0.5,
                                  heartbeat_timeout=0.05, snapshot_threshold=24,
                                  snapshot_trailing=8)
    parser.add_argument("--store", required=True)
    args = parser.parse_args()
    channel = procs.Child(f"node {args.id}")
    twin = Twin(args.store)
    node = raft.Node(args.id, args.address, args.data_dir, twin, **procs.node_settings(args))
    try:
        twin.disk.attach(node)
        procs.start_node(node, args)
    except BaseException as exc:
        channel.failed(exc)
        node.close()
        channel.flush()
        return 1

    def close():
        node.close()
        twin.disk.close()

    channel.serve_node(close, handlers(node, twin, channel), id=args.id)
    return 0


if __name__ == "__main__":
    sys.exit(main())
