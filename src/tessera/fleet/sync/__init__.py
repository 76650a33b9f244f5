"""``tessera keys sync``: the fleet's ticket keys for servers tessera does not run.

* :mod:`.view` — which keys a synced server holds at a moment, and in which role (pure);
* :mod:`.targets` — nginx, HAProxy, Node.js and Apache key files, written atomically;
* :mod:`.haproxy` — HAProxy's runtime API: new keys without a reload;
* :mod:`.agent` — the agent: follows the fleet keyring, writes, pushes, runs ``--exec``;
* :mod:`.metrics` — its Prometheus metrics.
"""
