"""A digest of exactly what a file source will read, for the quiet-tick key.

Only sources whose whole input is local files have one (CSV, vCard): their
records are a function of the files' bytes and the job's configuration.
SQL, HTTP and CardDAV sources have none here (an ETag or a sync-token is
not an exact digest of what a read would return), so their ticks always
take the normal path.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from vipexsync.config import CsvSourceConfig, SourceConfig, VcardSourceConfig

_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class SourceIdentity:
    """``content``: a blake2b of every file's name and bytes (what the key holds).
    ``stamp``: the content plus each file's size, mtime, ctime and inode, to
    tell whether a file changed while the source read it."""

    content: str
    stamp: str


def _file(path: Path) -> tuple[str, str]:
    digest = hashlib.blake2b(digest_size=32)
    with path.open("rb") as handle:
        st = path.stat()
        size = 0
        while chunk := handle.read(_CHUNK):
            size += len(chunk)
            digest.update(chunk)
    content = f"{size}|{digest.hexdigest()}"
    return content, f"{content}|{st.st_size}|{st.st_mtime_ns}|{st.st_ctime_ns}|{st.st_ino}"


def source_identity(cfg: SourceConfig) -> SourceIdentity | None:
    """The source's input as digests, or None when it has none or cannot be read.

    None means "unknown": the caller takes the normal path (which then
    reports the source's own error, if any).
    """
    try:
        if isinstance(cfg, CsvSourceConfig):
            files = [(Path(cfg.path), str(cfg.path))]
        elif isinstance(cfg, VcardSourceConfig):
            from vipexsync.errors import SourceError
            from vipexsync.sources.vcard_source import VcardSource

            try:
                files = VcardSource(cfg).files()
            except SourceError:
                return None
        else:
            return None
        content = hashlib.blake2b(cfg.type.encode("ascii"), digest_size=32)
        stamp = hashlib.blake2b(cfg.type.encode("ascii"), digest_size=32)
        for path, label in files:
            file_content, file_stamp = _file(path)
            name = label.encode("utf-8", "surrogateescape")
            content.update(b"\0" + name + b"\0" + file_content.encode("ascii"))
            stamp.update(b"\0" + name + b"\0" + file_stamp.encode("ascii"))
    except OSError:
        return None
    return SourceIdentity(content=content.hexdigest(), stamp=stamp.hexdigest())
