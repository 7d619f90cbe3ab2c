"""The live fuzzer: hostile peer-port input against running node processes.

    python -m fuzz.live [--inputs N] [--seed S] [--tls/--plain] ...   (from the checkout)

gen.py makes the inputs (seeded, structure-aware), node.py is one node
process, cluster.py starts three of them and reads their state, run.py sends
batches and checks the cluster after each. fuzz/README.md says what is checked.
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# The wire encoders live with the tests (tests/peerwire.py).
if str(ROOT / "tests") not in sys.path:
    sys.path.insert(0, str(ROOT / "tests"))
