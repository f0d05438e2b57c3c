"""Media: SDP offer/answer, RTP/RTCP, RFC 4733 DTMF, codecs and tone generators (all sans-IO)."""
