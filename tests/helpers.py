"""What is left of the suite's old helpers, for the modules that still import
it (tests/test_multiprocess.py). The cluster helpers are canonical_raft.testing's,
the suite's FSMs are in fsms.py; ``subprocess_env`` goes once the node-process
protocol (canonical_raft.testing.procs) has its own child environment.
"""

import os
from pathlib import Path

import canonical_raft as raft
from canonical_raft.testing import free_ports  # noqa: F401
from canonical_raft.testing import wait_until as wait_for  # noqa: F401

TESTS_DIR = Path(__file__).resolve().parent


def subprocess_env():
    """An environment in which a child ``sys.executable`` imports the same canonical_raft."""
    env = dict(os.environ)
    package_parent = str(Path(raft.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (package_parent, str(TESTS_DIR), env.get("PYTHONPATH")) if p)
    env["PYTHONFAULTHANDLER"] = "1"
    env.pop("PYTHONWARNINGS", None)
    return env
