"""The live fuzzer (fuzz/live/) in small: a few thousand seeded hostile inputs
against three node processes' plaintext and TLS peer ports; after every
batch the nodes are alive, their terms and states unchanged, writes commit
and apply everywhere, refusals are counted and RSS is bounded. `make fuzz`
runs 100,000. Plus what the fuzzer relies on, and the libraft fault it found."""

import socket
import struct
import sys
from pathlib import Path

import pytest

from canonical_raft.testing import LocalCluster, RecordingFSM, wait_until

import peerwire as w

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from fuzz.live import gen  # noqa: E402
from fuzz.live.cluster import Cluster  # noqa: E402
from fuzz.live.run import Options, fuzz, send  # noqa: E402

SEED = 20240611


@pytest.mark.timeout(150)
@pytest.mark.parametrize("mode,inputs", [("plain", 2000), ("tls", 1000)])
def test_hostile_inputs_leave_the_cluster_as_it_was(mode, inputs, tmp_path):
    if mode == "tls":
        pytest.importorskip("cryptography")
    opts = Options(inputs=inputs, seed=SEED, modes=(mode,), batch=500, workdir=tmp_path,
                   findings_dir=tmp_path / "findings", log=lambda _: None)
    [report] = fuzz(opts)
    assert report.findings == [], report.findings
    assert report.inputs == inputs and report.writes == report.batches == inputs // 500
    # Every family ran, and both kinds of speaker: the member's inputs (stale
    # terms) reach the message checks, the stranger's must be refused.
    assert set(report.families) == {name for name, _ in gen.FAMILIES}
    assert report.member > inputs // 4 and report.must_refuse > inputs // 4
    assert sum(report.refused.values()) >= report.must_refuse
    assert any(r.startswith("fw_entry") for r in report.refused)
    assert any(r.startswith("fw_configuration") for r in report.refused)
    if mode == "tls":
        assert set(report.credentials) == {name for name, _ in gen.CREDENTIALS}
        assert report.refused["tls_nocert"] > 0 and report.refused["tls_verify"] > 0
    assert report.outcomes["hang"] == 0


SERVERS = {1: "127.0.0.1:7001", 2: "127.0.0.1:7002", 3: "127.0.0.1:7003"}


@pytest.mark.timeout(60)
def test_inputs_are_seeded_and_members_speak_at_stale_terms():
    a = gen.Generator(7, SERVERS, {"leader": 1, "follower": 2}, tls=True)
    b = gen.Generator(7, SERVERS, {"leader": 1, "follower": 2}, tls=True)
    members = 0
    for i in range(3000):
        case = a.make(i)
        assert case == b.make(i)
        assert len(case.data) <= gen.MAX_INPUT
        if not case.member:
            continue
        members += 1
        # Default: no member-claimed handshake names a member's address.
        address = case.data[24:24 + 264].split(b"\0", 1)[0]
        assert address.decode(errors="replace") not in SERVERS.values()
        for frame in w.frames(case.data):
            # Raft acts on whole messages only.
            if frame[0] == "message" and frame[2] <= len(case.data) and _sized(*frame[3:]):
                term = struct.unpack_from("<Q", case.data, frame[1] + 16)[0]
                assert term <= gen.STALE_MAX or term >= gen.TERM_LIMIT, (i, frame, term)
    assert members > 500


def _sized(mtype, hlen):
    """Whether the firewall reads on past the preamble (a header length the type allows)."""
    fixed = {2: 32, 3: 40, 4: 24, 6: 24}
    if mtype in fixed:
        return hlen == fixed[mtype]
    return (mtype == 1 and hlen >= 48 and hlen % 16 == 0) or (mtype == 5 and hlen >= 56)


@pytest.mark.timeout(90)
def test_the_generators_honest_messages_pass_the_firewall(tmp_path):
    # Else the member's inputs would only ever test the first check they
    # fail. At stale terms, as the fuzzer sends them (a current term in a
    # member's name is the rogue mode's business).
    import random
    with Cluster(tmp_path) as c:
        leader = c.raise_term(gen.MIN_CLUSTER_TERM)
        follower = min(i for i in c.servers if i != leader)
        g = gen.Generator(1, c.servers, {"leader": leader, "follower": follower})
        for mtype in range(1, 7):
            for k in range(10):
                data = w.handshake(leader, "127.0.0.1:1") + b"".join(
                    g.honest(random.Random(k * 7 + j), leader, mtype) for j in range(3))
                assert send(gen.Case(k, "honest", "follower", data), c.servers[follower],
                            {}) == "closed"
        assert c.status(follower)["refused"] == {}
        assert c.deaths() == {}


@pytest.mark.timeout(60)
def test_a_stale_message_is_not_answered_as_a_success_at_the_current_term(tmp_path):
    # Found by the live fuzzer (--reflect): sent to a follower in the
    # leader's name and at the leader's address, a few such answers made the
    # real leader stop sending that follower entries. Here the answer comes
    # to us: we declare our own address.
    with LocalCluster(3, RecordingFSM, tmp_path) as c:
        leader = c.leader()
        follower = c.followers()[0]
        term = follower.stats()["term"]
        assert term >= 2
        conf = w.configuration([(leader.id, leader.address, w.VOTER)])
        with socket.socket() as listener:
            listener.bind(("127.0.0.1", 0))
            listener.listen(4)
            listener.settimeout(3)
            me = "127.0.0.1:%d" % listener.getsockname()[1]
            stale = [w.install_snapshot(term - 1, 7, 1, 7, conf, b"x" * 8),
                     w.append_entries(term - 1, 0, 0, 0, [])]
            successes = []
            for msg in stale:
                w.send_plain(follower.address, w.handshake(leader.id, me) + msg, timeout=1)
                try:
                    conn, _ = listener.accept()
                except socket.timeout:
                    continue            # not answered at all: fine
                with conn:
                    successes += _successes_at(conn, term)
            assert successes == []


def _successes_at(conn, term):
    """The AppendEntries results of ``term`` with rejected == 0 that arrive on
    ``conn`` within a second (after the sender's handshake)."""
    conn.settimeout(1)
    data = b""
    try:
        while len(data) < 4096:
            chunk = conn.recv(4096)
            if not chunk:
                break
            data += chunk
    except socket.timeout:
        pass
    out = []
    for frame in w.frames(data):
        if frame[0] == "message" and frame[3] == 2 and frame[2] <= len(data):
            t, rejected, last = struct.unpack_from("<QQQ", data, frame[1] + 16)
            if t == term and rejected == 0:
                out.append((t, rejected, last))
    return out


@pytest.mark.timeout(60)
def test_a_handshake_in_the_nodes_own_name_is_refused(tmp_path):
    # No honest peer claims the receiver's id; accepted, this AppendEntries
    # made the node follow itself as leader of a forged term.
    with LocalCluster(3, RecordingFSM, tmp_path) as c:
        node = c.followers()[0]
        term = node.stats()["term"]
        data = w.handshake(node.id, node.address) + w.append_entries(term + 1, 0, 0, 0, [])
        send(gen.Case(0, "own-id", "follower", data), node.address, {})
        wait_until(lambda: node.stats()["refused"].get("fw_handshake_id_refused"), 10)
        assert node.stats()["term"] == term
        assert node.leader is not None and node.leader.id != node.id
        c.apply(b"still serving")


@pytest.mark.timeout(90)
def test_an_append_whose_previous_entry_conflicts_with_a_committed_one_is_dropped(tmp_path):
    # Found by the live fuzzer: one well-formed AppendEntries at the current
    # term, in any member's name, whose prev_log_term differs from the
    # committed entry at prev_log_index, with one entry. Node processes: the
    # crash is a dead process.
    with Cluster(tmp_path) as c:
        leader = c.leader()
        follower, member = sorted(i for i in c.servers if i != leader)
        term = c.status(follower)["term"]
        assert term >= 2            # the bootstrap entry (index 1, committed) has term 1
        data = w.handshake(member, "127.0.0.1:1") + w.append_entries(
            term, 1, term, 0, [(term, b"CRFT0000")])
        send(gen.Case(0, "prev-log", "follower", data), c.servers[follower], {})
        wait_until(lambda: c.deaths() or c.status(follower)["refused"].get("log_conflict"), 10)
        assert c.deaths() == {}
        assert c.status(follower)["refused"]["log_conflict"] == 1
