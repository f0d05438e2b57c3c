"""Voicemail: voicemail.conf, the spool store, VoiceMail/VoiceMailMain and notifications."""
