"""The resumption auditor behind ``tessera check``: probes, matrix, census and report."""

from __future__ import annotations

from .auditor import AddressReport, AuditOptions, Report, audit
from .classify import Mechanism, Outcome, Reason
from .probe import Endpoint

__all__ = [
    "AddressReport",
    "AuditOptions",
    "Endpoint",
    "Mechanism",
    "Outcome",
    "Reason",
    "Report",
    "audit",
]
