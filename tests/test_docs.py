"""Every code block of the docs runs, as a reader would run it.

Conventions in docs/**/*.md (HTML comments, invisible in the built site):

- ```python blocks of a page run together, in order, as one script (one
  namespace) in a fresh directory, in a subprocess; the script must exit 0,
  and each ``print(...)  # OUTPUT`` line must print what its comment starts
  with, or, if the comment ends with "...", what comes before that (every
  print of the page, once each, in order).
- ``<!-- norun -->`` right before a block: a fragment, not run.
- ``<!-- file: NAME -->`` right before a block: written to NAME in the page's
  directory instead of being run; a ``test_*.py`` file is then run with
  pytest (and the raft_cluster plugin).
- ```console blocks are sessions: ``$ python ...`` lines run (``python`` is
  this interpreter) and their output must equal the lines that follow.
  ``<!-- test: terminal N -->`` before a block: its command runs in the
  background as terminal N, until its output lines have appeared.
  ``<!-- test: ctrl-c N -->``: SIGINT to terminal N, which must exit 0.
  ``<!-- test: exits N -->``: terminal N must exit 0 by itself, soon.
- ``<!-- test: ports P1 P2 ... -->``: these fixed port numbers are replaced,
  in the page's code, by free ports of 127.0.0.1.
"""

import os
import re
import selectors
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from canonical_raft.testing import free_ports
from canonical_raft.testing.procs import child_env

TESTS_DIR = Path(__file__).resolve().parent

DOCS = TESTS_DIR.parent / "docs"
# API.md is the contract (shared with the design documents): its python
# blocks are signatures, not programs. Every other page's code runs.
REFERENCE = {"API.md"}
ALL_PAGES = sorted(p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md"))
PAGES = [p for p in ALL_PAGES if p not in REFERENCE]
COMMAND_TIMEOUT = 60.0

_ITEM = re.compile(
    r"(?P<comment>^<!--\s*(?P<directive>.*?)\s*-->[ \t]*$)"
    r"|(?P<fence>^```(?P<lang>[\w-]*)[ \t]*\n(?P<code>.*?)^```[ \t]*$)",
    re.M | re.S)


def parse(text):
    """The page as a list of (kind, value, line): ('directive', text) and
    ('block', (lang, code, directive-before-it or None))."""
    items, pending = [], None
    for m in _ITEM.finditer(text):
        line = text.count("\n", 0, m.start()) + 1
        if m.group("comment"):
            directive = m.group("directive")
            if directive.startswith("test:") and not directive.startswith("test: terminal"):
                items.append(("directive", directive[5:].strip(), line))
            else:
                pending = (directive, m.end())
            continue
        before = None
        if pending is not None and not text[pending[1]:m.start()].strip():
            before = pending[0]
        pending = None
        items.append(("block", (m.group("lang"), m.group("code"), before), line))
    return items


def port_map(items):
    ports = []
    for kind, value, _ in items:
        if kind == "directive" and value.startswith("ports "):
            ports += value.split()[1:]
    return dict(zip(ports, map(str, free_ports(len(ports)))))


def substitute(code, ports):
    for old, new in ports.items():
        code = re.sub(rf"\b{old}\b", new, code)
    return code


# How long a program may take to stop after Ctrl-C (a node closing under a
# loaded machine's disk can take seconds).
INTERRUPT_TIMEOUT = 45


def _terminal_signals():
    """In the child before exec: Ctrl-C as in a user's terminal. A test run
    started in the background by a non-interactive shell inherits SIGINT
    ignored, and Python then never raises KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Terminals:
    """The background commands of a page, stopped by PID at the end."""

    def __init__(self, cwd, env):
        self.cwd, self.env, self.procs = cwd, env, {}

    def start(self, n, argv, expected, where):
        assert n not in self.procs or self.procs[n].poll() is not None, \
            f"{where}: terminal {n} is still busy"
        log = open(self.cwd / f"terminal{n}.log", "ab")
        p = subprocess.Popen(argv, cwd=self.cwd, env=self.env, stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=log, preexec_fn=_terminal_signals)
        log.close()
        self.procs[n] = p
        got = []
        deadline = time.monotonic() + COMMAND_TIMEOUT
        with selectors.DefaultSelector() as sel:
            sel.register(p.stdout, selectors.EVENT_READ)
            while len(got) < len(expected):
                left = deadline - time.monotonic()
                if left <= 0 or not sel.select(left):
                    break
                line = p.stdout.readline()
                if not line:
                    break
                got.append(line.decode().rstrip())
        assert got == expected, f"{where}: terminal {n} printed {got}, the page says {expected}" \
            f"\n{self.log(n)}"

    def interrupt(self, n, where):
        p = self.procs.get(n)
        assert p is not None and p.poll() is None, f"{where}: nothing runs in terminal {n}"
        p.send_signal(signal.SIGINT)
        try:
            rc = p.wait(timeout=INTERRUPT_TIMEOUT)
        except subprocess.TimeoutExpired:
            # Stuck: faulthandler (PYTHONFAULTHANDLER, child_env) writes every
            # thread's stack into the terminal's log on SIGABRT.
            p.send_signal(signal.SIGABRT)
            p.wait(timeout=10)
            raise AssertionError(f"{where}: terminal {n} still ran {INTERRUPT_TIMEOUT} s "
                                 f"after Ctrl-C\n{self.log(n)}") from None
        assert rc == 0, f"{where}: terminal {n} exited with {rc} after Ctrl-C\n{self.log(n)}"

    def exits(self, n, where):
        p = self.procs.get(n)
        assert p is not None, f"{where}: nothing ran in terminal {n}"
        try:
            rc = p.wait(timeout=INTERRUPT_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{where}: terminal {n} still runs, the page says it "
                                 f"stops by itself\n{self.log(n)}") from None
        assert rc == 0, f"{where}: terminal {n} exited with {rc}\n{self.log(n)}"

    def log(self, n):
        path = self.cwd / f"terminal{n}.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def close(self):
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        for p in self.procs.values():
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=10)
            p.stdout.close()


def sessions(code):
    """A console block as [(command, [expected output lines])]."""
    out = []
    for line in code.splitlines():
        if line.startswith("$ "):
            out.append((line[2:], []))
        elif out:
            out[-1][1].append(line.rstrip())
        elif line.strip():
            raise AssertionError(f"console block starts with output: {line!r}")
    return out


def argv_of(command, where):
    argv = shlex.split(command)
    assert argv[0] == "python", \
        f"{where}: only python commands can run; mark the block <!-- norun -->: {command!r}"
    return [sys.executable, *argv[1:]]


_PRINT = re.compile(r"^\s*print\(.*\)\s*#\s*(?P<expected>.+?)\s*$", re.M)


def check_prints(page, code, stdout):
    """Each print's output against the start of its trailing comment."""
    expected = _PRINT.findall(code)
    got = stdout.splitlines()
    assert len(got) == len(expected) == len(re.findall(r"^\s*print\(", code, re.M)), \
        f"{page}: every print needs its output as a comment, and runs once: " \
        f"printed {got}, comments {expected}"
    for line, comment in zip(got, expected):
        if comment.endswith("..."):  # the output starts with the rest
            ok = line.startswith(comment[:-3])
        else:  # the comment starts with the output (and may go on explaining)
            rest = comment[len(line):]
            ok = bool(line) and comment.startswith(line) and not rest[:1].isalnum()
        assert ok, f"{page}: printed {line!r}, the page says {comment!r}"


def run_page(page, workdir):
    text = (DOCS / page).read_text()
    items = parse(text)
    ports = port_map(items)
    env = child_env(TESTS_DIR)
    workdir.mkdir(parents=True, exist_ok=True)
    script, tests = [], []
    for kind, value, line in items:
        if kind != "block":
            continue
        lang, code, before = value
        if before == "norun":
            continue
        if before and before.startswith("file:"):
            name = before[5:].strip()
            (workdir / name).write_text(substitute(code, ports))
            if name.startswith("test_") and name.endswith(".py"):
                tests.append(name)
        elif lang == "python":
            script.append(f"# --- {page}, line {line} ---\n{substitute(code, ports)}")

    ran = 0
    if script:
        (workdir / "page.py").write_text("\n".join(script))
        r = subprocess.run([sys.executable, "page.py"], cwd=workdir, env=env,
                           capture_output=True, text=True, timeout=COMMAND_TIMEOUT)
        assert r.returncode == 0, f"{page}: its python blocks failed:\n{r.stdout}\n{r.stderr}"
        check_prints(page, "\n".join(script), r.stdout)
        ran += 1
    for name in tests:
        r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                            "-p", "canonical_raft.pytest_plugin", name],
                           cwd=workdir, env=env, capture_output=True, text=True,
                           timeout=COMMAND_TIMEOUT)
        assert r.returncode == 0, f"{page}: pytest {name} failed:\n{r.stdout}\n{r.stderr}"
        assert " passed" in r.stdout
        ran += 1

    terminals = Terminals(workdir, env)
    try:
        pending_terminal = None
        for kind, value, line in items:
            where = f"{page}:{line}"
            if kind == "directive":
                if value.startswith("ctrl-c "):
                    terminals.interrupt(int(value.split()[1]), where)
                elif value.startswith("exits "):
                    terminals.exits(int(value.split()[1]), where)
                continue
            lang, code, before = value
            if lang != "console" or before == "norun":
                continue
            if before and before.startswith("test: terminal"):
                pending_terminal = int(before.split()[-1])
            for command, expected in sessions(code):
                argv = argv_of(command, where)
                if pending_terminal is not None:
                    terminals.start(pending_terminal, argv, expected, where)
                    pending_terminal = None
                    continue
                r = subprocess.run(argv, cwd=workdir, env=env, capture_output=True,
                                   text=True, timeout=COMMAND_TIMEOUT)
                got = [line.rstrip() for line in r.stdout.splitlines()]
                assert r.returncode == 0 and got == expected, \
                    f"{where}: {command!r} exited {r.returncode}, printed {got}, " \
                    f"the page says {expected}\n{r.stderr}"
                ran += 1
    finally:
        terminals.close()
    return ran


def has_code(page):
    return any(kind == "block" and value[0] in ("python", "console") and value[2] != "norun"
               for kind, value, _ in parse((DOCS / page).read_text()))


@pytest.mark.timeout(150)
@pytest.mark.parametrize("page", [p for p in PAGES if has_code(p)])
def test_page_code_runs(page, tmp_path):
    assert run_page(page, tmp_path / "work") > 0


@pytest.mark.timeout(30)
def test_the_docs_have_code_and_few_fragments():
    blocks = [value for page in PAGES for kind, value, _ in parse((DOCS / page).read_text())
              if kind == "block"]
    runnable = [b for b in blocks if b[0] in ("python", "console") and b[2] != "norun"]
    fragments = [b for b in blocks if b[0] == "python" and b[2] == "norun"]
    assert len(runnable) >= 10
    assert len(fragments) <= 5, "keep the docs' code runnable: too many <!-- norun --> fragments"
    unlabelled = [b for b in blocks if not b[0]]
    assert not unlabelled, "give every code block a language"


@pytest.mark.timeout(120)
def test_mkdocs_builds_the_site(tmp_path):
    try:
        import mkdocs  # noqa: F401
    except ImportError:
        pytest.skip("mkdocs is not installed (make docs installs it)")
    root = TESTS_DIR.parent
    r = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet",
                        "-f", str(root / "mkdocs.yml"), "-d", str(tmp_path / "site")],
                       cwd=root, capture_output=True, text=True, timeout=100,
                       env=dict(os.environ))
    assert r.returncode == 0, r.stdout + r.stderr
    for page in ("index.html", "tutorial/index.html", "howto/snapshots/index.html",
                 "testing/index.html", "API/index.html"):
        assert (tmp_path / "site" / page).is_file(), page
    assert "kvstore.py" in (tmp_path / "site" / "tutorial" / "index.html").read_text()
    # The API reference is generated: every public name has its entry.
    reference = "".join(p.read_text() for p in (tmp_path / "site" / "reference").rglob("*.html"))
    ids = set(re.findall(r'id="(canonical_raft[\w.]*)"', reference))
    # (a function named like the module it lives in, batteries.replicated,
    # gets the module's path: canonical_raft.batteries.replicated.replicated)
    missing = sorted(name for name in public_names()
                     if name not in ids and f"{name}.{name.rsplit('.', 1)[1]}" not in ids)
    assert not missing, f"no entry in docs/reference for {missing}"


def public_names():
    """canonical_raft's public names, Node's members, the batteries' and
    the testing helpers' (what docs/reference must list)."""
    import canonical_raft as raft
    import canonical_raft.batteries as batteries
    import canonical_raft.testing as testing
    names = {f"canonical_raft.{n}" for n in raft.__all__}
    names |= {f"canonical_raft.Node.{n}" for n in vars(raft.Node) if not n.startswith("_")}
    names |= {f"canonical_raft.batteries.{n}" for n in batteries.__all__}
    names |= {f"canonical_raft.testing.{n}" for n in testing.__all__}
    return names


@pytest.mark.timeout(30)
def test_every_public_member_of_node_has_a_docstring():
    import canonical_raft as raft
    bare = []
    for name, value in vars(raft.Node).items():
        fn = value.fget if isinstance(value, property) else value
        if not name.startswith("_") and not (getattr(fn, "__doc__", None) or "").strip():
            bare.append(name)
    assert not bare, f"Node members without a docstring: {bare}"
