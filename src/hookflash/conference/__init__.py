"""Conferences: the audio mixer, MeetMe and ConfBridge."""
