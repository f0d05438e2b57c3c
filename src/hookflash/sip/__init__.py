"""SIP (RFC 3261): messages, transactions, dialogs, transports, registrar, channel driver."""
