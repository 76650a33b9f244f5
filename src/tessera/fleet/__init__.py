"""Fleet-wide resumption: sessions and ticket keys shared by nodes and worker processes.

* :mod:`.secret` — the fleet secret (never written to Redis) and the AEAD that seals every
  value put there;
* :mod:`.redis_url` — ``--redis`` URLs (one server, ``rediss``, unix socket, Redis Cluster,
  Sentinel) and redis-py's own clients for them, bounded and never retried;
* :mod:`.redis_store` — the session store on Redis, sync and asyncio;
* :mod:`.health` — a circuit breaker around any store: a store outage costs nothing;
* :mod:`.keys` / :mod:`.keyring` — fleet ticket keys on a grid with no gaps, publish-before-use
  and short, enforced lifetimes, as immutable snapshots;
* :mod:`.redis_keys` — the keys published in Redis, the fleet's check record, a refresher no
  exception can stop;
* :mod:`.supervisor` / :mod:`.strikes` — ``tessera serve --workers N``, and the 0-RTT strike
  register the supervisor holds for its workers;
* :mod:`.cli` / :mod:`.metrics` — what ``serve``, ``proxy`` and ``keys`` use, print and export;
* :mod:`.hygiene` — warnings for secret files others may read; no core dumps.

Only ``redis_url`` and ``redis_keys`` import redis (``redis_store`` goes through ``redis_url``).
"""
