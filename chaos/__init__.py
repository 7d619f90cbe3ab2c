"""Fault injection for canonical_raft: node processes, a workload, nemeses
and checkers (linearizability, lost writes, convergence, one leader per term).

    python -m chaos                    every scenario, 60 s each, and a table
    python -m chaos --short            the CI selection (about 3 minutes)
    python -m chaos --list             the scenarios
    python -m chaos check FILE.jsonl   re-check a saved history

See chaos/README.md.
"""
