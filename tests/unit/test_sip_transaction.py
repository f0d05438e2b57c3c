"""RFC 3261 §17 transactions on a fake clock (time only moves when the test says so)."""

from __future__ import annotations

import random
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hookflash.sip.dialog import build_cancel, build_response
from hookflash.sip.message import SipRequest, SipResponse, parse_message
from hookflash.sip.transaction import (
    INITIAL,
    TRANSITIONS,
    Action,
    ClientTransaction,
    Deliver,
    Kind,
    Send,
    ServerTransaction,
    State,
    Terminated,
    Timeout,
    Timer,
    TimerConfig,
    TransactionError,
    TransactionLayer,
    TransportError,
)

SRC = ("192.0.2.10", 5060)
DEST = ("192.0.2.20", 5060)


def request(
    method: str = "INVITE",
    *,
    branch: str = "z9hG4bK776asdhds",
    transport: str = "UDP",
    sent_by: str = "client.example.com:5060",
    cseq: int = 1,
    to_tag: str | None = None,
    uri: str = "sip:bob@example.com",
    call_id: str = "a84b4c76e66710",
) -> SipRequest:
    to = "<sip:bob@example.com>" + (f";tag={to_tag}" if to_tag else "")
    text = (
        f"{method} {uri} SIP/2.0\r\n"
        f"Via: SIP/2.0/{transport} {sent_by};branch={branch}\r\n"
        "Max-Forwards: 70\r\n"
        f"To: {to}\r\n"
        "From: Alice <sip:alice@example.com>;tag=1928301774\r\n"
        f"Call-ID: {call_id}\r\n"
        f"CSeq: {cseq} {method}\r\n"
        "Contact: <sip:alice@client.example.com>\r\n"
        "Content-Length: 0\r\n\r\n"
    )
    msg = parse_message(text.encode())
    assert isinstance(msg, SipRequest)
    return msg


def reply(req: SipRequest, status: int, to_tag: str | None = "314159") -> SipResponse:
    return build_response(req, status, to_tag=to_tag)


def ack_for(req: SipRequest, resp: SipResponse, branch: str | None = None) -> SipRequest:
    return request(
        "ACK",
        branch=branch or req.top_via.branch or "",
        to_tag=resp.to_addr.tag,
        cseq=req.cseq[0],
        sent_by=f"{req.top_via.host}:{req.top_via.port}",
    )


def sends(actions: Sequence[Action]) -> list[Send]:
    return [a for a in actions if isinstance(a, Send)]


def of_type(actions: Sequence[Action], kind: type) -> list[Action]:
    return [a for a in actions if isinstance(a, kind)]


class Driver:
    """A MockClock-style driver: jump straight to each deadline, record what fired."""

    def __init__(self, target: ClientTransaction | ServerTransaction | TransactionLayer) -> None:
        self.target = target
        self.now = 0.0
        self.log: list[tuple[float, Action]] = []

    def run_until(self, until: float) -> list[tuple[float, Action]]:
        fired: list[tuple[float, Action]] = []
        while (deadline := self.target.next_deadline()) is not None and deadline <= until:
            self.now = max(self.now, deadline)
            fired += [(self.now, a) for a in self.target.on_timer(self.now)]
        self.now = max(self.now, until)
        self.log += fired
        return fired


def send_times(fired: Sequence[tuple[float, Action]]) -> list[float]:
    return [round(t, 6) for t, a in fired if isinstance(a, Send)]


# --------------------------------------------------------------------------- INVITE client


def ict(reliable: bool = False, timers: TimerConfig | None = None) -> tuple[ClientTransaction, list[Action]]:
    txn = ClientTransaction(request("INVITE"), DEST, reliable=reliable, timers=timers or TimerConfig())
    return txn, txn.start(0.0)


def test_ict_retransmits_with_doubling_then_timer_b() -> None:
    txn, first = ict()
    assert [type(a) for a in first] == [Send] and txn.state is State.CALLING
    fired = Driver(txn).run_until(100.0)
    # Timer A: T1, 2T1, 4T1 ... (§17.1.1.2); Timer B at 64*T1
    assert send_times(fired) == [0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    tail = [a for t, a in fired if t == 32.0]
    assert isinstance(tail[0], Timeout) and tail[0].timer is Timer.B
    assert isinstance(tail[1], Terminated) and txn.state is State.TERMINATED
    assert txn.next_deadline() is None


def test_ict_custom_t1() -> None:
    txn, _ = ict(timers=TimerConfig(t1=1.0))
    fired = Driver(txn).run_until(100.0)
    assert send_times(fired) == [1.0, 3.0, 7.0, 15.0, 31.0, 63.0]
    assert any(isinstance(a, Timeout) and t == 64.0 for t, a in fired)


def test_ict_provisional_stops_retransmission() -> None:
    txn, _ = ict()
    d = Driver(txn)
    d.run_until(0.7)
    acts = txn.receive_response(reply(txn.request, 180), 0.7)
    assert [type(a) for a in acts] == [Deliver] and txn.state is State.PROCEEDING
    assert txn.next_deadline() is None  # no A, no B in Proceeding
    assert d.run_until(1000.0) == []
    # further provisionals are passed up
    assert [type(a) for a in txn.receive_response(reply(txn.request, 183), 5.0)] == [Deliver]


def test_ict_non_2xx_generates_ack_and_timer_d_absorbs() -> None:
    txn, _ = ict()
    txn.receive_response(reply(txn.request, 100, to_tag=None), 0.1)
    busy = reply(txn.request, 486)
    acts = txn.receive_response(busy, 1.0)
    assert [type(a) for a in acts] == [Deliver, Send] and txn.state is State.COMPLETED
    ack = acts[1].message  # type: ignore[union-attr]
    assert isinstance(ack, SipRequest)
    # §17.1.1.3
    assert ack.method == "ACK"
    assert str(ack.request_uri) == str(txn.request.request_uri)
    assert ack.cseq == (1, "ACK")
    assert ack.call_id == txn.request.call_id
    assert ack.from_addr.tag == "1928301774"
    assert ack.to_addr.tag == "314159"
    assert len(ack.vias) == 1 and ack.top_via.branch == txn.request.top_via.branch
    # retransmitted final: ACK again, not passed up
    again = txn.receive_response(busy, 2.0)
    assert [type(a) for a in again] == [Send] and again[0].message is ack  # type: ignore[union-attr]
    # Timer D: 32 s
    assert txn.next_deadline() == pytest.approx(33.0)
    fired = Driver(txn).run_until(40.0)
    assert [type(a) for _, a in fired] == [Terminated]
    assert fired[0][0] == pytest.approx(33.0)


def test_ict_2xx_terminates_and_passes_up_without_ack() -> None:
    txn, _ = ict()
    acts = txn.receive_response(reply(txn.request, 200), 0.3)
    assert [type(a) for a in acts] == [Deliver, Terminated]
    assert txn.state is State.TERMINATED
    assert txn.receive_response(reply(txn.request, 200), 0.4) == []


def test_ict_reliable_no_retransmission_and_no_timer_d() -> None:
    txn, first = ict(reliable=True)
    assert len(sends(first)) == 1
    assert txn.next_deadline() == 32.0  # only Timer B
    acts = txn.receive_response(reply(txn.request, 603), 1.0)
    assert [type(a) for a in acts] == [Deliver, Send, Terminated]  # D = 0


def test_ict_reliable_times_out() -> None:
    txn, _ = ict(reliable=True)
    fired = Driver(txn).run_until(100.0)
    assert [type(a) for _, a in fired] == [Timeout, Terminated]


def test_reliable_guessed_from_via() -> None:
    txn = ClientTransaction(request(transport="TCP"), DEST)
    assert txn.reliable
    assert not ClientTransaction(request(transport="UDP"), DEST).reliable


def test_ict_transport_error() -> None:
    txn, _ = ict()
    acts = txn.transport_error(0.1)
    assert [type(a) for a in acts] == [TransportError, Terminated]
    assert txn.next_deadline() is None


def test_client_refuses_ack() -> None:
    with pytest.raises(TransactionError):
        ClientTransaction(request("ACK"), DEST)


# --------------------------------------------------------------------------- non-INVITE client


def nict(reliable: bool = False) -> ClientTransaction:
    txn = ClientTransaction(request("OPTIONS"), DEST, reliable=reliable)
    txn.start(0.0)
    return txn


def test_nict_timer_e_capped_at_t2_then_f() -> None:
    txn = nict()
    fired = Driver(txn).run_until(100.0)
    # E: 0.5, 1, 2, 4, 4, 4 ... (§17.1.2.2)
    assert send_times(fired) == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    timeouts = [(t, a) for t, a in fired if isinstance(a, Timeout)]
    assert timeouts[0][0] == 32.0 and timeouts[0][1].timer is Timer.F  # type: ignore[attr-defined]


def test_nict_proceeding_retransmits_every_t2() -> None:
    txn = nict()
    d = Driver(txn)
    d.run_until(0.6)
    assert [type(a) for a in txn.receive_response(reply(txn.request, 100, None), 0.6)] == [Deliver]
    assert txn.state is State.PROCEEDING
    fired = d.run_until(40.0)
    assert send_times(fired) == [1.5, 5.5, 9.5, 13.5, 17.5, 21.5, 25.5, 29.5]
    assert any(isinstance(a, Timeout) and t == 32.0 for t, a in fired)


def test_nict_final_then_timer_k_absorbs() -> None:
    txn = nict()
    ok = reply(txn.request, 200)
    acts = txn.receive_response(ok, 2.0)
    assert [type(a) for a in acts] == [Deliver] and txn.state is State.COMPLETED
    assert txn.receive_response(ok, 3.0) == []  # absorbed
    assert txn.next_deadline() == 7.0  # T4
    fired = Driver(txn).run_until(10.0)
    assert [(t, type(a)) for t, a in fired] == [(7.0, Terminated)]


def test_nict_reliable_terminates_at_once() -> None:
    txn = nict(reliable=True)
    assert txn.next_deadline() == 32.0
    acts = txn.receive_response(reply(txn.request, 404), 1.0)
    assert [type(a) for a in acts] == [Deliver, Terminated]


# --------------------------------------------------------------------------- INVITE server


def ist(reliable: bool = False) -> ServerTransaction:
    txn = ServerTransaction(request("INVITE"), SRC, reliable=reliable)
    assert txn.start(0.0) == []
    return txn


def test_ist_sends_100_trying_after_200ms() -> None:
    txn = ist()
    fired = Driver(txn).run_until(1.0)
    assert [(t, type(a)) for t, a in fired] == [(0.2, Send)]
    trying = fired[0][1].message  # type: ignore[union-attr]
    assert isinstance(trying, SipResponse) and trying.status == 100
    assert trying.to_addr.tag is None and trying.cseq == (1, "INVITE")
    assert txn.state is State.PROCEEDING


def test_ist_no_trying_when_tu_answers_quickly() -> None:
    txn = ist()
    ringing = reply(txn.request, 180)
    assert [a.message for a in sends(txn.send_response(ringing, 0.05))] == [ringing]
    assert Driver(txn).run_until(10.0) == []
    # retransmitted INVITE gets the last provisional
    assert [a.message for a in sends(txn.receive_request(txn.request, 1.0))] == [ringing]


def test_ist_retransmission_before_any_response_gets_trying() -> None:
    txn = ist()
    acts = txn.receive_request(txn.request, 0.1)
    assert len(acts) == 1 and acts[0].message.status == 100  # type: ignore[union-attr]
    assert txn.next_deadline() is None  # the delayed Trying is no longer needed


def test_ist_non_2xx_retransmitted_with_timer_g_until_ack() -> None:
    txn = ist()
    busy = reply(txn.request, 486)
    d = Driver(txn)
    assert sends(txn.send_response(busy, 0.1))[0].message is busy
    assert txn.state is State.COMPLETED
    fired = d.run_until(12.0)
    # G: T1 then doubling capped at T2 (§17.2.1)
    assert send_times(fired) == [0.6, 1.6, 3.6, 7.6, 11.6]
    assert all(a.message is busy for _, a in fired)  # type: ignore[union-attr]
    # a retransmitted INVITE is answered with the final response
    assert sends(txn.receive_request(txn.request, 12.0))[0].message is busy
    acts = txn.receive_request(ack_for(txn.request, busy), 12.5)
    assert acts == [] and txn.state is State.CONFIRMED
    assert txn.receive_request(ack_for(txn.request, busy), 13.0) == []  # absorbed
    assert txn.receive_request(txn.request, 13.0) == []  # absorbed too
    fired = d.run_until(100.0)
    assert [(t, type(a)) for t, a in fired] == [(17.5, Terminated)]  # Timer I = T4


def test_ist_timer_h_without_ack() -> None:
    txn = ist()
    txn.send_response(reply(txn.request, 500), 1.0)
    fired = Driver(txn).run_until(100.0)
    tail = [(t, a) for t, a in fired if not isinstance(a, Send)]
    assert [(t, type(a)) for t, a in tail] == [(33.0, Timeout), (33.0, Terminated)]
    assert tail[0][1].timer is Timer.H  # type: ignore[attr-defined]
    assert max(send_times(fired)) < 33.0


def test_ist_2xx_accepted_absorbs_retransmissions_then_timer_l() -> None:
    # RFC 6026 §7.1 (RFC 3261 would terminate at once and pass the retransmitted
    # INVITE up as a new request)
    txn = ist()
    ok = reply(txn.request, 200)
    assert [type(a) for a in txn.send_response(ok, 0.5)] == [Send]
    assert txn.state is State.ACCEPTED
    assert txn.receive_request(txn.request, 0.6) == []  # absorbed, no second call
    assert sends(txn.send_response(ok, 1.0))[0].message is ok  # TU's 2xx retransmission
    ack = txn.receive_request(ack_for(txn.request, ok), 1.1)  # ACK reusing the branch
    assert len(ack) == 1 and isinstance(ack[0], Deliver) and ack[0].stray
    fired = Driver(txn).run_until(100.0)
    assert [(t, type(a)) for t, a in fired] == [(32.5, Terminated)]


def test_ist_reliable() -> None:
    txn = ist(reliable=True)
    busy = reply(txn.request, 486)
    txn.send_response(busy, 0.1)
    assert txn.next_deadline() == pytest.approx(32.1)  # H only, no G
    acts = txn.receive_request(ack_for(txn.request, busy), 0.2)
    assert [type(a) for a in acts] == [Terminated]  # Timer I = 0


def test_ist_late_responses_discarded() -> None:
    txn = ist()
    txn.send_response(reply(txn.request, 486), 0.1)
    assert txn.send_response(reply(txn.request, 200), 0.2) == []
    with pytest.raises(TransactionError):
        txn.send_response(reply(txn.request, 99), 0.2)


# --------------------------------------------------------------------------- non-INVITE server


def test_nist_trying_proceeding_completed_timer_j() -> None:
    txn = ServerTransaction(request("REGISTER"), SRC, reliable=False)
    assert txn.start(0.0) == [] and txn.state is State.TRYING
    assert txn.receive_request(txn.request, 0.1) == []  # Trying: discard
    prov = reply(txn.request, 100, None)
    txn.send_response(prov, 0.2)
    assert txn.state is State.PROCEEDING
    assert sends(txn.receive_request(txn.request, 0.3))[0].message is prov
    ok = reply(txn.request, 200)
    assert sends(txn.send_response(ok, 0.4))[0].message is ok
    assert txn.state is State.COMPLETED
    assert sends(txn.receive_request(txn.request, 0.5))[0].message is ok
    assert txn.send_response(reply(txn.request, 500), 0.6) == []  # discarded (§17.2.2)
    fired = Driver(txn).run_until(100.0)
    assert [(t, type(a)) for t, a in fired] == [(pytest.approx(32.4), Terminated)]


def test_nist_reliable_terminates_on_final() -> None:
    txn = ServerTransaction(request("BYE", transport="TLS"), SRC)
    txn.start(0.0)
    assert [type(a) for a in txn.send_response(reply(txn.request, 200), 0.1)] == [Send, Terminated]


def test_server_transport_error() -> None:
    txn = ist()
    txn.send_response(reply(txn.request, 486), 0.1)
    assert [type(a) for a in txn.transport_error(0.2)] == [TransportError, Terminated]


# --------------------------------------------------------------------------- the table


def test_transition_table_shape() -> None:
    for kind, (state, _) in INITIAL.items():
        assert state is not State.TERMINATED
        assert (kind, state, Timer.B) in TRANSITIONS or kind is not Kind.INVITE_CLIENT
    # nothing leaves Terminated
    assert not any(state is State.TERMINATED for (_, state, _) in TRANSITIONS)
    # every timer that is started has a rule where it can fire
    fired = {trigger for (_, _, trigger) in TRANSITIONS if isinstance(trigger, Timer)}
    assert fired == set(Timer)


# --------------------------------------------------------------------------- matching


def layer_with_invite() -> tuple[TransactionLayer, SipRequest, ServerTransaction]:
    layer = TransactionLayer()
    inv = request("INVITE")
    acts = layer.receive(inv, SRC, 0.0)
    assert len(acts) == 1 and isinstance(acts[0], Deliver) and not acts[0].stray
    txn = acts[0].transaction
    assert isinstance(txn, ServerTransaction)
    return layer, inv, txn


def test_layer_routes_retransmission_and_ack_to_the_invite() -> None:
    layer, inv, txn = layer_with_invite()
    assert sends(layer.receive(inv, SRC, 0.05))[0].message.status == 100  # type: ignore[union-attr]
    busy = reply(inv, 486)
    layer.respond(inv, busy, 0.1)
    assert sends(layer.receive(inv, SRC, 0.2))[0].message is busy
    assert layer.receive(ack_for(inv, busy), SRC, 0.3) == []  # absorbed by the transaction
    assert txn.state is State.CONFIRMED and len(layer) == 1
    fired = Driver(layer).run_until(10.0)
    assert [type(a) for _, a in fired] == [Terminated] and len(layer) == 0


def test_ack_for_2xx_is_stray() -> None:
    layer, inv, _ = layer_with_invite()
    ok = reply(inv, 200)
    assert [type(a) for a in layer.respond(inv, ok, 0.1)] == [Send]
    ack = ack_for(inv, ok, branch="z9hG4bKnewbranch")  # §13.2.2.4: a new transaction
    acts = layer.receive(ack, SRC, 0.2)
    assert len(acts) == 1 and isinstance(acts[0], Deliver) and acts[0].stray
    assert acts[0].source == SRC
    assert layer.receive(inv, SRC, 0.3) == []  # a late INVITE retransmission: absorbed
    Driver(layer).run_until(40.0)
    assert len(layer) == 0
    # so is a retransmitted 2xx on the client side
    client = TransactionLayer()
    _, _ = client.send_request(request("INVITE"), DEST, 0.0)
    client.receive(ok, DEST, 0.1)
    again = client.receive(ok, DEST, 0.2)
    assert len(again) == 1 and again[0].stray  # type: ignore[union-attr]


def test_response_matching_by_branch_and_method() -> None:
    layer = TransactionLayer()
    inv = request("INVITE")
    txn, _ = layer.send_request(inv, DEST, 0.0)
    wrong_branch = reply(request("INVITE", branch="z9hG4bKother"), 180)
    acts = layer.receive(wrong_branch, DEST, 0.1)
    assert acts[0].stray and txn.state is State.CALLING  # type: ignore[union-attr]
    # a CANCEL shares the branch but is its own transaction (§9.1, §17.1.3)
    cancel = build_cancel(inv)
    assert cancel.top_via.branch == inv.top_via.branch and cancel.cseq == (1, "CANCEL")
    ctxn, _ = layer.send_request(cancel, DEST, 0.2)
    assert ctxn is not txn and len(layer) == 2
    acts = layer.receive(reply(cancel, 200), DEST, 0.3)
    assert acts[0].transaction is ctxn  # type: ignore[union-attr]
    assert txn.state is State.CALLING
    acts = layer.receive(reply(inv, 487), DEST, 0.4)
    assert acts[0].transaction is txn and txn.state is State.COMPLETED  # type: ignore[union-attr]


def test_duplicate_and_cookieless_client_requests_refused() -> None:
    layer = TransactionLayer()
    layer.send_request(request("INVITE"), DEST, 0.0)
    with pytest.raises(TransactionError):
        layer.send_request(request("INVITE"), DEST, 0.0)
    with pytest.raises(TransactionError):
        layer.send_request(request("OPTIONS", branch="abc"), DEST, 0.0)


def test_server_matching_needs_same_sent_by_and_method() -> None:
    layer, inv, txn = layer_with_invite()
    other_host = request("INVITE", sent_by="evil.example.com:5060")
    acts = layer.receive(other_host, SRC, 0.1)
    assert isinstance(acts[0], Deliver) and acts[0].transaction is not txn
    cancel = build_cancel(inv)
    acts = layer.receive(cancel, SRC, 0.2)
    assert isinstance(acts[0], Deliver) and acts[0].transaction is not txn
    assert layer.find_cancelled(cancel) is txn
    assert layer.server_count == 3


def test_default_port_in_sent_by() -> None:
    layer = TransactionLayer()
    layer.receive(request("INVITE", sent_by="client.example.com"), SRC, 0.0)
    acts = layer.receive(request("INVITE", sent_by="CLIENT.example.com:5060"), SRC, 0.1)
    assert len(acts) == 1 and isinstance(acts[0], Send)  # a retransmission: 100 Trying


def test_rfc2543_fallback_matching() -> None:
    layer = TransactionLayer()
    inv = request("INVITE", branch="1")  # no magic cookie
    first = layer.receive(inv, SRC, 0.0)
    txn = first[0].transaction  # type: ignore[union-attr]
    assert isinstance(txn, ServerTransaction)
    assert sends(layer.receive(request("INVITE", branch="1"), SRC, 0.1))  # retransmission
    busy = reply(inv, 486, to_tag="abc")
    layer.respond(inv, busy, 0.2)
    # ACK with a different To tag is not ours
    stray = layer.receive(request("ACK", branch="1", to_tag="zzz"), SRC, 0.3)
    assert stray[0].stray  # type: ignore[union-attr]
    assert layer.receive(request("ACK", branch="1", to_tag="abc"), SRC, 0.4) == []
    assert txn.state is State.CONFIRMED
    # a different CSeq is another transaction
    other = layer.receive(request("INVITE", branch="1", cseq=2), SRC, 0.5)
    assert other[0].transaction is not txn  # type: ignore[union-attr]


def test_respond_without_transaction() -> None:
    with pytest.raises(TransactionError):
        TransactionLayer().respond(request(), reply(request(), 200), 0.0)


def test_layer_transport_error_removes_transaction() -> None:
    layer = TransactionLayer()
    txn, _ = layer.send_request(request("INVITE"), DEST, 0.0)
    assert [type(a) for a in layer.transport_error(txn, 0.1)] == [TransportError, Terminated]
    assert len(layer) == 0 and layer.next_deadline() is None


# --------------------------------------------------------------------------- scale


def _earliest(txns: Sequence[ClientTransaction | ServerTransaction]) -> float | None:
    deadlines = [d for t in txns if not t.terminated and (d := t.next_deadline()) is not None]
    return min(deadlines, default=None)


def test_thousands_of_transactions_keep_deadlines_right() -> None:
    rng = random.Random(3261)
    layer = TransactionLayer()
    now = 0.0
    txns: list[ClientTransaction | ServerTransaction] = []
    for i in range(4000):
        now += rng.uniform(0.0, 0.004)  # ~ 500 new transactions per second
        layer.on_timer(now)  # due timers first, as a driver would
        method = rng.choice(["INVITE", "OPTIONS", "REGISTER"])
        req = request(method, branch=f"z9hG4bK{i}", transport=rng.choice(["UDP", "UDP", "TCP"]))
        if i % 2:
            txn, _ = layer.send_request(req, DEST, now)
            txns.append(txn)
            if rng.random() < 0.5:
                layer.receive(reply(req, rng.choice([100, 180, 200, 486])), DEST, now + 0.001)
        else:
            acts = layer.receive(req, SRC, now)
            stxn = acts[0].transaction  # type: ignore[union-attr]
            assert isinstance(stxn, ServerTransaction)
            txns.append(stxn)
            if rng.random() < 0.7:
                layer.respond(req, reply(req, rng.choice([180, 200, 404])), now + 0.001)
        if i % 199 == 0:
            assert layer.next_deadline() == _earliest(txns)
            # stale heap entries (stopped timers) are dropped in bulk: the heap stays
            # within a small multiple of the timers running
            running = sum(len(t._deadlines) for t in txns)
            assert len(layer._heap) <= 4 * running + 64
    assert len(layer) > 1000
    # drive everything to the end: the layer's deadline is always the true earliest,
    # and after on_timer(now) nothing is left overdue
    steps = 0
    while (deadline := layer.next_deadline()) is not None:
        if steps % 211 == 0:
            assert deadline == _earliest(txns)
        assert deadline >= now
        now = deadline
        layer.on_timer(now)
        steps += 1
        if steps % 211 == 0:
            earliest = _earliest(txns)
            assert earliest is None or earliest > now
    assert steps > 1000
    # left: INVITE clients in Proceeding and servers waiting for their TU (no timers)
    live = [t for t in txns if not t.terminated]
    assert len(layer) == len(live)
    assert all(t.next_deadline() is None for t in live)
    assert layer._heap == []  # nothing due: every stale entry is gone


# --------------------------------------------------------------------------- fuzz


STIMULI = ["1xx", "2xx", "4xx", "retransmit", "ack", "tick", "transport_error"]


@settings(max_examples=300, deadline=None)
@given(
    server=st.booleans(),
    method=st.sampled_from(["INVITE", "BYE"]),
    reliable=st.booleans(),
    steps=st.lists(st.tuples(st.sampled_from(STIMULI), st.floats(0.0, 10.0)), max_size=25),
)
def test_random_event_sequences_keep_invariants(
    server: bool, method: str, reliable: bool, steps: list[tuple[str, float]]
) -> None:
    req = request(method)
    txn: ClientTransaction | ServerTransaction
    if server:
        txn = ServerTransaction(req, SRC, reliable=reliable)
    else:
        txn = ClientTransaction(req, DEST, reliable=reliable)
    now = 0.0
    actions = txn.start(now)
    terminated_seen = 0
    for stimulus, dt in steps:
        now += dt
        if stimulus == "tick":
            acts = txn.on_timer(now)
        elif stimulus == "transport_error":
            acts = txn.transport_error(now)
        elif stimulus == "retransmit" and isinstance(txn, ServerTransaction):
            acts = txn.receive_request(req, now)
        elif stimulus == "ack" and isinstance(txn, ServerTransaction):
            acts = txn.receive_request(ack_for(req, reply(req, 486)), now)
        elif stimulus in ("1xx", "2xx", "4xx"):
            status = {"1xx": 180, "2xx": 200, "4xx": 486}[stimulus]
            if isinstance(txn, ServerTransaction):
                acts = txn.send_response(reply(req, status), now)
            else:
                acts = txn.receive_response(reply(req, status), now)
        else:
            acts = []
        if txn.state is State.TERMINATED:
            assert txn.next_deadline() is None
        else:
            deadline = txn.next_deadline()
            assert deadline is None or deadline > now or stimulus != "tick"
        terminated_seen += sum(isinstance(a, Terminated) for a in acts)
        actions += acts
    assert terminated_seen == (1 if txn.state is State.TERMINATED else 0)
    assert sum(isinstance(a, Terminated) for a in actions) <= 1
    # nothing is sent after termination
    after = False
    for a in actions:
        assert not (after and isinstance(a, Send))
        after = after or isinstance(a, Terminated)


# --------------------------------------------------------------------------- dialogs (§12)
# (dialog.py's builders feed the transactions above; kept here until a test_sip_dialog.py)


def _invite_with_routes() -> SipRequest:
    text = (
        "INVITE sip:bob@example.com SIP/2.0\r\n"
        "Via: SIP/2.0/UDP p2.example.com;branch=z9hG4bKp2, SIP/2.0/UDP pc.example.com;branch=z9hG4bKuac\r\n"
        "Max-Forwards: 69\r\n"
        "Record-Route: <sip:p2.example.com;lr>, <sip:p1.example.com;lr>\r\n"
        "Route: <sip:p1.example.com;lr>\r\n"
        'From: "Alice" <sip:alice@example.com>;tag=a1\r\n'
        "To: <sip:bob@example.com>\r\n"
        "Call-ID: dlg-1\r\n"
        "CSeq: 10 INVITE\r\n"
        "Timestamp: 54\r\n"
        "Authorization: Digest username=\"alice\"\r\n"
        "Contact: <sip:alice@pc.example.com>\r\n"
        "Content-Length: 0\r\n\r\n"
    )
    msg = parse_message(text.encode())
    assert isinstance(msg, SipRequest)
    return msg


def _ok_with_contact(inv: SipRequest, status: int = 200) -> SipResponse:
    return build_response(inv, status, to_tag="b2", headers=[("Contact", "<sip:bob@phone.example.com>")])


def test_build_response_copies_what_8_2_6_says() -> None:
    from hookflash.sip.message import Status

    inv = _invite_with_routes()
    ok = _ok_with_contact(inv)
    assert ok.reason == Status(200).phrase
    assert [v.host for v in ok.vias] == ["p2.example.com", "pc.example.com"]
    assert ok.to_addr.tag == "b2" and ok.from_addr.tag == "a1" and ok.cseq == (10, "INVITE")
    assert ok.headers.get_all("Record-Route") == inv.headers.get_all("Record-Route")
    trying = build_response(inv, 100, to_tag="b2")
    assert trying.to_addr.tag is None and trying.headers.get("Timestamp") == "54"
    busy = build_response(inv, 486, to_tag="b2")
    assert "Record-Route" not in busy.headers and busy.reason == "Busy Here"
    # an existing To tag is kept
    again = build_response(request("BYE", to_tag="x"), 200, to_tag="y")
    assert again.to_addr.tag == "x"
    assert parse_message(bytes(ok)).cseq == (10, "INVITE")  # type: ignore[union-attr]


def test_build_cancel_copies_route_and_top_via() -> None:
    inv = _invite_with_routes()
    cancel = build_cancel(inv)
    assert cancel.method == "CANCEL" and cancel.uri == inv.uri
    assert [v.branch for v in cancel.vias] == ["z9hG4bKp2"]
    assert cancel.headers.get_all("Route") == ["<sip:p1.example.com;lr>"]
    assert cancel.cseq == (10, "CANCEL") and cancel.to_addr.tag is None


def test_uac_dialog_and_in_dialog_requests() -> None:
    from hookflash.sip.dialog import Dialog, DialogState, dialog_id_for_response

    inv = _invite_with_routes()
    ok = _ok_with_contact(inv)
    d = Dialog.from_uac(inv, ok, "<sip:alice@pc.example.com>")
    assert d.id == ("dlg-1", "a1", "b2") == dialog_id_for_response(ok)
    assert d.state is DialogState.CONFIRMED and d.local_seq == 10 and d.remote_seq is None
    assert d.remote_target == "sip:bob@phone.example.com"
    assert d.route_set == ["<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"]  # reversed
    assert not d.secure
    bye = d.create_request("BYE", via="SIP/2.0/UDP pc.example.com;branch=z9hG4bKbye")
    assert bye.uri == "sip:bob@phone.example.com"  # loose routing: target stays
    assert bye.headers.get_all("Route") == d.route_set
    assert bye.cseq == (11, "BYE") and bye.from_addr.tag == "a1" and bye.to_addr.tag == "b2"
    assert bye.from_addr.display == "Alice" and bye.call_id == "dlg-1"
    assert "Contact" not in bye.headers
    reinvite = d.create_request("INVITE")
    assert reinvite.cseq == (12, "INVITE") and reinvite.headers.get("Contact") == "<sip:alice@pc.example.com>"
    ack = d.create_ack(ok, via="SIP/2.0/UDP pc.example.com;branch=z9hG4bKack", invite=inv)
    assert ack.cseq == (10, "ACK") and ack.uri == d.remote_target  # §13.2.2.4
    assert ack.headers.get("Authorization") == 'Digest username="alice"'
    assert d.local_seq == 12  # the ACK does not count
    with pytest.raises(ValueError):
        d.create_request("ACK")


def test_strict_routing_next_hop() -> None:
    from hookflash.sip.dialog import Dialog

    inv = _invite_with_routes()
    d = Dialog.from_uac(inv, _ok_with_contact(inv))
    d.route_set = ["<sip:strict.example.com>", "<sip:p2.example.com;lr>"]
    bye = d.create_request("BYE")
    # §12.2.1.1: first route becomes the Request-URI, the target the last Route
    assert bye.uri == "sip:strict.example.com"
    assert bye.headers.get_all("Route") == ["<sip:p2.example.com;lr>", "<sip:bob@phone.example.com>"]


def test_early_dialog_confirmed_by_2xx() -> None:
    from hookflash.sip.dialog import Dialog, DialogState

    inv = _invite_with_routes()
    ringing = build_response(inv, 180, to_tag="b2")
    d = Dialog.from_uac(inv, ringing)
    assert d.state is DialogState.EARLY and d.remote_target == "sip:bob@example.com"
    d.update_from_response(_ok_with_contact(inv))
    assert d.state is DialogState.CONFIRMED and d.remote_target == "sip:bob@phone.example.com"


def test_uas_dialog_checks_remote_cseq() -> None:
    from hookflash.sip.dialog import Dialog, dialog_id_for_request

    inv = _invite_with_routes()
    d = Dialog.from_uas(inv, "b2", "<sip:pbx.example.com>")
    assert d.route_set == ["<sip:p2.example.com;lr>", "<sip:p1.example.com;lr>"]  # as received
    assert d.remote_target == "sip:alice@pc.example.com" and d.remote_seq == 10
    assert d.local_seq is None
    bye = request("BYE", cseq=11, to_tag="b2", call_id="dlg-1")
    assert dialog_id_for_request(bye)[1] == "b2"
    assert d.receive_request(bye) and d.remote_seq == 11
    assert not d.receive_request(request("INFO", cseq=9, to_tag="b2"))  # out of order: 500
    assert d.receive_request(request("ACK", cseq=10, to_tag="b2"))  # ACK is exempt
    refresh = request("INVITE", cseq=12, to_tag="b2")  # Contact alice@client.example.com
    assert d.receive_request(refresh) and d.remote_target == "sip:alice@client.example.com"
    # our first request picks a fresh CSeq
    notify = d.create_request("NOTIFY")
    assert notify.cseq == (d.local_seq, "NOTIFY")
    assert notify.to_addr.tag == "a1" and notify.from_addr.tag == "b2"
    assert notify.uri == "sip:alice@client.example.com"


def test_shrinking_layer_resends_the_same_bytes_and_drops_the_parsed_messages() -> None:
    layer = TransactionLayer(shrink=True)
    reg = request("REGISTER")
    [deliver, *_] = layer.receive(reg, SRC, 0.0)
    txn = deliver.transaction
    ok = build_response(reg, 200)
    layer.respond(reg, ok, 0.1)
    assert txn.request is None and txn.last_response == bytes(ok)  # Completed: shrunk
    resent = [a for a in layer.receive(request("REGISTER"), SRC, 1.0) if isinstance(a, Send)]
    assert [a.message for a in resent] == [bytes(ok)] and resent[0].dest == SRC
    assert layer.on_timer(0.1 + 32.0) and layer.server_count == 0  # Timer J still ends it
    # an RFC 2543 request (no magic cookie) keeps its messages: its matching reads them
    old = request("REGISTER", branch="oldstyle1")
    layer.receive(old, SRC, 40.0)
    layer.respond(old, build_response(old, 200), 40.1)
    assert layer.server_transaction(old).request is not None
