"""Sample CRM data for `vipexsync demo` (shipped as vipexsync.demo_data)."""
