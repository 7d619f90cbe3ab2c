"""The state machine base class users subclass (duck typing works too)."""


class FSM:
    """A replicated state machine.

    ``apply``, ``snapshot`` and ``restore`` run on the node's raft thread, one
    at a time. ``apply`` must be deterministic: every node applies the same
    commands in the same order and must reach the same state.
    """

    def apply(self, command: bytes):
        """Apply one committed command; the return value resolves the future."""
        raise NotImplementedError

    def snapshot(self):
        """Return the whole state as bytes-like (or an object with persist())."""
        raise NotImplementedError

    def restore(self, data: bytes) -> None:
        """Replace the whole state with a snapshot's bytes."""
        raise NotImplementedError


def check_fsm(fsm):
    """TypeError unless ``fsm`` has callable apply, snapshot and restore."""
    missing = [name for name in ("apply", "snapshot", "restore")
               if not callable(getattr(fsm, name, None))]
    if missing:
        raise TypeError(f"fsm {fsm!r} lacks callable method(s): {', '.join(missing)}")
    return fsm
