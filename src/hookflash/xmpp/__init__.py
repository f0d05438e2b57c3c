"""XMPP: xmpp.conf clients, the Jabber applications and functions, messaging over XMPP."""
