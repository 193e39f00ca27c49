"""The mirror database: what the daemon wrote, what it owns, what each run did.

``database`` makes engines and sessions and migrates the schema; ``store``
reads and journals through a caller's Session; ``models`` are the tables. No
other part of vipexsync touches the database.
"""
