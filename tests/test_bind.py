"""bind=: the peer port listens at one address while peers are told (and
dial) another, as behind NAT or a container's port mapping."""

import socket
import threading

import pytest

import canonical_raft as raft
from canonical_raft.testing import RecordingFSM, free_address, port_is_free, wait_until

pytestmark = pytest.mark.timeout(60)


class PortForward:
    """A TCP port-forward on loopback (what NAT does for the node): accepts
    at ``listen`` and relays each connection to ``target``."""

    def __init__(self, listen, target):
        host, port = listen.rsplit(":", 1)
        self.target = target.rsplit(":", 1)
        self.server = socket.create_server((host, int(port)))
        self.server.settimeout(0.2)
        self.relayed = 0
        self.socks = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stopping.is_set():
            try:
                client, _ = self.server.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection((self.target[0], int(self.target[1])), 5)
            except OSError:
                client.close()
                continue
            self.relayed += 1
            self.socks += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src, dst):
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self):
        self.stopping.set()
        self.server.close()
        for s in self.socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
        self.thread.join(5)


def listening(address):
    host, port = address.rsplit(":", 1)
    return not port_is_free(int(port), host)


def test_a_node_listens_at_bind_and_is_reached_at_its_address(tmp_path):
    advertised, bound = free_address(), f"127.0.0.2:{free_address().rsplit(':', 1)[1]}"
    forward = PortForward(advertised, bound)
    others = [free_address(), free_address()]
    servers = [raft.Server(1, advertised)] + [raft.Server(i, a) for i, a in zip((2, 3), others)]
    fsm = RecordingFSM()
    nodes = [raft.Node(1, advertised, tmp_path / "1", fsm, bind=bound)]
    nodes += [raft.Node(s.id, s.address, tmp_path / str(s.id), RecordingFSM())
              for s in servers[1:]]
    try:
        assert nodes[0].bind == bound and nodes[0].address == advertised
        for n in nodes:
            n.bootstrap(servers)
            n.start()
        assert listening(bound)                 # the node listens at bind ...
        leader = nodes[0].wait_for_leader(20)
        lead = {n.id: n for n in nodes}[leader.id]
        for i in range(20):
            lead.apply(b"%d" % i).result(20)
        wait_until(lambda: len(fsm.commands) == 20, 20, message="node 1 applied every command")
        assert forward.relayed > 0              # ... and its peers came through its address
        assert nodes[0].configuration[0].address == advertised
    finally:
        for n in nodes:
            n.close()
        forward.close()
    assert not listening(bound)


def test_bind_is_checked_at_construction(tmp_path):
    address = free_address()
    for bad in ("[::1]:9000", "127.0.0.1", "127.0.0.1:0", "host :1"):
        with pytest.raises(ValueError):
            raft.Node(1, address, tmp_path / "n", RecordingFSM(), bind=bad)
    with pytest.raises(TypeError):
        raft.Node(1, address, tmp_path / "n", RecordingFSM(), bind=9000)


def test_every_interface_is_allowed_for_bind_only(tmp_path):
    node = raft.Node(1, free_address(), tmp_path / "n", RecordingFSM(), bind="0.0.0.0:9000",
                     insecure=True)
    assert node.bind == "0.0.0.0:9000"
    node.close()
    with pytest.raises(ValueError, match="bind="):
        raft.Node(1, "0.0.0.0:9000", tmp_path / "m", RecordingFSM())


def test_a_bind_reachable_from_the_network_needs_tls(tmp_path):
    """Secure by default looks at where the port listens, not only at what
    peers are told: 0.0.0.0 is every interface."""
    node = raft.Node(1, free_address(), tmp_path / "n", RecordingFSM(), bind="0.0.0.0:9000")
    with node:
        node.bootstrap([(1, node.address)])
        with pytest.raises(ValueError, match="not a loopback address and the node has no tls"):
            node.start()
