"""The comparative benchmark, run from a checkout: ``make bench`` or ``python -m bench``.

Not installed with canonical_raft. Modules, one job each: common (names,
timeouts, the command), loads (the binding leader's load and the FSM),
pysyncobj_node (the same on PySyncObj), node (the Python node process),
cdriver (the C driver's command line), procfs (CPU, RSS, file systems),
cluster (node processes and one measured row), settings (each side's knobs),
tls (the TLS row's certificates and targets), report (medians and the
tables), run (the whole run), __main__ (options).
"""
