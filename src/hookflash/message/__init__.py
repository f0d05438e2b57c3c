"""Out-of-call messaging: the message core, its dialplan surface and technologies."""
