"""What to change, after a verdict: one remedy per kind of fault, in the words and directives of
the server software it is for (nginx, HAProxy, Node.js, Apache mod_ssl, OpenSSL-based servers,
tessera), or a generic one naming the usual directives when the server is unidentified.

A fault (:class:`Fix`) follows from a reason (:func:`fix_for`): the reason says what the client
saw, the fix what the operator changes. Across backends the same reason may need another fix
(a session id unknown on its own host: no cache; unknown at another host: caches are per host).
"""

from __future__ import annotations

from enum import Enum

from .classify import Mechanism, Reason
from .identify import ServerKind


class Fix(Enum):
    SESSION_CACHE = "session_cache"  # the server keeps no (usable) session cache
    SHARED_CACHE = "shared_cache"  # session caches are per host
    TICKETS_OFF = "tickets_off"  # no tickets issued
    SHARE_TICKET_KEYS = "share_ticket_keys"  # the backends seal under different keys
    SPREAD = "spread"  # one address, several servers that do not share
    SESSION_CONTEXT = "session_context"  # the key is shared, the session context is not
    SETTINGS_DIFFER = "settings_differ"  # version, suites, EMS or SNI differ
    ENABLE_TLS13 = "enable_tls13"
    ENABLE_TLS12 = "enable_tls12"
    PSK_KE = "psk_ke"
    EARLY_DATA = "early_data"
    REPLAY = "replay"  # 0-RTT accepted twice
    ROTATE_KEYS = "rotate_keys"  # one ticket key for more than a day


_GENERIC_KEYS = (
    "nginx ssl_session_ticket_key, HAProxy tls-ticket-keys, Node.js ticketKeys, Apache "
    "SSLSessionTicketKeyFile; `tessera keys sync` keeps them in step and rotates them"
)

_REMEDIES: dict[Fix, dict[ServerKind, str]] = {
    Fix.SESSION_CACHE: {
        ServerKind.NGINX: "add `ssl_session_cache shared:SSL:10m;` (nginx's default keeps no "
        "sessions: it sends session ids it cannot resume)",
        ServerKind.HAPROXY: "keep HAProxy's session cache on: `tune.ssl.cachesize` above 0 in "
        "the global section",
        ServerKind.NODE: "Node.js keeps no session cache: store sessions on the server's "
        "'newSession' event and give them back on 'resumeSession' (or rely on tickets)",
        ServerKind.APACHE: "add `SSLSessionCache shmcb:/run/apache2/ssl_scache(512000)` and "
        "`SSLSessionCacheTimeout 300` to the server config",
        ServerKind.OPENSSL: "turn the server's session cache on "
        "(SSL_CTX_set_session_cache_mode SSL_SESS_CACHE_SERVER; openssl s_server: drop -no_cache)",
        ServerKind.TESSERA: "drop --no-cache (the session cache is on by default)",
        ServerKind.GENERIC: "turn the server's session cache on (nginx ssl_session_cache "
        "shared:SSL:10m, Apache SSLSessionCache, HAProxy tune.ssl.cachesize)",
    },
    Fix.SHARED_CACHE: {
        ServerKind.NGINX: "nginx's session cache is per host: across nodes rely on tickets "
        "with a shared ssl_session_ticket_key, and expect only those (--expect ticket,psk)",
        ServerKind.HAPROXY: "HAProxy's session cache is per host: across nodes rely on tickets "
        "with a shared tls-ticket-keys file, and expect only those (--expect ticket,psk)",
        ServerKind.NODE: "share sessions through an external store in the 'newSession' and "
        "'resumeSession' handlers, or rely on tickets (--expect ticket,psk)",
        ServerKind.APACHE: "share the cache between the nodes (`SSLSessionCache "
        "redis:HOST:PORT` with mod_socache_redis, or memcache:), or rely on tickets "
        "(--expect ticket,psk)",
        ServerKind.OPENSSL: "share the session cache through an external store "
        "(SSL_CTX_sess_set_new_cb / get_cb), or rely on tickets (--expect ticket,psk)",
        ServerKind.TESSERA: "give every node the same --redis URL (it shares the session cache "
        "and the ticket keys)",
        ServerKind.GENERIC: "session caches are per host: share the cache between the backends, "
        "or rely on tickets with shared keys and expect only those (--expect ticket,psk)",
    },
    Fix.TICKETS_OFF: {
        ServerKind.NGINX: "`ssl_session_tickets on;` (the default) with a shared "
        "ssl_session_ticket_key",
        ServerKind.HAPROXY: "remove no-tls-tickets from the bind line (or from "
        "ssl-default-bind-options)",
        ServerKind.NODE: "remove SSL_OP_NO_TICKET from secureOptions",
        ServerKind.APACHE: "`SSLSessionTickets on` (the default) with an SSLSessionTicketKeyFile",
        ServerKind.OPENSSL: "turn tickets on (no SSL_OP_NO_TICKET; TLS 1.3: "
        "SSL_CTX_set_num_tickets above 0; openssl s_server: drop -no_ticket, -num_tickets 0)",
        ServerKind.TESSERA: "drop --no-ticket (TLS 1.2) and --num-tickets 0 (TLS 1.3)",
        ServerKind.GENERIC: "turn session tickets on (nginx ssl_session_tickets, HAProxy without "
        "no-tls-tickets, Apache SSLSessionTickets)",
    },
    Fix.SHARE_TICKET_KEYS: {
        ServerKind.NGINX: "the same ssl_session_ticket_key files, in the same order, on every "
        "node; `tessera keys sync --to nginx:DIR` writes and rotates them",
        ServerKind.HAPROXY: "the same tls-ticket-keys file on every node's bind line, updated "
        "without a reload through the runtime API (`set ssl tls-key`); `tessera keys sync --to "
        "haproxy:FILE --haproxy-socket PATH` does both",
        ServerKind.NODE: "the same 48-byte ticketKeys on every server (server.setTicketKeys() to "
        "rotate) and the same explicit sessionIdContext",
        ServerKind.APACHE: "the same SSLSessionTicketKeyFile on every node; `tessera keys sync "
        "--to apache:FILE` writes and rotates it",
        ServerKind.OPENSSL: "the same ticket keys on every node (SSL_CTX_set_tlsext_ticket_keys "
        "or a ticket key callback), rotated together",
        ServerKind.TESSERA: "every node on one fleet keyring (`--redis URL --fleet-secret "
        "FILE`), or the same --ticket-keys file",
        ServerKind.GENERIC: f"give every backend the same ticket keys: {_GENERIC_KEYS}",
    },
    Fix.SPREAD: {
        ServerKind.GENERIC: "this address spreads connections over servers that do not share "
        "sessions or ticket keys: audit them with --backends A:PORT,B:PORT to see which",
    },
    Fix.SESSION_CONTEXT: {
        ServerKind.NODE: "give every server the same explicit sessionIdContext (Node.js derives "
        "the default from the process's command line, which differs between servers)",
        ServerKind.NGINX: "nginx derives the session context from the server's certificates and "
        "client-certificate settings: make them the same on every node",
        ServerKind.APACHE: "mod_ssl derives the session context from the virtual host's "
        "ServerName and port: make them the same on every node",
        ServerKind.OPENSSL: "set the same session id context on every node "
        "(SSL_CTX_set_session_id_context; openssl s_server: -context)",
        ServerKind.GENERIC: "the backends open each other's tickets but refuse the sessions in "
        "them: give them the same session context (Node.js sessionIdContext, OpenSSL "
        "SSL_CTX_set_session_id_context) and the same certificates",
    },
    Fix.SETTINGS_DIFFER: {
        ServerKind.GENERIC: "the servers' TLS settings differ: the same protocol versions, "
        "cipher suites, extended master secret setting and server names everywhere",
    },
    Fix.ENABLE_TLS13: {
        ServerKind.NGINX: "`ssl_protocols TLSv1.2 TLSv1.3;`",
        ServerKind.HAPROXY: "`ssl-max-ver TLSv1.3` (or no ssl-max-ver) on the bind line",
        ServerKind.NODE: "maxVersion: 'TLSv1.3' (the default)",
        ServerKind.APACHE: "`SSLProtocol -all +TLSv1.2 +TLSv1.3`",
        ServerKind.OPENSSL: "allow TLS 1.3 (SSL_CTX_set_max_proto_version; s_server: drop -tls1_2)",
        ServerKind.TESSERA: "drop --tls1-2",
        ServerKind.GENERIC: "enable TLS 1.3",
    },
    Fix.ENABLE_TLS12: {
        ServerKind.NGINX: "`ssl_protocols TLSv1.2 TLSv1.3;`",
        ServerKind.HAPROXY: "`ssl-min-ver TLSv1.2` on the bind line",
        ServerKind.NODE: "minVersion: 'TLSv1.2' (the default)",
        ServerKind.APACHE: "`SSLProtocol -all +TLSv1.2 +TLSv1.3`",
        ServerKind.OPENSSL: "allow TLS 1.2 (SSL_CTX_set_min_proto_version; s_server: drop -tls1_3)",
        ServerKind.TESSERA: "drop --tls1-3",
        ServerKind.GENERIC: "enable TLS 1.2 (or stop expecting id and ticket: --expect psk)",
    },
    Fix.PSK_KE: {
        ServerKind.NGINX: "`ssl_conf_command Options AllowNoDHEKEX;` (psk_ke has no forward "
        "secrecy: only if you mean it)",
        ServerKind.APACHE: "`SSLOpenSSLConfCmd Options AllowNoDHEKEX` (psk_ke has no forward "
        "secrecy: only if you mean it)",
        ServerKind.NODE: "secureOptions: crypto.constants.SSL_OP_ALLOW_NO_DHE_KEX (psk_ke has no "
        "forward secrecy: only if you mean it)",
        ServerKind.OPENSSL: "SSL_OP_ALLOW_NO_DHE_KEX (s_server: -allow_no_dhe_kex); psk_ke has no "
        "forward secrecy: only if you mean it",
        ServerKind.TESSERA: "--psk-ke (no forward secrecy: only if you mean it)",
        ServerKind.GENERIC: "psk_ke (resumption without a key exchange, no forward secrecy) is "
        "off in most servers; stop expecting it unless you turned it on",
    },
    Fix.EARLY_DATA: {
        ServerKind.NGINX: "`ssl_early_data on;` (and let the application refuse early requests "
        "that are not idempotent: the Early-Data header, RFC 8470)",
        ServerKind.HAPROXY: "allow-0rtt on the bind line (with `http-request wait-for-handshake` "
        "for requests that are not idempotent)",
        ServerKind.NODE: "Node.js does not accept 0-RTT: stop expecting it",
        ServerKind.APACHE: "mod_ssl does not accept 0-RTT: stop expecting it",
        ServerKind.OPENSSL: "SSL_CTX_set_max_early_data above 0 (s_server: -early_data)",
        ServerKind.TESSERA: "--max-early-data BYTES",
        ServerKind.GENERIC: "turn 0-RTT on (nginx ssl_early_data, HAProxy allow-0rtt), or stop "
        "expecting it",
    },
    Fix.REPLAY: {
        ServerKind.NGINX: "nginx keeps no anti-replay state for 0-RTT: turn ssl_early_data off, "
        "or make the application refuse early requests that are not idempotent (RFC 8470)",
        ServerKind.HAPROXY: "`http-request wait-for-handshake` for requests that are not "
        "idempotent, or drop allow-0rtt",
        ServerKind.OPENSSL: "turn anti-replay back on (no SSL_OP_NO_ANTI_REPLAY; s_server: drop "
        "-no_anti_replay)",
        ServerKind.TESSERA: "give every node one strike register (--redis URL), or drop "
        "--max-early-data",
        ServerKind.GENERIC: "turn 0-RTT off, or make the server refuse a ClientHello it has seen "
        "(single-use tickets or a strike register, RFC 8446 §8)",
    },
    Fix.ROTATE_KEYS: {
        ServerKind.NGINX: "nginx never rotates ssl_session_ticket_key: `tessera keys sync --to "
        "nginx:DIR --exec 'nginx -s reload'` rotates the files",
        ServerKind.HAPROXY: "rotate through the runtime API (`set ssl tls-key`), or `tessera "
        "keys sync --to haproxy:FILE --haproxy-socket PATH`",
        ServerKind.NODE: "rotate with server.setTicketKeys() (the same keys on every server)",
        ServerKind.APACHE: "rotate the SSLSessionTicketKeyFile and reload (`tessera keys sync "
        "--to apache:FILE --exec 'apachectl graceful'`)",
        ServerKind.TESSERA: "--ticket-rotation (or a fleet keyring: --redis URL)",
        ServerKind.GENERIC: "rotate the ticket keys at least daily (a stolen key opens every "
        "session sealed under it); `tessera keys sync` rotates nginx, HAProxy, Node.js and "
        "Apache keys",
    },
}


def remedy(fix: Fix, kind: ServerKind) -> str:
    """What to change for ``fix`` on a server of ``kind`` (generic when nothing specific)."""
    texts = _REMEDIES[fix]
    return texts.get(kind) or texts[ServerKind.GENERIC]


def fix_for(mechanism: Mechanism, reason: Reason | None, across: bool = False) -> Fix | None:
    """The fix for ``reason`` (on one address; ``across``: between two backends)."""
    if reason is None:
        return None
    if reason in (Reason.NO_SESSION_ID_ISSUED, Reason.SESSION_ID_UNKNOWN):
        return Fix.SHARED_CACHE if across else Fix.SESSION_CACHE
    if reason is Reason.STATEFUL_TICKET_UNKNOWN:
        return Fix.SHARED_CACHE if across else Fix.SESSION_CACHE
    if reason is Reason.VERSION_NOT_ENABLED:
        return Fix.ENABLE_TLS13 if mechanism.tls13 else Fix.ENABLE_TLS12
    if reason in (Reason.TICKET_REISSUED, Reason.TICKET_IGNORED, Reason.TICKET_KEY_UNKNOWN):
        # One address refusing its own fresh tickets: servers behind it that do not share.
        return Fix.SHARE_TICKET_KEYS if across else Fix.SPREAD
    return _FIXES.get(reason)


_FIXES = {
    Reason.NO_TICKET_ISSUED: Fix.TICKETS_OFF,
    Reason.SESSION_REFUSED: Fix.SESSION_CONTEXT,
    Reason.VERSION_OR_SUITE_CHANGED: Fix.SETTINGS_DIFFER,
    Reason.EMS_MISMATCH: Fix.SETTINGS_DIFFER,
    Reason.SNI_MISMATCH: Fix.SETTINGS_DIFFER,
    Reason.PSK_MODE_REFUSED: Fix.PSK_KE,
    Reason.EARLY_DATA_REFUSED: Fix.EARLY_DATA,
}
