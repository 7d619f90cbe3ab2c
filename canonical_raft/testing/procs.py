"""One protocol for driving node processes: JSON lines over a child's stdin and stdout.

The demo, the benchmark, the chaos harness and the multi-process tests run
raft nodes in child processes; this module is how a parent talks to them.

Wire format, one JSON object per line::

    parent -> child   {"id": 7, "cmd": "status", "args": {...}}
    child -> parent   {"id": 7, "reply": {...}}          the handler's result
                      {"id": 7, "error": "Type: text"}   the handler raised
                      {"event": "ready", "pid": 123, ...} pushed by the child

Replies come in completion order, not request order (a handler may return a
``concurrent.futures.Future``: the reply goes out when it is done). The
child announces itself with a ``ready`` event (or an ``error`` event if it
cannot start); ``close`` (or EOF on stdin) ends its serve loop.

Child side: :class:`Child` (a private copy of stdout, a writer thread so that
no caller, the raft thread included, ever blocks on the pipe) and
:meth:`Child.serve` with a table of handlers. Parent side: :class:`Process`
(spawn with :func:`child_env`, request ids, :meth:`Process.call` with a
timeout, events, and :meth:`Process.stop`: close, then SIGTERM, then
SIGKILL by pid, each step bounded, then reap). Every wait is bounded.
"""

from __future__ import annotations

import argparse
import faulthandler
import itertools
import json
import logging
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from types import FrameType
from typing import IO, Any, Callable, Optional, Union

__all__ = ["Message", "Handler", "ProcessError", "ProcessGone", "ReplyTimeout", "RemoteError",
           "Child", "Process", "child_env", "python_argv", "stop_all",
           "format_servers", "parse_servers", "node_arguments", "node_settings", "at_least"]

#: One decoded JSON object: a reply's or an event's fields, a request's args.
Message = dict[str, Any]
#: What a command runs in the child: its args as keywords; returns the reply
#: (a JSON-able dict, or None for {}) or a Future of it.
Handler = Callable[..., Union[Message, None, "Future[Message]"]]

CALL_TIMEOUT = 15.0   # one request, unless told otherwise
START_TIMEOUT = 30.0  # spawned -> "ready"
CLOSE_TIMEOUT = 10.0  # "close" -> exited, before SIGTERM
TERM_TIMEOUT = 5.0    # SIGTERM -> exited, before SIGKILL
KILL_TIMEOUT = 10.0   # SIGKILL -> reaped

_log = logging.getLogger(__name__)
_PACKAGE_PARENT = str(Path(__file__).resolve().parent.parent.parent)


class ProcessError(Exception):
    """A node process did not answer as asked."""


class ProcessGone(ProcessError):
    """The process exited (or was killed) before it replied."""


class ReplyTimeout(ProcessError, TimeoutError):
    """No reply in time (one may still come: the request's future stays pending)."""


class RemoteError(ProcessError):
    """The child's handler raised; the text is its ``Type: message``."""


def _dumps(msg: Mapping[str, Any]) -> str:
    return json.dumps(msg, separators=(",", ":")) + "\n"


# -- a node process's command line ---------------------------------------------


def format_servers(servers: Mapping[int, str]) -> str:
    """A cluster on a command line: ``1=127.0.0.1:9001,2=...`` (id -> address)."""
    return ",".join(f"{i}={address}" for i, address in servers.items())


def parse_servers(text: str) -> list[tuple[int, str]]:
    """The (id, address) pairs of :func:`format_servers`'s text ('' is none)."""
    return [(int(i), address) for i, address in
            (item.split("=", 1) for item in text.split(",") if item)]


#: The node settings :func:`node_arguments` puts on the command line.
_NODE_SETTINGS = {"election_timeout": float, "heartbeat_timeout": float,
                  "snapshot_threshold": int, "snapshot_trailing": int}


def at_least(minimum: float, kind: Callable[[str], float] = int) -> Callable[[str], float]:
    """An argparse type: a number (``kind``) of at least ``minimum``."""
    def check(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {text}")
        return value
    return check


def node_arguments(parser: argparse.ArgumentParser, **defaults: float) -> argparse.ArgumentParser:
    """The options of a node process: --id, --address, --data-dir, --bootstrap
    (a :func:`format_servers` text, to bootstrap a new cluster) and the
    settings of ``defaults`` (election_timeout=..., snapshot_threshold=...)."""
    parser.add_argument("--id", type=int, required=True)
    parser.add_argument("--address", required=True)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--bootstrap", default="", help="id=host:port,... of a new cluster")
    for name, default in defaults.items():
        parser.add_argument("--" + name.replace("_", "-"), type=_NODE_SETTINGS[name], default=default)
    return parser


def node_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The settings :func:`node_arguments` parsed, as Node keywords."""
    return {name: getattr(args, name) for name in _NODE_SETTINGS if hasattr(args, name)}


def start_node(node: Any, args: argparse.Namespace) -> None:
    """Bootstrap ``node`` with :func:`node_arguments`' ``--bootstrap`` (when
    given: a new cluster's first start), then start it; if either fails,
    the node is closed before the error goes on."""
    try:
        if args.bootstrap:
            node.bootstrap([tuple(s) for s in parse_servers(args.bootstrap)])
        node.start()
    except BaseException:
        node.close()
        raise


# -- the child ----------------------------------------------------------------


def _exit_on_sigterm(signum: int, frame: Optional[FrameType]) -> None:
    raise SystemExit(0)


class Child:
    """The child's end: events and replies to the parent, from any thread.

    Creating it takes the protocol onto a private copy of fd 1 and points fd
    1 at stderr (the log), so that nothing else printing (C code included)
    corrupts the stream; the parent owns Ctrl-C (SIGINT ignored) and SIGTERM
    raises SystemExit, so that ``finally`` blocks close the node.
    """

    def __init__(self, name: str, stdin: Optional[IO[str]] = None,
                 stdout_fd: int = 1) -> None:
        self.name = name
        self._stdin = stdin if stdin is not None else sys.stdin
        self._stream = os.fdopen(os.dup(stdout_fd), "w")
        os.dup2(2, stdout_fd)
        self._out: queue.SimpleQueue[Optional[str]] = queue.SimpleQueue()
        self._writer = threading.Thread(target=self._write, name="procs-writer", daemon=True)
        self._writer.start()
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, _exit_on_sigterm)
        faulthandler.enable()
        logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                            format=f"{name} %(asctime)s %(name)s %(levelname)s %(message)s")

    def _write(self) -> None:
        while True:
            line = self._out.get()
            if line is None:
                break
            try:
                self._stream.write(line)
                if self._out.empty():
                    self._stream.flush()
            except (OSError, ValueError):
                return  # the parent went away

    def send(self, msg: Mapping[str, Any]) -> None:
        """One raw message (never blocks)."""
        self._out.put(_dumps(msg))

    def event(self, name: str, **data: Any) -> None:
        """Push an event: ``{"event": name, **data}``."""
        self.send({"event": name, **data})

    def ready(self, **data: Any) -> None:
        """Tell the parent this node is up (its pid is added)."""
        self.event("ready", pid=os.getpid(), **data)

    def failed(self, exc: BaseException) -> None:
        """Tell the parent this node cannot start (it raises from wait_ready)."""
        self.event("error", error=f"{type(exc).__name__}: {exc}")

    def reply(self, request_id: Any, result: Optional[Message]) -> None:
        self.send({"id": request_id, "reply": result or {}})

    def reply_error(self, request_id: Any, exc: BaseException) -> None:
        self.send({"id": request_id, "error": f"{type(exc).__name__}: {exc}"})

    def _answer(self, request_id: Any, result: Union[Message, None, Future[Message]]) -> None:
        if not isinstance(result, Future):
            self.reply(request_id, result)
            return

        def done(future: Future[Message]) -> None:
            # May run on the raft thread: format and queue, never raise.
            try:
                self.reply(request_id, future.result())
            except BaseException as exc:
                self.reply_error(request_id, exc)

        result.add_done_callback(done)

    def serve(self, handlers: Mapping[str, Handler]) -> None:
        """Answer requests until ``close`` (answered by ``handlers["close"]``
        if there is one) or EOF on stdin."""
        for line in self._stdin:
            try:
                request = json.loads(line)
                request_id, cmd = request.get("id"), request["cmd"]
                args = request.get("args") or {}
            except (ValueError, KeyError, TypeError, AttributeError):
                continue
            handler = handlers.get(cmd)
            try:
                if handler is None:
                    if cmd != "close":
                        raise ValueError(f"unknown command {cmd!r}")
                    result: Union[Message, None, Future[Message]] = None
                else:
                    result = handler(**args)
            except Exception as exc:
                self.reply_error(request_id, exc)
            else:
                self._answer(request_id, result)
            if cmd == "close":
                return

    def serve_node(self, close: Callable[[], object], handlers: Mapping[str, Handler],
                   **ready: Any) -> None:
        """Announce ready, serve until close or EOF, then ``close()`` (the
        node) and flush, whatever happened."""
        try:
            self.ready(**ready)
            self.serve(handlers)
        finally:
            close()
            self.flush()

    def flush(self, timeout: float = 10.0) -> None:
        """Write out everything queued (bounded); nothing is sent after it."""
        self._out.put(None)
        self._writer.join(timeout)
        try:
            self._stream.flush()
        except (OSError, ValueError):
            pass


# -- the parent -----------------------------------------------------------------


def child_env(*paths: Union[str, os.PathLike[str]]) -> dict[str, str]:
    """The environment of every node process: it imports this very
    canonical_raft (and whatever lives in ``paths``: a checkout's root for
    chaos/ and bench/, the tests directory), dumps tracebacks on a crash,
    and does not inherit the parent's warning filters."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (_PACKAGE_PARENT, *map(str, paths), env.get("PYTHONPATH")) if p)
    env["PYTHONFAULTHANDLER"] = "1"
    env.pop("PYTHONWARNINGS", None)
    return env


def python_argv(module: str, *args: str) -> list[str]:
    """``python -m module args...`` with this interpreter."""
    return [sys.executable, "-m", module, *args]


EventHandler = Callable[["Process", str, Message], None]
ExitHandler = Callable[["Process"], None]


class Process:
    """A node process and its request/reply channel.

    ``on_event(process, name, data)`` runs on the reader thread for every
    event but ``ready``; ``on_exit(process)`` runs there once the process
    has exited (every pending request has failed with ProcessGone by then).
    ``new_session``: the child gets its own session (and, with the kernel's
    autogroup scheduling, its own CPU share), so that signals to the
    parent's process group never reach it; the demo and the benchmark keep
    their nodes in the parent's session, as measured before.
    """

    def __init__(self, argv: Sequence[str], *, name: str, log_path: Union[str, os.PathLike[str]],
                 env: Optional[Mapping[str, str]] = None,
                 cwd: Optional[Union[str, os.PathLike[str]]] = None,
                 on_event: Optional[EventHandler] = None,
                 on_exit: Optional[ExitHandler] = None, new_session: bool = True) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = str(log_path)
        self.ready: Future[Message] = Future()
        self.exited = threading.Event()
        self.paused = False
        self.closing = False
        self.signals_sent: set[int] = set()  # signals sent on purpose
        self._on_event = on_event
        self._on_exit = on_exit
        self._pending: dict[int, Future[Message]] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._wlock = threading.Lock()
        self._log: IO[bytes] = open(log_path, "ab")
        self._log.write(f"--- {name}: {' '.join(self.argv)}\n".encode())
        self._log.flush()
        try:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=self._log, env=dict(env or child_env()),
                                         cwd=cwd, start_new_session=new_session)
        except BaseException:
            self._log.close()
            raise
        self.pid = self.proc.pid
        self._reader = threading.Thread(target=self._read, name=f"{name}-reader", daemon=True)
        self._reader.start()

    def __repr__(self) -> str:
        return f"<Process {self.name} pid {self.pid} {'alive' if self.alive else 'exited'}>"

    # -- the pipes

    def _read(self) -> None:
        stdout = self.proc.stdout
        assert stdout is not None
        try:
            for line in stdout:
                try:
                    msg = json.loads(line)
                except ValueError:
                    continue
                if not isinstance(msg, dict):
                    continue
                if "id" in msg and "event" not in msg:
                    self._resolve(msg)
                    continue
                name = str(msg.pop("event", ""))
                if name == "ready":
                    if not self.ready.done():
                        self.ready.set_result(msg)
                    continue
                if name == "error" and not self.ready.done():
                    self.ready.set_exception(ProcessGone(
                        f"{self.name} failed to start: {msg.get('error')}"))
                if self._on_event is not None:
                    try:
                        self._on_event(self, name, msg)
                    except Exception:  # a bug there must not stop the replies
                        _log.exception("%s: on_event(%r) raised", self.name, name)
        except (OSError, ValueError):
            pass
        finally:
            self._ended()

    def _resolve(self, msg: Message) -> None:
        with self._lock:
            future = self._pending.pop(msg["id"], None)
        if future is None or future.done():
            return
        if "error" in msg:
            future.set_exception(RemoteError(str(msg["error"])))
        else:
            future.set_result(msg.get("reply") or {})

    def _ended(self) -> None:
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
        self.exited.set()
        gone = ProcessGone(f"{self.name} (pid {self.pid}) has exited ({self.exit_status()})")
        with self._lock:
            pending, self._pending = self._pending, {}
        for future in [self.ready, *pending.values()]:
            if not future.done():
                future.set_exception(gone)
        if self._on_exit is not None:
            self._on_exit(self)

    def _write(self, data: bytes) -> None:
        with self._wlock:
            stdin = self.proc.stdin
            try:
                assert stdin is not None
                stdin.write(data)
                stdin.flush()
            except (OSError, ValueError):
                pass  # the reader notices the exit and fails the pending requests

    # -- requests

    def submit(self, cmd: str, **args: Any) -> Future[Message]:
        """Send a request; its future gets the reply (RemoteError if the
        handler raised, ProcessGone if the process exits first). Never
        blocks for long: to a paused process the write happens on a thread."""
        future: Future[Message] = Future()
        request_id = next(self._ids)
        with self._lock:
            if self.exited.is_set():
                future.set_exception(ProcessGone(f"{self.name} (pid {self.pid}) has exited"))
                return future
            self._pending[request_id] = future
        data = _dumps({"id": request_id, "cmd": cmd, "args": args}).encode()
        if self.paused:
            threading.Thread(target=self._write, args=(data,), daemon=True).start()
        else:
            self._write(data)
        return future

    def call(self, cmd: str, timeout: float = CALL_TIMEOUT, **args: Any) -> Message:
        """Send a request and wait (bounded) for its reply."""
        future = self.submit(cmd, **args)
        return self.wait(future, timeout, cmd)

    def wait(self, future: Future[Message], timeout: float, what: str = "a request") -> Message:
        """The reply of a submitted request; ReplyTimeout after ``timeout``."""
        try:
            return future.result(timeout)
        except FutureTimeout:
            raise ReplyTimeout(f"{self.name}: no reply to {what!r} within {timeout:g} s") from None
        except RemoteError as exc:
            raise RemoteError(f"{self.name}: {what}: {exc}") from None

    def wait_ready(self, timeout: float = START_TIMEOUT) -> Message:
        """The ready event's fields; ProcessGone if it failed or exited,
        ReplyTimeout if it said nothing in time."""
        try:
            return self.ready.result(timeout)
        except FutureTimeout:
            raise ReplyTimeout(f"{self.name} did not start within {timeout:g} s") from None

    # -- life and death (every signal by pid, only while it has not been reaped)

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None and not self.exited.is_set()

    @property
    def returncode(self) -> Optional[int]:
        return self.proc.poll()

    def exit_status(self) -> str:
        code = self.proc.poll()
        if code is None:
            return "still running"
        if code < 0:
            try:
                return f"killed by {signal.Signals(-code).name}"
            except ValueError:
                return f"killed by signal {-code}"
        return f"exited with status {code}"

    def signal(self, sig: int) -> None:
        if self.proc.poll() is None:
            self.signals_sent.add(sig)
            self.proc.send_signal(sig)

    def kill(self, timeout: float = KILL_TIMEOUT) -> None:
        """SIGKILL: no goodbye, no flush; waits (bounded) until it is gone."""
        self.signal(signal.SIGKILL)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
        self.exited.wait(timeout)

    def pause(self) -> None:
        self.paused = True
        self.signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self.paused:
            self.signal(signal.SIGCONT)
            self.paused = False

    def ask_to_close(self) -> None:
        """Send ``close`` without waiting (a paused process is continued first)."""
        self.closing = True
        self.resume()
        if self.proc.poll() is None:
            self.submit("close")

    def reap(self, timeout: float = CLOSE_TIMEOUT) -> None:
        """Wait for the exit; SIGTERM, then SIGKILL if it does not come (each
        step bounded); then join the reader and close the pipes and the log."""
        steps: list[tuple[Optional[int], float]] = [
            (None, timeout), (signal.SIGTERM, TERM_TIMEOUT), (signal.SIGKILL, KILL_TIMEOUT)]
        for sig, wait in steps:
            if sig is not None:
                self.signal(sig)
            try:
                self.proc.wait(wait)
                break
            except subprocess.TimeoutExpired:
                continue
        self.exited.wait(5.0)
        self._reader.join(5.0)
        for stream in (self.proc.stdin, self.proc.stdout, self._log):
            try:
                if stream is not None:
                    stream.close()
            except (OSError, ValueError):
                pass

    def stop(self, timeout: float = CLOSE_TIMEOUT) -> None:
        """Close politely, then SIGTERM, then SIGKILL (by pid, bounded), and reap."""
        self.ask_to_close()
        self.reap(timeout)

    def log_tail(self, lines: int = 15) -> list[str]:
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace").splitlines()[-lines:]
        except OSError:
            return []


def stop_all(processes: Iterable[Process], timeout: float = CLOSE_TIMEOUT) -> None:
    """Stop every process: all asked to close at once, then each reaped
    within one shared deadline (SIGTERM, SIGKILL for those that linger)."""
    processes = list(processes)
    for process in processes:
        process.ask_to_close()
    deadline = time.monotonic() + timeout
    for process in processes:
        process.reap(max(0.5, deadline - time.monotonic()))
