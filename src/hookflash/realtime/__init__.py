"""Realtime configuration: extconfig.conf and the ldap, pgsql and sqlite3 drivers."""
