"""The server's defaults, in one place (the serve command's options and
the Context read them; no aiohttp import, so that --help stays quick)."""

DEFAULT_MAX_BODY = 1024 * 1024        # bytes of one request body
DEFAULT_FORWARD_TIMEOUT = 10.0        # s: a follower waits this long for the leader's answer
DEFAULT_WRITE_TIMEOUT = 10.0          # s: a write waits this long to be committed
