"""Sample CRM data for `vipexsync demo`."""
