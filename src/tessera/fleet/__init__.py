"""Fleet-wide resumption: sessions and ticket keys shared by nodes and worker processes.

* :mod:`.secret` — the fleet secret (never written to Redis) and the AEAD that seals every
  value put there;
* :mod:`.redis_store` — the session store on Redis, sync and asyncio;
* :mod:`.health` — a circuit breaker around any store: a store outage costs nothing;
* :mod:`.keys` / :mod:`.keyring` — fleet ticket keys with publish-before-use and short,
  enforced lifetimes, as immutable snapshots;
* :mod:`.redis_keys` — the keys published in Redis, minted under a lock, refreshed on a
  pub/sub notice and a timer;
* :mod:`.supervisor` — ``tessera serve --workers N``.

Only ``redis_store`` and ``redis_keys`` import redis.
"""
