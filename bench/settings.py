"""Which knobs each implementation runs with, and the settings line of the header."""

from .cdriver import C_KNOBS
from .common import IMPL_BINDING, IMPL_C, PYSYNCOBJ_IMPLS, BenchError, format_value, parse_value
from .tls import IMPL_TLS


def binding_defaults():
    """canonical_raft.Node's effective defaults, from the one definition of
    the settings (canonical_raft.config)."""
    from canonical_raft import config
    return dict(config.defaults())


def plan_settings(args):
    """{impl: (knobs, options)}, plus notes for the header."""
    user = {}
    for item in args.knob:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise BenchError(f"--knob wants NAME=VALUE, got {item!r}")
        user[name] = parse_value(value)
    notes = []
    if args.defaults:
        binding = dict(user)
        c_knobs = {k: v for k, v in user.items() if k in C_KNOBS}
        c_options = {"libraft_defaults": not c_knobs}
        notes.append("settings: binding with its own defaults, C driver with libraft's"
                     + (f"; both with {_fmt_knobs(user)}" if user else ""))
        if c_knobs:
            notes.append("note: --knob given, so the C driver is libraft's defaults plus those knobs")
    else:
        defaults = binding_defaults()
        binding = dict(defaults, **user)
        c_knobs = {k: v for k, v in binding.items() if k in C_KNOBS}
        c_options = {}
        notes.append(f"settings (identical on both): {_fmt_knobs(c_knobs)}")
        only = {k: v for k, v in binding.items() if k not in C_KNOBS}
        if only:
            notes.append(f"binding-only knobs (no libraft equivalent): {_fmt_knobs(only)}")
    plan = {IMPL_BINDING: (binding, {"api": args.api}),
            IMPL_TLS: (dict(binding), {"api": args.api, "tls": True}),   # run() adds tls_dir
            IMPL_C: (c_knobs, c_options),
            **{impl: ({}, {}) for impl in PYSYNCOBJ_IMPLS}}
    for label, extra in args.variant:
        extra = dict(extra)
        api = extra.pop("api", args.api)
        plan[f"{IMPL_BINDING}[{label}]"] = (dict(binding, **extra), {"api": api})
    return plan, notes


def _fmt_knobs(knobs):
    return " ".join(f"{k}={format_value(v)}" for k, v in sorted(knobs.items()))
