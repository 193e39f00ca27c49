"""Benchmarks for vipexsync: they print figures and never assert times (see RESULTS.md)."""
