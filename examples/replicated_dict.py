"""A dict replicated across processes (or machines): one process per node.

Start one process per node, each with its own id, address and data directory,
and the same --peers list. For three nodes on one machine:

    python examples/replicated_dict.py --id 1 --address 127.0.0.1:9001 \\
        --peers 1=127.0.0.1:9001,2=127.0.0.1:9002,3=127.0.0.1:9003 --data-dir data1
    python examples/replicated_dict.py --id 2 --address 127.0.0.1:9002 \\
        --peers 1=127.0.0.1:9001,2=127.0.0.1:9002,3=127.0.0.1:9003 --data-dir data2
    python examples/replicated_dict.py --id 3 --address 127.0.0.1:9003 \\
        --peers 1=127.0.0.1:9001,2=127.0.0.1:9002,3=127.0.0.1:9003 --data-dir data3

Then type commands, one per line, on any node's standard input (or, with
--port, on a TCP connection to that port, e.g. ``nc 127.0.0.1 7001``):

    set KEY VALUE    store VALUE (the rest of the line) under KEY   -> OK
    del KEY          remove KEY                                     -> OK | MISSING
    get KEY          this node's value of KEY                       -> VALUE ... | MISSING
    keys             every key, sorted                              -> KEYS k1 k2 ...
    status           this node's raft state                         -> STATUS ...
    help             this list

Writes (set, del) go through the leader: a follower answers
``ERR not leader; the leader is node 2 at 127.0.0.1:9002``. Reads are
served from the node's own copy, which may lag the leader's by a few
milliseconds. The first start of a node bootstraps the cluster from --peers;
later starts (same --data-dir) recover the node's state from disk.
"""

from __future__ import annotations

import argparse
import json
import signal
import socketserver
import sys
import threading
from types import FrameType
from typing import Any, Optional, TextIO

import canonical_raft as raft

WRITE_TIMEOUT = 10.0  # seconds to wait for a write to commit


class DictFSM(raft.FSM):
    """The replicated state: a dict of str to str."""

    def __init__(self) -> None:
        self.data: dict[str, str] = {}

    def apply(self, command: bytes) -> Optional[str]:
        """Commands are JSON: {"op": "set", "key": k, "value": v} or
        {"op": "del", "key": k}. Returns the previous value (or None)."""
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


def parse_peers(text: str) -> list[raft.Server]:
    """``1=host:port,2=host:port,...`` -> servers."""
    servers = []
    for item in text.split(","):
        id_text, sep, address = item.strip().partition("=")
        if not sep or not id_text.isdigit():
            raise argparse.ArgumentTypeError(f"peer {item!r} is not ID=HOST:PORT")
        servers.append(raft.Server(int(id_text), address))
    return servers


class Service:
    """The line protocol over one node and its DictFSM."""

    def __init__(self, node: raft.Node, fsm: DictFSM) -> None:
        self.node = node
        self.fsm = fsm

    def handle(self, line: str) -> str:
        words = line.strip().split(" ", 2)
        cmd, args = words[0].lower(), words[1:]
        try:
            if cmd == "set" and len(args) == 2:
                self.write({"op": "set", "key": args[0], "value": args[1]})
                return "OK"
            if cmd == "del" and len(args) == 1:
                previous = self.write({"op": "del", "key": args[0]})
                return "OK" if previous is not None else "MISSING"
            if cmd == "get" and len(args) == 1:
                value = self.fsm.data.get(args[0])
                return "MISSING" if value is None else f"VALUE {value}"
            if cmd == "keys" and not args:
                return " ".join(["KEYS", *sorted(list(self.fsm.data))])
            if cmd == "status" and not args:
                stats = self.node.stats()
                return (f"STATUS node {self.node.id} {stats['state'].name} "
                        f"leader {stats['leader_id']} term {stats['term']} "
                        f"applied {stats['last_applied']}")
            if cmd == "help":
                return "COMMANDS set KEY VALUE | del KEY | get KEY | keys | status"
            return f"ERR bad command {line.strip()!r}; try help"
        except raft.NotLeaderError as exc:
            if exc.leader is None:
                return "ERR not leader; no leader known yet, try again"
            return f"ERR not leader; the leader is node {exc.leader.id} at {exc.leader.address}"
        except raft.RaftError as exc:
            return f"ERR {type(exc).__name__}: {exc}"
        except TimeoutError:
            return "ERR timed out: the write may or may not have been applied"

    def write(self, command: dict[str, str]) -> Any:
        future = self.node.apply(json.dumps(command).encode())
        return future.result(timeout=WRITE_TIMEOUT)


def serve_lines(service: Service, lines: TextIO, out: TextIO) -> None:
    for line in lines:
        if line.strip():
            print(service.handle(line), file=out, flush=True)


class LineServer(socketserver.ThreadingTCPServer):
    """The line protocol on a TCP port: one thread per client connection."""

    allow_reuse_address = True
    daemon_threads = True

    def __init__(self, address: tuple[str, int], service: Service) -> None:
        super().__init__(address, LineHandler)
        self.service = service


class LineHandler(socketserver.StreamRequestHandler):
    server: LineServer

    def handle(self) -> None:
        for raw in self.rfile:
            line = raw.decode(errors="replace")
            if line.strip():
                reply = self.server.service.handle(line)
                self.wfile.write((reply + "\n").encode())


def _stop(signum: int, frame: Optional[FrameType]) -> None:
    raise KeyboardInterrupt


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        description="One node of a replicated dict (see the top of this file).")
    parser.add_argument("--id", type=int, required=True, help="this node's id (1, 2, ...)")
    parser.add_argument("--address", required=True,
                        help="HOST:PORT this node's raft traffic listens on; the others reach it there")
    parser.add_argument("--peers", type=parse_peers, required=True,
                        help="every node of the cluster, this one included: ID=HOST:PORT,...")
    parser.add_argument("--data-dir", required=True, help="this node's own directory (created)")
    parser.add_argument("--port", type=int,
                        help="serve the line protocol on this TCP port instead of stdin")
    parser.add_argument("--listen", default="127.0.0.1",
                        help="the address --port binds (default 127.0.0.1: this machine only)")
    parser.add_argument("--tls-dir",
                        help="mutual TLS between the nodes with DIR/node-ID.crt, node-ID.key and "
                             "ca.crt (python -m canonical_raft certs); needed off loopback")
    parser.add_argument("--insecure", action="store_true",
                        help="plaintext raft traffic off loopback (a private network only)")
    args = parser.parse_args(argv)
    if not any(s.id == args.id for s in args.peers):
        parser.error(f"--peers must include this node (id {args.id})")

    signal.signal(signal.SIGTERM, _stop)
    fsm = DictFSM()
    tls = raft.TLS.from_dir(args.tls_dir, args.id) if args.tls_dir else None
    node = raft.Node(args.id, args.address, args.data_dir, fsm, tls=tls, insecure=args.insecure)
    server: Optional[LineServer] = None
    try:
        try:
            node.bootstrap(args.peers)
            how = "new cluster, bootstrapped"
        except raft.CantBootstrapError:
            how = "restarted from its data"
        node.start()
        print(f"node {args.id}: {how}; raft on {args.address}, data in {args.data_dir}",
              file=sys.stderr, flush=True)
        service = Service(node, fsm)
        if args.port is None:
            serve_lines(service, sys.stdin, sys.stdout)
        else:
            server = LineServer((args.listen, args.port), service)
            print(f"node {args.id}: clients on {args.listen}:{server.server_address[1]}",
                  file=sys.stderr, flush=True)
            server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        if server is not None:
            server.server_close()
        node.close()
        print(f"node {args.id}: closed", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
