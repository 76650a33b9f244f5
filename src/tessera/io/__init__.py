"""Front ends: blocking sockets (and the key log writer). All waiting happens here."""

from .blocking import TLSServer, TLSSocket
from .keylog import keylog_from_env, keylog_to_file

__all__ = ["TLSServer", "TLSSocket", "keylog_from_env", "keylog_to_file"]
