"""The checks besides linearizability, on hand-made final states, and the
TLS variants of the scenarios."""

import pytest

from canonical_raft import _raft
from chaos import checks, runner
from chaos.checker import CAS, FAIL, OK, READ, UNKNOWN, WRITE, Op

pytestmark = pytest.mark.timeout(30)


def final(ids, tls=True, refused=None):
    return {"ids": ids, "status": {"tls": tls, "refused": refused or {}}}


def write(id, status=OK):
    return Op("x", WRITE, id, None, 0.0, None if status == UNKNOWN else 1.0, status, 0, id=id)


def test_writes_durable_counts_acknowledged_lost_and_duplicates():
    ops = [write(1), write(2), write(3), write(4, FAIL), write(5, UNKNOWN),
           Op("x", CAS, [1, 6], [True], 0.0, 1.0, OK, 0, id=6)]
    check, acked, lost, dups = checks.writes_durable(ops, {1: final([1, 2, 3, 6]),
                                                           2: final([1, 2, 3, 6, 5])})
    assert (check.ok, acked, lost, dups) == (True, 4, 0, 0)
    check, acked, lost, dups = checks.writes_durable(ops, {1: final([1, 2, 3, 6, 2, 3]),
                                                           2: final([1, 6])})
    assert (check.ok, acked, lost, dups) == (False, 4, 2, 2)
    assert "lacks 2" in check.detail and "twice" in check.detail


def test_mutual_tls_passes_with_connection_drops_only():
    finals = {1: final([], refused={"tls_eof": 3}), 2: final([], refused={"tls_eof": 1}),
              3: final([])}
    check = checks.mutual_tls(finals)
    assert check.ok, check.detail
    assert "'tls_eof': 4" in check.detail


@pytest.mark.parametrize("reason", checks.IDENTITY_REFUSALS)
def test_mutual_tls_fails_when_a_member_is_refused(reason):
    check = checks.mutual_tls({1: final([]), 2: final([], refused={reason: 1})})
    assert not check.ok and reason in check.detail


def test_mutual_tls_fails_for_a_member_in_plaintext():
    check = checks.mutual_tls({1: final([]), 2: final([], tls=False)})
    assert not check.ok and "node 2 ran without tls" in check.detail
    assert not checks.mutual_tls({}).ok


def test_identity_refusals_are_reasons_the_transport_counts():
    assert set(checks.IDENTITY_REFUSALS) <= set(_raft.refusal_reasons())


def test_every_scenario_has_a_tls_variant():
    for sc in runner.SCENARIOS:
        tls = runner.BY_NAME[runner.over_tls(sc.name)]
        assert tls.tls and not sc.tls
        assert (tls.nemesis, tls.nodes, tls.netns, tls.settings) == \
            (sc.nemesis, sc.nodes, sc.netns, sc.settings)
        assert runner.in_plaintext(tls.name) == sc.name
    assert set(runner.ALL) == {s.name for s in runner.SCENARIOS + runner.TLS_SCENARIOS}
    assert {"kill-leader+tls", "partition-leader+tls"} <= set(runner.SHORT)


def test_every_node_served_needs_writes_and_reads_on_each_node():
    def op(node, f, status=OK, process=0):
        o = Op("x", f, None, None, 0.0, 1.0, status, process)
        o.node = node
        return o
    fwd = {"forwarded": 3, "resent": 1, "appended": 0, "duplicates": 1, "read_rounds": 0}
    finals = {2: {"ids": [], "status": {"forwarding": fwd}}}
    ops = [op(1, WRITE), op(1, READ), op(2, CAS), op(2, READ), op(3, WRITE), op(3, READ)]
    check = checks.every_node_served(ops, 3, finals)
    assert check.ok, check.detail
    assert "n2 forwarded 3 resent 1" in check.detail
    # A node whose reads all failed, or that read only for the final check, did not serve.
    ops = ops[:5] + [op(3, READ, FAIL), op(3, READ, process="final")]
    check = checks.every_node_served(ops, 3, finals)
    assert not check.ok and "[3]" in check.detail


def test_any_node_scenario_runs_forwarding_on_every_node_in_both_transports():
    for name in ("any-node", "any-node+tls"):
        sc = runner.BY_NAME[name]
        assert sc.any_node and sc.nemesis == "kill-or-partition-leader"
    assert "any-node" in runner.SHORT and "any-node+tls" in runner.ALL
