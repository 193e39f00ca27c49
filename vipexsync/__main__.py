"""Allows ``python -m vipexsync``."""

from vipexsync.cli import main

raise SystemExit(main())
