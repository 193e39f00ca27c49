"""CRM source adapters: csv, sql, http and vcard, each yielding plain records.

``open_source(cfg)`` picks the adapter for a job's ``[jobs.source]`` table;
every adapter reads the whole source or raises ``SourceError``.
"""

from vipexsync.sources.base import Source, SourceRecord, clean_value, open_source

__all__ = ["Source", "SourceRecord", "clean_value", "open_source"]
