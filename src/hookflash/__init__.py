"""hookflash: a PBX in Python, Asterisk-compatible, talking to the services you run."""

__version__ = "0.1.0"
