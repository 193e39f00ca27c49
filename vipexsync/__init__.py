"""vipexsync: keeps a VIPeX cloud PBX phonebook equal to what a CRM says."""

__version__ = "0.1.0"
