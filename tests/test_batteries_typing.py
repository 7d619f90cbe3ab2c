"""batteries: what users' code sees under mypy --strict (generics, the
Futures of @replicated methods, mistakes caught)."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(300)

ROOT = Path(__file__).resolve().parent.parent

try:
    import mypy  # noqa: F401
except ImportError:
    pytest.skip("mypy is not installed", allow_module_level=True)

USER_CODE = textwrap.dedent('''
    from concurrent.futures import Future
    from canonical_raft import batteries
    from canonical_raft.batteries import ReplicatedObject, replicated

    users = batteries.ReplicatedDict[str, int]()
    jobs = batteries.ReplicatedQueue[str]()
    hits = batteries.ReplicatedCounter()
    lock = batteries.ReplicatedLock()

    class Inventory(ReplicatedObject):
        def __init__(self) -> None:
            super().__init__()
            self.stock: dict[str, int] = {}

        @replicated
        def add(self, item: str, n: int) -> int:
            self.stock[item] = self.stock.get(item, 0) + n
            return self.stock[item]

        @replicated(version=2)
        def discard(self, item: str) -> None:
            self.stock.pop(item, None)

    inv = Inventory()
    group = batteries.Group(users=users, jobs=jobs, hits=hits, lock=lock, inv=inv)
    reveal_type(users.set("a", 1))
    reveal_type(users.get("a"))
    reveal_type(users.cas("a", batteries.ABSENT, 2))
    reveal_type(jobs.get())
    reveal_type(hits.add(1))
    reveal_type(lock.acquire("me", 10))
    reveal_type(inv.add("apple", 3))
    reveal_type(inv.discard("apple"))
    reveal_type(group.activate(2))
    ok: Future[int] = inv.add("pear", n=1)
''')

MISTAKES = textwrap.dedent('''
    from canonical_raft import batteries
    from canonical_raft.batteries import ReplicatedObject, replicated

    users = batteries.ReplicatedDict[str, int]()

    class Inventory(ReplicatedObject):
        @replicated
        def add(self, item: str, n: int) -> int:
            return n

    users.set("a", "one")                 # E1
    Inventory().add(3)                    # E2
    x: str = Inventory().add("a", 1).result()   # E3
    batteries.ReplicatedCounter().add("1")      # E4
''')


def mypy(tmp_path, code):
    path = tmp_path / "user.py"
    path.write_text(code)
    config = tmp_path / "mypy.ini"
    config.write_text(f"[mypy]\ncache_dir = {tmp_path / 'cache'}\n")
    r = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--config-file", str(config),
                        "--no-color-output", "--no-error-summary", str(path)],
                       cwd=ROOT, capture_output=True, text=True, timeout=240)
    return r.stdout


def test_users_code_sees_precise_types(tmp_path):
    out = mypy(tmp_path, USER_CODE)
    notes = [line.split("Revealed type is ")[1].replace("builtins.", "")
             for line in out.splitlines() if "Revealed" in line]
    assert notes == [
        '"concurrent.futures._base.Future[None]"',
        '"int | None"',
        '"concurrent.futures._base.Future[bool]"',
        '"concurrent.futures._base.Future[str | None]"',
        '"concurrent.futures._base.Future[int]"',
        '"concurrent.futures._base.Future[int | None]"',
        '"concurrent.futures._base.Future[int]"',
        '"concurrent.futures._base.Future[None]"',
        '"concurrent.futures._base.Future[int]"',
    ], out
    assert "error" not in out, out


def test_users_mistakes_are_type_errors(tmp_path):
    out = mypy(tmp_path, MISTAKES)
    lines = MISTAKES.splitlines()
    flagged = {lines[int(line.split(":")[1]) - 1].split("# ")[-1]
               for line in out.splitlines() if ": error:" in line}
    assert flagged == {"E1", "E2", "E3", "E4"}, out
