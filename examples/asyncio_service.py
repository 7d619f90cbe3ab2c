"""A key-value service on plain asyncio whose state is replicated with raft.

Each process is one node and serves clients on its own TCP port:

    python examples/asyncio_service.py --id 1 --address 127.0.0.1:9001 \\
        --peers 1=127.0.0.1:9001,2=127.0.0.1:9002,3=127.0.0.1:9003 \\
        --data-dir data1 --port 7001
    (the same for ids 2 and 3, with their own address, data dir and port)

The protocol is one request per line, one JSON reply per line:

    SET key value  ->  {"ok": true, "previous": null}
    GET key        ->  {"ok": true, "value": "..."}   (null if missing)
    DEL key        ->  {"ok": true, "previous": "..."}
    STATUS         ->  {"ok": true, "id": 1, "state": "LEADER", "leader": 1, ...}

Errors come back as {"ok": false, "error": "...", "leader": [id, "host:port"]}.
Writes are ``await node.apply_async(command)``: the event loop keeps serving
other clients while raft replicates the command to a majority. A GET on the
leader first awaits a barrier, so it sees every write acknowledged before it
(a linearizable read); a follower answers from its own copy, which may lag.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from typing import Any, Optional

import canonical_raft as raft

REQUEST_TIMEOUT = 10.0  # seconds for a write (or a barrier) to complete


class KVStore(raft.FSM):
    """The replicated state: a dict of str to str, changed by JSON commands."""

    def __init__(self) -> None:
        self.data: dict[str, str] = {}

    def apply(self, command: bytes) -> Optional[str]:
        cmd = json.loads(command)
        if cmd["op"] == "set":
            previous = self.data.get(cmd["key"])
            self.data[cmd["key"]] = cmd["value"]
            return previous
        if cmd["op"] == "del":
            return self.data.pop(cmd["key"], None)
        raise ValueError(f"unknown op {cmd['op']!r}")

    def snapshot(self) -> bytes:
        return json.dumps(self.data, sort_keys=True).encode()

    def restore(self, data: bytes) -> None:
        self.data = json.loads(data)


class KVService:
    """Answers the requests of the TCP clients of one node."""

    def __init__(self, node: raft.Node, store: KVStore) -> None:
        self.node = node
        self.store = store

    async def request(self, line: str) -> dict[str, Any]:
        words = line.strip().split(" ", 2)
        op, args = words[0].upper(), words[1:]
        try:
            if op == "SET" and len(args) == 2:
                previous = await self.write({"op": "set", "key": args[0], "value": args[1]})
                return {"ok": True, "previous": previous}
            if op == "DEL" and len(args) == 1:
                previous = await self.write({"op": "del", "key": args[0]})
                return {"ok": True, "previous": previous}
            if op == "GET" and len(args) == 1:
                if self.node.is_leader:
                    # Everything acknowledged before this barrier is applied
                    # here once it resolves: the read cannot be stale.
                    await asyncio.wait_for(asyncio.wrap_future(self.node.barrier()),
                                           REQUEST_TIMEOUT)
                return {"ok": True, "value": self.store.data.get(args[0])}
            if op == "STATUS" and not args:
                stats = self.node.stats()
                return {"ok": True, "id": self.node.id, "state": stats["state"].name,
                        "leader": stats["leader_id"], "term": stats["term"],
                        "applied": stats["last_applied"], "keys": len(self.store.data)}
            return {"ok": False, "error": f"bad request {line.strip()!r}"}
        except raft.NotLeaderError as exc:
            leader = [exc.leader.id, exc.leader.address] if exc.leader else None
            return {"ok": False, "error": "not leader", "leader": leader}
        except raft.RaftError as exc:
            return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        except asyncio.TimeoutError:
            return {"ok": False, "error": "timed out; the write may or may not have been applied"}

    async def write(self, command: dict[str, str]) -> Any:
        return await asyncio.wait_for(self.node.apply_async(json.dumps(command).encode()),
                                      REQUEST_TIMEOUT)

    async def client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := (await reader.readline()).decode(errors="replace"):
                if line.strip():
                    reply = await self.request(line)
                    writer.write(json.dumps(reply).encode() + b"\n")
                    await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()


def parse_peers(text: str) -> list[raft.Server]:
    """``1=host:port,2=host:port,...`` -> servers."""
    servers = []
    for item in text.split(","):
        id_text, sep, address = item.strip().partition("=")
        if not sep or not id_text.isdigit():
            raise argparse.ArgumentTypeError(f"peer {item!r} is not ID=HOST:PORT")
        servers.append(raft.Server(int(id_text), address))
    return servers


async def serve(args: argparse.Namespace) -> None:
    store = KVStore()
    node = raft.Node(args.id, args.address, args.data_dir, store)
    try:
        try:
            node.bootstrap(args.peers)
        except raft.CantBootstrapError:
            pass  # not the first start: the node's state is on disk
        node.start()
        service = KVService(node, store)
        server = await asyncio.start_server(service.client, args.listen, args.port)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        port = server.sockets[0].getsockname()[1]
        print(f"node {args.id}: raft on {args.address}, clients on {args.listen}:{port}",
              file=sys.stderr, flush=True)
        async with server:
            await stop.wait()
    finally:
        # close() waits for the raft thread: keep the loop out of it.
        await asyncio.get_running_loop().run_in_executor(None, node.close)
        print(f"node {args.id}: closed", file=sys.stderr, flush=True)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="One node of a replicated asyncio key-value service.")
    parser.add_argument("--id", type=int, required=True)
    parser.add_argument("--address", required=True, help="HOST:PORT for raft traffic")
    parser.add_argument("--peers", type=parse_peers, required=True,
                        help="every node, this one included: ID=HOST:PORT,...")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--port", type=int, required=True, help="TCP port for clients (0: any)")
    parser.add_argument("--listen", default="127.0.0.1", help="address the client port binds")
    args = parser.parse_args(argv)
    asyncio.run(serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
