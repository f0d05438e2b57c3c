"""chan_motif against exchanges recorded from independent Jingle implementations
(tests/data/jingle/: Asterisk 20.20.1's chan_motif and Dino 0.4.2, recorded on a
developer machine because neither runs in CI; see the headers of those files and
tests/interop/). What a real peer sent must parse, give the codec and transport a call
would use, and survive being mangled."""

from __future__ import annotations

import copy
import random
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hookflash.motif.config import MotifEndpoint
from hookflash.motif.jingle import (
    NS_JINGLE,
    Jingle,
    JingleError,
    build_jingle,
    choose,
    offer_payloads,
    parse_jingle,
)
from hookflash.motif.transport import AddressFilter

DATA = Path(__file__).resolve().parent.parent / "data" / "jingle"
LOOPBACK_V4 = AddressFilter(permit=["127.0.0.0/8"], deny=["0.0.0.0/0", "::/0"])


def jingles(name: str) -> list[tuple[ET.Element, Jingle]]:
    root = ET.parse(DATA / name).getroot()
    return [(el, parse_jingle(el)) for el in root.iter(f"{{{NS_JINGLE}}}jingle")]


def first(name: str, action: str) -> Jingle:
    return next(j for _, j in jingles(name) if j.action == action)


@pytest.mark.parametrize("name", sorted(p.name for p in DATA.glob("*.xml")))
def test_every_recorded_jingle_element_parses_and_survives_a_round_trip(name: str) -> None:
    found = jingles(name)
    assert found, f"no Jingle in {name}"
    for _, j in found:
        again = parse_jingle(build_jingle(j))
        assert again == j


def test_dino_offer_gives_opus_or_pcmu_with_dtls_and_rtcp_mux() -> None:
    offer = first("dino-0.4.2-initiate.xml", "session-initiate")
    audio = offer.audio
    assert audio is not None and audio.transport is not None
    pt, name, dtmf = choose(audio.payloads, ["opus", "ulaw"])  # type: ignore[misc]
    assert (pt.id, name, pt.clockrate, pt.channels) == (111, "opus", 48000, 2)
    assert dtmf is None  # Dino offers no telephone-event
    pt, name, _ = choose(audio.payloads, ["ulaw"])  # type: ignore[misc]
    assert (pt.id, name) == (0, "ulaw")
    assert choose(audio.payloads, ["g722"]) is None  # -> session-terminate incompatible-parameters
    fp = audio.transport.fingerprint
    assert fp is not None and fp.hash == "sha-256" and fp.setup == "actpass"
    assert audio.rtcp_mux
    # candidates on 127.0.0.1 and ::1 for components 1 and 2: with rtcp-mux and a loopback
    # IPv4 policy, one is probed
    usable = [c for c in audio.transport.candidates if LOOPBACK_V4.allows(c.ip) and c.component == 1]
    assert [(c.ip, c.component) for c in usable] == [("127.0.0.1", 1)]


def test_dino_answer_to_a_recorded_offer_is_what_we_parse_from_it() -> None:
    accept = first("dino-0.4.2-accept.xml", "session-accept")
    audio = accept.audio
    assert audio is not None and audio.transport is not None and audio.transport.fingerprint is not None
    assert [p.name for p in audio.payloads] == ["opus"]
    assert audio.transport.fingerprint.setup == "active"  # so we are the DTLS server
    assert audio.rtcp_mux


def test_asterisk_sends_its_ice_credentials_only_in_a_transport_info() -> None:
    from hookflash.motif.channel import JingleCall
    found = [j for _, j in jingles("asterisk20-motif-initiate.xml")]
    initiate = next(j for j in found if j.action == "session-initiate")
    info = next(j for j in found if j.action == "transport-info")
    audio = initiate.audio
    assert audio is not None and audio.transport is not None
    assert audio.transport.ufrag == "" and audio.transport.candidates == []
    assert not audio.rtcp_mux  # so the incoming call uses two ICE components
    assert [(p.id, p.name) for p in audio.payloads] == [(0, "PCMU"), (101, "telephone-event")]
    call = JingleCall(None, MotifEndpoint("google", connection="x"), None, "asterisk@localhost/asterisk",  # type: ignore[arg-type]
                      outgoing=False, sid=initiate.sid)
    call.absorb(audio.transport)
    assert not call._remote_creds.is_set()  # the media set-up waits for them
    call.absorb(info.contents[0].transport)
    assert call._remote_creds.is_set() and len(call.remote_ufrag) == 32
    assert sorted(c.component for c in call.remote_candidates) == [1, 2]
    assert all(c.ip == "127.0.0.1" for c in call.remote_candidates)
    pt, name, dtmf = choose(audio.payloads, ["ulaw", "alaw"])  # type: ignore[misc]
    assert name == "ulaw" and dtmf is not None and dtmf.id == 101


def test_our_offer_is_what_asterisk_and_dino_accepted() -> None:
    """Payload numbering: static types keep their numbers (Asterisk answers 0 and 101),
    Opus is 111 as Dino numbers it."""
    ids = {p.name: p.id for p in offer_payloads(["opus", "ulaw", "alaw", "g722"])}
    assert ids == {"opus": 111, "PCMU": 0, "PCMA": 8, "G722": 9, "telephone-event": 101}
    assert len(offer_payloads(["opus", "ulaw", "alaw", "g722"], maxpayloads=2)) == 2


def _mutations(draw_seed: int, el: ET.Element) -> ET.Element:
    rnd = random.Random(draw_seed)
    el = copy.deepcopy(el)
    nodes = list(el.iter())
    junk = ["", "-1", "99999999999", "abc", "\u202e", "x" * 5000, "::", "127.0.0.1", "0", "😀", "sha-256"]
    for _ in range(rnd.randint(1, 6)):
        node = rnd.choice(nodes)
        op = rnd.randrange(4)
        if op == 0 and node.attrib:
            node.set(rnd.choice(list(node.attrib)), rnd.choice(junk))
        elif op == 1 and len(node):
            node.remove(rnd.choice(list(node)))
        elif op == 2 and len(node):
            for _ in range(rnd.randint(1, 80)):
                node.append(copy.deepcopy(rnd.choice(list(node))))
        else:
            node.text = rnd.choice(junk)
    return el


ALL = [el for p in sorted(DATA.glob("*.xml")) for el, _ in jingles(p.name)]


@settings(max_examples=400, deadline=None)
@given(st.integers(0, 2**32), st.integers(0, len(ALL) - 1))
def test_mangled_recordings_give_a_result_or_a_jingle_error(seed: int, which: int) -> None:
    el = _mutations(seed, ALL[which])
    try:
        j = parse_jingle(el)
    except JingleError as exc:
        assert exc.condition in ("bad-request", "feature-not-implemented")
        return
    assert len(j.contents) <= 4
    for c in j.contents:
        assert len(c.payloads) <= 64
        if c.transport is not None:
            assert len(c.transport.candidates) <= 64


def _sent_by_hookflash(name: str) -> list[Jingle]:
    """The Jingle elements hookflash sent in a hookflash-vs-* recording."""
    parser = ET.XMLParser(target=ET.TreeBuilder(insert_comments=True))
    root = ET.parse(DATA / name, parser).getroot()
    out, sent = [], False
    for node in root.iter():
        if node.tag is ET.Comment:
            sent = (node.text or "").strip().endswith(" sent")
        elif node.tag == f"{{{NS_JINGLE}}}jingle" and sent:
            out.append(parse_jingle(node))
    return out


def test_recorded_calls_to_asterisk_offered_no_fingerprint_and_to_dino_did() -> None:
    """What we offered the real peers: chan_motif hangs up on a <fingerprint/> (and lists
    no XEP-0320), Dino speaks DTLS-SRTP."""
    to_asterisk = next(j for j in _sent_by_hookflash("hookflash-vs-asterisk20-hookflash-initiate.xml")
                       if j.action == "session-initiate")
    t = to_asterisk.audio.transport  # type: ignore[union-attr]
    assert t is not None and t.fingerprint is None and t.ufrag and t.candidates
    to_dino = next(j for j in _sent_by_hookflash("hookflash-vs-dino-0.4.2-hookflash-initiate.xml")
                   if j.action == "session-initiate")
    t = to_dino.audio.transport  # type: ignore[union-attr]
    assert t is not None and t.fingerprint is not None and t.fingerprint.setup == "actpass"
