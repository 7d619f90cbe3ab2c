"""The replicated key-value server (``python -m canonical_raft serve``) and
the admin endpoints that ``canonical_raft.admin`` mounts in any process.

One job per module: ``command`` (the serve command), ``app`` (the aiohttp
application), ``kv_api`` and ``admin_api`` (the endpoints), ``page`` (the
status page), ``writes`` (commands run on the leader), ``forward`` (to the
leader's HTTP server), ``consistency`` (the read point), ``directory``
(members' HTTP URLs in the replicated state), ``history`` (the chart's
samples), ``runner`` and ``ssl_contexts``. Needs aiohttp and
prometheus_client: ``pip install 'canonical_raft[server]'``.
"""
