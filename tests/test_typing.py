"""Typing: mypy --strict on the package and the examples, stubtest on the
compiled core, and what users' code sees (precise types, real errors)."""

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "canonical_raft"


try:
    import mypy  # noqa: F401
    HAVE_MYPY = True
except ImportError:
    HAVE_MYPY = False

needs_mypy = pytest.mark.skipif(
    not HAVE_MYPY, reason="mypy is not installed: pip install 'mypy>=1.18' (make typecheck does)")


@pytest.fixture(scope="module")
def mypy_config(tmp_path_factory):
    """A config that keeps mypy's cache out of the source tree (shared by the tests here)."""
    d = tmp_path_factory.mktemp("mypy")
    config = d / "mypy.ini"
    config.write_text(f"[mypy]\ncache_dir = {d / 'cache'}\n")
    return config


def run_mypy(config, *args, timeout=240):
    return subprocess.run([sys.executable, "-m", "mypy", "--config-file", str(config),
                           "--strict", "--no-color-output", "--no-error-summary", *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=timeout)


@pytest.mark.timeout(10)
def test_py_typed_ships_with_the_package():
    assert (PACKAGE / "py.typed").is_file()
    assert (PACKAGE / "_raft.pyi").is_file()
    text = (ROOT / "pyproject.toml").read_text()
    data_line = next(line for line in text.splitlines() if line.startswith("canonical_raft = ["))
    assert '"py.typed"' in data_line and '"*.pyi"' in data_line


@needs_mypy
@pytest.mark.timeout(300)
def test_package_and_examples_pass_mypy_strict(mypy_config):
    r = run_mypy(mypy_config, "canonical_raft", "examples")
    assert r.returncode == 0, r.stdout + r.stderr


@needs_mypy
@pytest.mark.timeout(300)
def test_stubtest_agrees_with_the_compiled_module(mypy_config):
    r = subprocess.run([sys.executable, "-m", "mypy.stubtest", "canonical_raft._raft",
                        "--allowlist", str(ROOT / "stubtest-allowlist.txt"),
                        "--mypy-config-file", str(mypy_config)],
                       cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stdout + r.stderr


USER_CODE = '''
from __future__ import annotations

import canonical_raft as raft
from canonical_raft.testing import LocalCluster


class Counter(raft.FSM):
    def __init__(self) -> None:
        self.value = 0

    def apply(self, command: bytes) -> int:
        self.value += int(command)
        return self.value

    def snapshot(self) -> bytes:
        return str(self.value).encode()

    def restore(self, data: bytes) -> None:
        self.value = int(data)


class Duck:  # no base class: duck typing type-checks too
    def apply(self, command: bytes) -> None: ...
    def snapshot(self) -> bytearray: return bytearray()
    def restore(self, data: bytes) -> None: ...


async def use_async(node: raft.Node) -> None:
    reveal_type(await node.apply_async(memoryview(b"1")))


def use(node: raft.Node, cluster: LocalCluster[Counter]) -> None:
    reveal_type(node.apply(b"1"))
    reveal_type(node.apply_many([b"1", bytearray(b"2")]))
    reveal_type(node.barrier())
    reveal_type(node.wait_for_leader(timeout=1.5))
    reveal_type(node.leader)
    reveal_type(node.state)
    reveal_type(node.configuration)
    reveal_type(node.transfer(2))
    reveal_type(node.add(4, "127.0.0.1:9004", raft.Role.STANDBY))
    reveal_type(raft.libraft_version())
    reveal_type(cluster.fsm(1))
    reveal_type(cluster.leader())
    with raft.Node(2, "127.0.0.1:9002", "/tmp/x", Duck(), election_timeout=2) as n:
        reveal_type(n)

    @node.on_state_change
    def changed(n: raft.Node) -> None: ...
    reveal_type(changed)
    try:
        node.apply(b"x").result(timeout=1)
    except raft.NotLeaderError as e:
        reveal_type(e.leader)
'''

EXPECTED_TYPES = [
    "Any",
    "canonical_raft.futures.Future[Any]",
    "list[canonical_raft.futures.Future[Any]]",
    "canonical_raft.futures.Future[None]",
    "tuple[int, str, canonical_raft.types.Role, fallback=canonical_raft.types.Server]",
    "tuple[int, str, canonical_raft.types.Role, fallback=canonical_raft.types.Server] | None",
    "canonical_raft.types.State",
    "list[tuple[int, str, canonical_raft.types.Role, fallback=canonical_raft.types.Server]]",
    "canonical_raft.futures.Future[tuple[int, str, canonical_raft.types.Role, fallback=canonical_raft.types.Server] | None]",
    "canonical_raft.futures.Future[None]",
    "str",
    "user_code.Counter",
    "canonical_raft.node.Node",
    "canonical_raft.node.Node",
    "canonical_raft.node.Observer[def (n: canonical_raft.node.Node)]",
    "tuple[int, str, canonical_raft.types.Role, fallback=canonical_raft.types.Server] | None",
]

BAD_CODE = '''
import canonical_raft as raft


class NoSnapshot:
    def apply(self, command: bytes) -> None: ...
    def restore(self, data: bytes) -> None: ...


class WrongSnapshot(raft.FSM):
    def snapshot(self) -> str:
        return "text is not bytes"


def misuse(node: raft.Node) -> None:
    node.apply("text, not bytes")
    raft.Node(1, "127.0.0.1:9001", "/tmp/x", NoSnapshot())
    raft.Node(1, "127.0.0.1:9001", "/tmp/x", object())
    raft.Node("1", "127.0.0.1:9001", "/tmp/x", WrongSnapshot())
    node.wait_for_leader(timeout="10")
    node.add(4)
    x: int = node.apply(b"1").result()
'''

EXPECTED_ERRORS = {  # line of BAD_CODE -> error code
    11: "override",
    16: "arg-type",
    17: "arg-type",
    18: "arg-type",
    19: "arg-type",
    20: "arg-type",
    21: "call-arg",
}


def _messages(output, filename):
    found = []
    for line in output.splitlines():
        m = re.match(rf".*{re.escape(filename)}:(\d+): (error|note): (.*)", line)
        if m:
            found.append((int(m.group(1)), m.group(2), m.group(3)))
    return found


@needs_mypy
@pytest.mark.timeout(300)
def test_users_code_sees_precise_types(mypy_config, tmp_path):
    good = tmp_path / "user_code.py"
    good.write_text(textwrap.dedent(USER_CODE))
    r = run_mypy(mypy_config, str(good))
    messages = _messages(r.stdout, "user_code.py")
    errors = [m for m in messages if m[1] == "error"]
    assert not errors, r.stdout + r.stderr
    # (older mypy versions spell builtins.int, builtins.list, ...)
    revealed = [re.sub(r'^Revealed type is "(.*)"$', r"\1", text).replace("builtins.", "")
                for _, kind, text in messages if text.startswith("Revealed type")]
    assert revealed == EXPECTED_TYPES, r.stdout


@needs_mypy
@pytest.mark.timeout(300)
def test_users_mistakes_are_type_errors(mypy_config, tmp_path):
    bad = tmp_path / "bad_code.py"
    bad.write_text(textwrap.dedent(BAD_CODE))
    r = run_mypy(mypy_config, str(bad))
    errors = {}
    for line, kind, text in _messages(r.stdout, "bad_code.py"):
        if kind == "error":
            errors.setdefault(line, re.search(r"\[([\w-]+)\]$", text).group(1))
    # x: int = Future[Any].result() is fine: results are Any.
    assert errors == EXPECTED_ERRORS, r.stdout
