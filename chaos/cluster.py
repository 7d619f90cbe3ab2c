"""The node processes of one scenario, and how the harness talks to them.

Each node is a `python -m chaos.node` child (inside its network namespace
when the network is `net.Netns`), driven over its stdin/stdout with
canonical_raft.testing.procs. With tls, the cluster has a CA of its own and
each node a certificate for its id and address (canonical_raft.certs), in
the scenario's directory. Every child
is stopped by its PID when the cluster closes: a "close" request first,
then SIGTERM, then SIGKILL; a paused child is continued first.
"""

import json
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path

from canonical_raft import certs
from canonical_raft.testing import procs

ROOT = Path(__file__).resolve().parent.parent
# Every node process a harness starts is listed here (pid and data dir), so
# that the next harness can stop those a killed harness left behind.
REGISTRY = Path("/tmp/chaos-pids")

START_TIMEOUT = 30.0
CLOSE_TIMEOUT = 15.0


# What a request can end in, besides a reply (nemesis, runner and workload catch these).
NodeGone = procs.ProcessGone        # the process exited (or was killed) before replying
NodeTimeout = procs.ReplyTimeout    # no reply in time; one may still come


class NodeProc(procs.Process):
    """One incarnation of a node process."""

    def __init__(self, cluster, id, incarnation, cmd, log_path):
        self.cluster = cluster
        self.id = id
        self.incarnation = incarnation
        self.port_conflict = False       # failed to start: another process had the port
        super().__init__(cmd, name=f"node {id}.{incarnation}", log_path=log_path,
                         env=procs.child_env(ROOT), cwd=ROOT,
                         on_event=cluster._event, on_exit=cluster._exited)

    def request(self, op, timeout=10.0, **kw):
        return self.call(op, timeout, **kw)

    def wait_started(self, timeout=START_TIMEOUT):
        try:
            self.wait_ready(timeout)
        except procs.ProcessError as exc:
            raise RuntimeError(f"node {self.id} failed to start: rc={self.returncode} {exc}") from None

    def stop(self, timeout=CLOSE_TIMEOUT):
        """Close gracefully; SIGTERM then SIGKILL if it does not go (by pid)."""
        super().stop(timeout)

    def unexpected_exit(self):
        """Why this process's exit was not one we caused, or None."""
        rc = self.returncode
        if rc is None or rc == 0 or self.port_conflict:
            return None
        if rc < 0 and -rc in self.signals_sent:
            return None
        if rc < 0:
            return f"node {self.id}.{self.incarnation} (pid {self.pid}) died of signal {-rc}"
        return f"node {self.id}.{self.incarnation} (pid {self.pid}) exited with status {rc}"


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def cleanup_stale_processes():
    """SIGKILL (by PID) the node processes of harnesses that no longer run:
    only a live process whose command line is still that node's."""
    killed = []
    if not REGISTRY.is_dir():
        return killed
    for f in REGISTRY.iterdir():
        try:
            owner = int(f.name.split("-")[0])
        except ValueError:
            continue
        if _pid_alive(owner):
            continue
        for line in f.read_text().splitlines():
            try:
                pid, data_dir = line.split(" ", 1)
                pid = int(pid)
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except (ValueError, OSError):
                continue
            if b"chaos.node" in cmdline and os.fsencode(data_dir) in cmdline:
                try:
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                except OSError:
                    pass
        try:
            f.unlink()
        except OSError:
            pass
    return killed


class Cluster:
    """The nodes of one scenario: ids 1..n at first (more may join)."""

    _serial = 0

    def __init__(self, n, workdir, net, *, election_timeout=1.0, heartbeat_timeout=0.1,
                 snapshot_threshold=512, snapshot_trailing=64, tuning=None,
                 tls=False, unsafe_reads=False, any_node=False, log=None):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.net = net
        self.settings = dict(election_timeout=election_timeout,
                             heartbeat_timeout=heartbeat_timeout,
                             snapshot_threshold=snapshot_threshold,
                             snapshot_trailing=snapshot_trailing)
        self.tuning = dict(tuning or {})
        self.unsafe_reads = unsafe_reads
        self.any_node = any_node      # forward=True, reads through read_barrier()
        self.tls_dir = None           # the CA, and each node's certificate once it started
        if tls:
            self.tls_dir = self.workdir / "tls"
            certs.init(str(self.tls_dir))
        self.log = log or (lambda *a: None)
        self.lock = threading.Lock()
        self.nodes = {}               # id -> current NodeProc (alive or not)
        self.incarnations = []        # every NodeProc ever started
        self.members = set(range(1, n + 1))
        self.removed = set()          # ids removed from the configuration
        self.events = []              # (id, incarnation, msg)
        self.leader_hint = None       # (term, id) from the latest LEADER event
        self.data_dirs = {}
        self.closed = False
        Cluster._serial += 1
        self.registry = REGISTRY / f"{os.getpid()}-{Cluster._serial}"
        for i in sorted(self.members):
            net.add_node(i)

    # -- processes ------------------------------------------------------------

    def data_dir(self, id):
        return self.data_dirs.setdefault(id, self.workdir / f"n{id}")

    def address(self, id):
        return self.net.address(id)

    def certificate(self, id):
        """The directory holding node ``id``'s certificate (issued on its
        first start, for the host it is reached at) and the CA's."""
        if not (self.tls_dir / f"node-{id}.crt").exists():
            certs.node(str(self.tls_dir), id, [self.address(id).rsplit(":", 1)[0]])
        return self.tls_dir

    def spawn(self, id, bootstrap=None):
        """Start node ``id`` (bootstrap: the list of ids of a new cluster)."""
        if self.closed:
            raise RuntimeError("cluster is closed")
        self.net.add_node(id)
        cmd = [sys.executable, "-m", "chaos.node", "--id", str(id),
               "--address", self.address(id), "--data-dir", str(self.data_dir(id))]
        for k, v in self.settings.items():
            cmd += [f"--{k.replace('_', '-')}", str(v)]
        if self.tuning:
            cmd += ["--tuning", json.dumps(self.tuning)]
        if self.tls_dir is not None:
            cmd += ["--tls-dir", str(self.certificate(id))]
        if self.unsafe_reads:
            cmd += ["--unsafe-reads"]
        if self.any_node:
            cmd += ["--any-node"]
        if bootstrap:
            cmd += ["--bootstrap", procs.format_servers({i: self.address(i) for i in bootstrap})]
        with self.lock:
            old = self.nodes.get(id)
            incarnation = (old.incarnation + 1) if old else 1
            proc = NodeProc(self, id, incarnation, self.net.wrap(id, cmd),
                            self.workdir / f"n{id}.log")
            self.nodes[id] = proc
            self.incarnations.append(proc)
            try:
                REGISTRY.mkdir(mode=0o700, exist_ok=True)
                with open(self.registry, "a") as f:
                    f.write(f"{proc.pid} {self.data_dir(id)}\n")
            except OSError:
                pass
        if old is not None:
            old.stop()
        return proc

    def start(self):
        procs = [self.spawn(i, bootstrap=sorted(self.members)) for i in sorted(self.members)]
        for p in procs:
            p.wait_started()
        return self.wait_leader(30)

    def restart(self, id, attempts=4):
        """Start node ``id`` again on its data dir. A start that fails
        because another process holds the node's port (loopback only) is
        retried; any other start failure is the node's."""
        for attempt in range(attempts):
            proc = self.spawn(id)
            try:
                proc.wait_started()
                return proc
            except RuntimeError:
                if attempt + 1 == attempts or not self._port_taken(id):
                    raise
                proc.port_conflict = True
                self.log(f"   node {id}: its port is taken by another process, retrying")
                time.sleep(1.0)

    def _port_taken(self, id):
        if getattr(self.net, "partitions", True):
            return False            # own namespace: nobody else there
        host, port = self.address(id).rsplit(":", 1)
        with socket.socket() as s:
            try:
                s.bind((host, int(port)))
                return False
            except OSError:
                return True

    def _event(self, proc, name, msg):
        msg = dict(msg, event=name)
        with self.lock:
            self.events.append((proc.id, proc.incarnation, msg))
            if msg.get("event") == "state" and msg.get("state") == "LEADER":
                hint = (msg.get("term", 0), proc.id)
                if self.leader_hint is None or hint[0] >= self.leader_hint[0]:
                    self.leader_hint = hint

    def _exited(self, proc):
        why = proc.unexpected_exit()
        if why and not proc.closing:
            self.log(f"!! {why}")

    @property
    def deaths(self):
        """Every exit we did not cause (judged now, for every incarnation)."""
        return [why for why in (p.unexpected_exit() for p in list(self.incarnations)) if why]

    def alive(self, id):
        p = self.nodes.get(id)
        return p is not None and p.alive

    def live_members(self):
        return [i for i in sorted(self.members) if self.alive(i) and not self.nodes[i].paused]

    # -- who leads --------------------------------------------------------------

    def statuses(self, ids=None, timeout=2.0):
        """{id: status reply} of the live, unpaused nodes that answer in time."""
        ids = self.live_members() if ids is None else ids
        pends = {}
        for i in ids:
            p = self.nodes.get(i)
            if p is not None and p.alive and not p.paused:
                pends[i] = p.submit("status")
        out = {}
        deadline = time.monotonic() + timeout
        for i, pend in pends.items():
            try:
                out[i] = self.nodes[i].wait(pend, max(0.01, deadline - time.monotonic()))
            except (NodeTimeout, NodeGone):
                pass
        return out

    def leader(self, timeout=2.0):
        """The id of the node that says it leads, in the highest term; or None."""
        st = self.statuses(timeout=timeout)
        leaders = [(s["term"], i) for i, s in st.items() if s.get("is_leader")]
        return max(leaders)[1] if leaders else None

    def wait_leader(self, timeout=30.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            lead = self.leader(timeout=min(2.0, max(0.1, deadline - time.monotonic())))
            if lead is not None:
                return lead
            time.sleep(0.1)
        raise RuntimeError(f"no leader within {timeout}s")

    def guess_leader(self):
        """The latest leader seen in the nodes' events (cheap; may be stale)."""
        hint = self.leader_hint
        if hint is not None and self.alive(hint[1]) and hint[1] in self.members:
            return hint[1]
        return None

    def followers(self, leader=None):
        leader = self.leader() if leader is None else leader
        return [i for i in self.live_members() if i != leader]

    # -- faults ------------------------------------------------------------------

    def kill(self, id):
        self.log(f"   SIGKILL node {id} (pid {self.nodes[id].pid})")
        self.nodes[id].kill()

    def pause(self, id):
        self.log(f"   SIGSTOP node {id} (pid {self.nodes[id].pid})")
        self.nodes[id].pause()

    def resume(self, id):
        p = self.nodes.get(id)
        if p is not None and p.paused:
            self.log(f"   SIGCONT node {id} (pid {p.pid})")
            p.resume()

    def heal_all(self):
        """Undo every fault: continue paused nodes, heal the network,
        restart the members that are down."""
        for i, p in list(self.nodes.items()):
            if p.paused:
                self.resume(i)
        if getattr(self.net, "partitions", False):
            self.net.heal()
        for i in sorted(self.members):
            if not self.alive(i):
                self.log(f"   restart node {i}")
                self.restart(i)

    # -- teardown ------------------------------------------------------------------

    def close(self):
        """Stop every process this cluster started (by PID), then the network."""
        self.closed = True
        errors = []
        for p in list(self.incarnations):
            try:
                p.stop()
            except Exception as e:          # keep stopping the others
                errors.append(f"node {p.id}: {e!r}")
                try:
                    p.signal(signal.SIGKILL)
                except Exception:
                    pass
        try:
            self.net.cleanup()
        except Exception as e:
            errors.append(f"network cleanup: {e}")
        if not any(p.alive for p in self.incarnations):
            try:
                self.registry.unlink()
            except OSError:
                pass
        return errors
