"""SIP transactions, RFC 3261 §17, sans-IO.

Four state machines share one transition table (:data:`TRANSITIONS`): the INVITE
client (§17.1.1), non-INVITE client (§17.1.2), INVITE server (§17.2.1) and
non-INVITE server (§17.2.2) transactions. A transaction never touches a socket or
a clock: every method takes ``now`` and returns a list of actions for the driver
(:class:`Send`) or the transaction user (:class:`Deliver`, :class:`Timeout`,
:class:`TransportError`, :class:`Terminated`).

:class:`TransactionLayer` owns the transaction tables, matches incoming messages
(§17.1.3, §17.2.3 incl. the RFC 2543 fallback) and keeps all deadlines in one heap.

Driver loop::

    actions = layer.receive(msg, source, now)      # or send_request / respond
    sleep until layer.next_deadline(); actions = layer.on_timer(now)

On the server side a 2xx moves the INVITE transaction to RFC 6026's Accepted state
(Timer L) so that INVITE retransmissions crossing the 2xx are absorbed instead of
reaching the TU as new calls; the TU retransmits its 2xx through :meth:`respond`.
On the client side a 2xx terminates the transaction as in RFC 3261: retransmitted
2xx reach the TU as stray responses, to be ACKed again (§13.2.2.4).

Left out: Timer C (proxies only), RFC 6026 on the client side (Timer M), RFC 3263
fail-over to the next address on transport error.
"""

from __future__ import annotations

import heapq
import itertools
import logging
from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from enum import Enum, auto
from typing import Final, NamedTuple, TypeAlias

from hookflash.sip.dialog import build_ack, build_response
from hookflash.sip.message import (
    MAGIC_COOKIE,
    SipError,
    SipMessage,
    SipRequest,
    SipResponse,
    Via,
)

__all__ = [
    "MAGIC_COOKIE", "TRANSITIONS", "Action", "ClientTransaction", "Deliver", "Kind", "Send",
    "ServerTransaction", "State", "Terminated", "Timeout", "Timer", "TimerConfig",
    "Transaction", "TransactionError", "TransactionLayer", "TransportError", "build_ack",
    "client_key", "server_key",
]

log = logging.getLogger(__name__)

Addr: TypeAlias = tuple[str, int]


class TransactionError(SipError):
    """The transaction user misused the layer (duplicate branch, no Via, ...)."""


# --------------------------------------------------------------------------- config


@dataclass(frozen=True, slots=True)
class TimerConfig:
    """Timer values of RFC 3261 Table 4 (seconds)."""

    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0
    trying_delay: float = 0.2  # §17.2.1: 100 Trying if the TU is silent for 200 ms
    timer_d: float = 32.0  # §17.1.1.2: "at least 32 seconds" on unreliable transports


class _Enum(Enum):
    """An enum hashed by identity (in C): members are dict keys on every message, and
    ``Enum.__hash__`` (hash of the name) is Python code. Members are singletons and
    compare by identity, so this hash agrees with ``==``."""

    __hash__ = object.__hash__


class Timer(_Enum):
    A = auto()  # INVITE client retransmit
    B = auto()  # INVITE client timeout
    D = auto()  # INVITE client: absorb final retransmissions
    E = auto()  # non-INVITE client retransmit
    F = auto()  # non-INVITE client timeout
    K = auto()  # non-INVITE client: absorb response retransmissions
    G = auto()  # INVITE server: retransmit final response
    H = auto()  # INVITE server: wait for ACK
    I = auto()
    J = auto()  # non-INVITE server: absorb request retransmissions
    L = auto()  # INVITE server, RFC 6026: leave Accepted
    TRYING = auto()  # INVITE server: send 100 Trying


def timer_duration(timer: Timer, cfg: TimerConfig, reliable: bool) -> float | None:
    """Initial value of ``timer`` (Table 4); None: not used on reliable transports."""
    if timer in (Timer.A, Timer.E, Timer.G):
        return None if reliable else cfg.t1
    if timer in (Timer.B, Timer.F, Timer.H, Timer.L):
        return 64 * cfg.t1
    if timer is Timer.D:
        return 0.0 if reliable else max(cfg.timer_d, 64 * cfg.t1)
    if timer in (Timer.I, Timer.K):
        return 0.0 if reliable else cfg.t4
    if timer is Timer.J:
        return 0.0 if reliable else 64 * cfg.t1
    return cfg.trying_delay


# --------------------------------------------------------------------------- actions
# Plain (not frozen) slots dataclasses: several are made per message, and a frozen
# dataclass pays an object.__setattr__ per field. Treat them as read-only.


@dataclass(slots=True)
class Send:
    """Hand ``message`` to the transport for ``dest``."""

    message: SipMessage
    dest: Addr
    transaction: Transaction | None = None


@dataclass(slots=True)
class Deliver:
    """Pass ``message`` to the TU; ``transaction`` is None for stray messages."""

    message: SipMessage
    transaction: Transaction | None
    source: Addr | None = None

    @property
    def stray(self) -> bool:
        return self.transaction is None


@dataclass(slots=True)
class Timeout:
    """Timer B, F or H fired: the transaction failed (§17.1.1.2, §17.1.2.2, §17.2.1)."""

    transaction: Transaction
    timer: Timer


@dataclass(slots=True)
class TransportError:
    """The transport failed to send (§17.1.4, §17.2.4)."""

    transaction: Transaction


@dataclass(slots=True)
class Terminated:
    transaction: Transaction


Action: TypeAlias = Send | Deliver | Timeout | TransportError | Terminated


# --------------------------------------------------------------------------- the table


class Kind(_Enum):
    INVITE_CLIENT = auto()
    NON_INVITE_CLIENT = auto()
    INVITE_SERVER = auto()
    NON_INVITE_SERVER = auto()


class State(_Enum):
    CALLING = auto()
    TRYING = auto()
    PROCEEDING = auto()
    COMPLETED = auto()
    CONFIRMED = auto()
    ACCEPTED = auto()  # RFC 6026 §7.1, INVITE server only
    TERMINATED = auto()


class Event(_Enum):
    R1XX = auto()  # response received (client)
    R2XX = auto()
    R3XX_6XX = auto()
    TU_1XX = auto()  # response passed down by the TU (server)
    TU_2XX = auto()
    TU_3XX_6XX = auto()
    REQUEST = auto()  # request retransmission received (server)
    ACK = auto()
    TRANSPORT_ERROR = auto()


class Do(_Enum):
    SEND_REQUEST = auto()  # (re)send the request that created the transaction
    DELIVER = auto()  # pass the received response up
    DELIVER_STRAY = auto()  # pass a request up outside the transaction (ACK for 2xx)
    SEND_ACK = auto()  # §17.1.1.3 ACK for a non-2xx final
    SEND_RESPONSE = auto()  # send the TU's response and remember it
    RESEND_RESPONSE = auto()  # retransmit the last response, if any
    RESEND_PROVISIONAL = auto()  # last provisional, or a 100 Trying if none yet
    SEND_TRYING = auto()
    REPORT_TIMEOUT = auto()
    REPORT_TRANSPORT_ERROR = auto()


class Backoff(_Enum):
    DOUBLE = auto()  # Timer A: 2x, uncapped
    DOUBLE_CAP_T2 = auto()  # Timers E (Trying), G: min(2x, T2)
    T2 = auto()  # Timer E in Proceeding: T2


@dataclass(frozen=True, slots=True)
class Start:
    timer: Timer


@dataclass(frozen=True, slots=True)
class Stop:
    timer: Timer


@dataclass(frozen=True, slots=True)
class Again:
    timer: Timer
    backoff: Backoff


Effect: TypeAlias = Do | Start | Stop | Again
Trigger: TypeAlias = Event | Timer
Rule: TypeAlias = tuple[Kind, tuple[State, ...], Trigger, State | None, tuple[Effect, ...]]

ICT, NICT, IST, NIST = Kind.INVITE_CLIENT, Kind.NON_INVITE_CLIENT, Kind.INVITE_SERVER, Kind.NON_INVITE_SERVER
CALLING, TRYING, PROCEEDING = State.CALLING, State.TRYING, State.PROCEEDING
COMPLETED, CONFIRMED, TERMINATED = State.COMPLETED, State.CONFIRMED, State.TERMINATED
ACCEPTED = State.ACCEPTED
R1XX, R2XX, R3XX_6XX = Event.R1XX, Event.R2XX, Event.R3XX_6XX
TU_1XX, TU_2XX, TU_3XX_6XX = Event.TU_1XX, Event.TU_2XX, Event.TU_3XX_6XX

#: Entry state and effects when a transaction is created.
INITIAL: Final[dict[Kind, tuple[State, tuple[Effect, ...]]]] = {
    # §17.1.1.2: send, start A (unreliable only) and B
    ICT: (CALLING, (Do.SEND_REQUEST, Start(Timer.A), Start(Timer.B))),
    # §17.1.2.2: send, start E (unreliable only) and F
    NICT: (TRYING, (Do.SEND_REQUEST, Start(Timer.E), Start(Timer.F))),
    # §17.2.1: Proceeding; 100 Trying unless the TU answers within 200 ms
    IST: (PROCEEDING, (Start(Timer.TRYING),)),
    # §17.2.2: Trying
    NIST: (TRYING, ()),
}

_RULES: Final[list[Rule]] = [
    # ---- §17.1.1.2 INVITE client transaction (Figure 5)
    (ICT, (CALLING,), Timer.A, CALLING, (Do.SEND_REQUEST, Again(Timer.A, Backoff.DOUBLE))),
    (ICT, (CALLING,), Timer.B, TERMINATED, (Do.REPORT_TIMEOUT,)),
    (ICT, (CALLING,), Event.R1XX, PROCEEDING, (Stop(Timer.A), Stop(Timer.B), Do.DELIVER)),
    (ICT, (PROCEEDING,), Event.R1XX, PROCEEDING, (Do.DELIVER,)),
    # 2xx: pass up and terminate; the TU sends the ACK (§13.2.2.4)
    (ICT, (CALLING, PROCEEDING), Event.R2XX, TERMINATED, (Do.DELIVER,)),
    # 300-699: pass up, ACK (§17.1.1.3), Timer D (0 s on reliable transports)
    (ICT, (CALLING, PROCEEDING), Event.R3XX_6XX, COMPLETED,
     (Stop(Timer.A), Stop(Timer.B), Do.DELIVER, Do.SEND_ACK, Start(Timer.D))),
    # retransmitted finals are answered with the ACK again and not passed up
    (ICT, (COMPLETED,), Event.R3XX_6XX, COMPLETED, (Do.SEND_ACK,)),
    (ICT, (COMPLETED,), Timer.D, TERMINATED, ()),
    # ---- §17.1.2.2 non-INVITE client transaction (Figure 6)
    (NICT, (TRYING,), Timer.E, TRYING, (Do.SEND_REQUEST, Again(Timer.E, Backoff.DOUBLE_CAP_T2))),
    (NICT, (PROCEEDING,), Timer.E, PROCEEDING, (Do.SEND_REQUEST, Again(Timer.E, Backoff.T2))),
    (NICT, (TRYING, PROCEEDING), Timer.F, TERMINATED, (Do.REPORT_TIMEOUT,)),
    (NICT, (TRYING, PROCEEDING), Event.R1XX, PROCEEDING, (Do.DELIVER,)),
    (NICT, (TRYING, PROCEEDING), Event.R2XX, COMPLETED,
     (Stop(Timer.E), Stop(Timer.F), Do.DELIVER, Start(Timer.K))),
    (NICT, (TRYING, PROCEEDING), Event.R3XX_6XX, COMPLETED,
     (Stop(Timer.E), Stop(Timer.F), Do.DELIVER, Start(Timer.K))),
    # Completed buffers (absorbs) response retransmissions until K
    (NICT, (COMPLETED,), Timer.K, TERMINATED, ()),
    # ---- §17.2.1 INVITE server transaction (Figure 7)
    (IST, (PROCEEDING,), Timer.TRYING, PROCEEDING, (Do.SEND_TRYING,)),
    (IST, (PROCEEDING,), Event.REQUEST, PROCEEDING, (Stop(Timer.TRYING), Do.RESEND_PROVISIONAL)),
    (IST, (PROCEEDING,), Event.TU_1XX, PROCEEDING, (Stop(Timer.TRYING), Do.SEND_RESPONSE)),
    # 2xx: RFC 6026 §7.1 Accepted (RFC 3261: Terminated); the TU retransmits the 2xx
    # until the ACK (§13.3.1.4), INVITE retransmissions are absorbed meanwhile
    (IST, (PROCEEDING,), Event.TU_2XX, ACCEPTED, (Stop(Timer.TRYING), Do.SEND_RESPONSE, Start(Timer.L))),
    (IST, (ACCEPTED,), Event.TU_2XX, ACCEPTED, (Do.SEND_RESPONSE,)),
    (IST, (ACCEPTED,), Event.ACK, ACCEPTED, (Do.DELIVER_STRAY,)),  # 2xx ACK reusing the branch
    (IST, (ACCEPTED,), Timer.L, TERMINATED, ()),
    (IST, (PROCEEDING,), Event.TU_3XX_6XX, COMPLETED,
     (Stop(Timer.TRYING), Do.SEND_RESPONSE, Start(Timer.G), Start(Timer.H))),
    (IST, (COMPLETED,), Event.REQUEST, COMPLETED, (Do.RESEND_RESPONSE,)),
    (IST, (COMPLETED,), Timer.G, COMPLETED, (Do.RESEND_RESPONSE, Again(Timer.G, Backoff.DOUBLE_CAP_T2))),
    (IST, (COMPLETED,), Timer.H, TERMINATED, (Do.REPORT_TIMEOUT,)),
    (IST, (COMPLETED,), Event.ACK, CONFIRMED, (Stop(Timer.G), Stop(Timer.H), Start(Timer.I))),
    # Confirmed absorbs further ACKs (no rule needed: unlisted events are ignored)
    (IST, (CONFIRMED,), Timer.I, TERMINATED, ()),
    # ---- §17.2.2 non-INVITE server transaction (Figure 8)
    # Trying: retransmissions are discarded (no rule)
    (NIST, (TRYING, PROCEEDING), Event.TU_1XX, PROCEEDING, (Do.SEND_RESPONSE,)),
    (NIST, (TRYING, PROCEEDING), Event.TU_2XX, COMPLETED, (Do.SEND_RESPONSE, Start(Timer.J))),
    (NIST, (TRYING, PROCEEDING), Event.TU_3XX_6XX, COMPLETED, (Do.SEND_RESPONSE, Start(Timer.J))),
    (NIST, (PROCEEDING, COMPLETED), Event.REQUEST, None, (Do.RESEND_RESPONSE,)),
    # Completed: further TU finals are discarded (no rule)
    (NIST, (COMPLETED,), Timer.J, TERMINATED, ()),
]

# §17.1.4 / §17.2.4: a transport failure terminates the transaction and informs the TU
for _kind in Kind:
    _live = tuple(s for s in State if s is not TERMINATED)
    _RULES.append((_kind, _live, Event.TRANSPORT_ERROR, TERMINATED, (Do.REPORT_TRANSPORT_ERROR,)))

#: (kind, state, trigger) -> (new state, effects). A new state of None keeps the state.
#: Anything not listed is ignored (absorbed), as the RFC figures imply.
TRANSITIONS: Final[dict[tuple[Kind, State, Trigger], tuple[State | None, tuple[Effect, ...]]]] = {
    (kind, state, trigger): (new, effects)
    for kind, states, trigger, new, effects in _RULES
    for state in states
}


class Plan(NamedTuple):
    """One rule of :data:`TRANSITIONS` as the engine runs it: the timers to stop, the
    actions to take in table order, the timer to back off and re-arm, the timers to
    start as ``(timer, retransmits)`` pairs. Only the actions produce output, so doing
    the timer effects apart from them leaves the result as the table says."""

    state: State | None
    stops: tuple[Timer, ...]
    dos: tuple[Do, ...]
    again: Again | None
    starts: tuple[tuple[Timer, bool], ...]


_RETRANSMIT_TIMERS: Final = frozenset({Timer.A, Timer.E, Timer.G})


def _plan(new_state: State | None, effects: Iterable[Effect]) -> Plan:
    effects = tuple(effects)
    agains = [e for e in effects if isinstance(e, Again)]
    assert len(agains) <= 1
    return Plan(
        new_state,
        tuple(e.timer for e in effects if isinstance(e, Stop)),
        tuple(e for e in effects if isinstance(e, Do)),
        agains[0] if agains else None,
        tuple((e.timer, e.timer in _RETRANSMIT_TIMERS) for e in effects if isinstance(e, Start)),
    )


#: kind -> state -> trigger -> plan: :data:`TRANSITIONS` compiled, one dict per state.
PLANS: Final[dict[Kind, dict[State, dict[Trigger, Plan]]]] = {
    kind: {state: {} for state in State} for kind in Kind
}
for (_k, _s, _trigger), (_new, _effects) in TRANSITIONS.items():
    PLANS[_k][_s][_trigger] = _plan(_new, _effects)
#: kind -> (entry state, what to do when the transaction starts)
_INITIAL_PLANS: Final[dict[Kind, Plan]] = {
    kind: _plan(state, effects) for kind, (state, effects) in INITIAL.items()
}


_DURATIONS: dict[tuple[int, bool], tuple[TimerConfig, dict[Timer, float | None]]] = {}


def _durations(cfg: TimerConfig, reliable: bool) -> dict[Timer, float | None]:
    """Every :func:`timer_duration` for ``cfg``, computed once per configuration (looked
    up by identity: hashing the dataclass would cost more than the table saves)."""
    entry = _DURATIONS.get((id(cfg), reliable))
    if entry is None or entry[0] is not cfg:
        if len(_DURATIONS) > 64:
            _DURATIONS.clear()
        entry = _DURATIONS[id(cfg), reliable] = (
            cfg, {timer: timer_duration(timer, cfg, reliable) for timer in Timer})
    return entry[1]


# One sequence for every heap entry: ties on the deadline keep the order of arming,
# and a transaction is never compared.
_SEQ = itertools.count()

HeapEntry: TypeAlias = tuple[float, int, "Transaction", Timer]


# --------------------------------------------------------------------------- transactions


class Transaction:
    """One transaction: a ``kind``, a ``state`` and up to three running timers.

    Every method returns the actions it caused; timers that are due at ``now``
    (including the zero-length ones of reliable transports) fire before it returns.
    """

    #: a client transaction (class constant; avoids an isinstance per message)
    is_client = False

    def __init__(
        self,
        kind: Kind,
        request: SipRequest,
        peer: Addr,
        key: Hashable,
        *,
        reliable: bool,
        timers: TimerConfig,
    ) -> None:
        self.kind = kind
        self.request = request
        self.peer = peer
        self.key = key
        self.reliable = reliable
        self.config = timers
        self.state = INITIAL[kind][0]
        self.last_response: SipResponse | None = None
        self._last_provisional: SipResponse | None = None
        self._ack: SipRequest | None = None
        self._deadlines: dict[Timer, float] = {}
        self._interval = timers.t1
        self._started = False
        self._plans = PLANS[kind]
        self._durations = _durations(timers, reliable)
        #: the layer's heap: every timer armed is pushed there too (None: standalone)
        self._heap: list[HeapEntry] | None = None
        #: keep a final response only as the bytes sent (see :meth:`shrink`)
        self._shrink = False

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.kind.name} {self.state.name} {self.key!r}>"

    @property
    def is_invite(self) -> bool:
        return self.kind in (Kind.INVITE_CLIENT, Kind.INVITE_SERVER)

    @property
    def terminated(self) -> bool:
        return self.state is State.TERMINATED

    def next_deadline(self) -> float | None:
        return min(self._deadlines.values(), default=None)

    def start(self, now: float) -> list[Action]:
        if self._started:
            raise TransactionError(500, "transaction already started")
        self._started = True
        actions = self._run(_INITIAL_PLANS[self.kind], None, now, None, None)
        deadlines = self._deadlines
        if deadlines and min(deadlines.values()) <= now:
            actions += self.on_timer(now)
        return actions

    def on_timer(self, now: float) -> list[Action]:
        """Fire every timer due at ``now``, earliest first."""
        deadlines = self._deadlines
        actions: list[Action] = []
        while deadlines and self.state is not TERMINATED:
            timer = min(deadlines, key=deadlines.__getitem__)
            if deadlines[timer] > now:
                break
            del deadlines[timer]
            actions += self._handle(timer, now, None)
        return actions

    def transport_error(self, now: float) -> list[Action]:
        return self._step(Event.TRANSPORT_ERROR, now, None)

    # -- engine
    def _step(
        self, trigger: Trigger, now: float, message: SipMessage | None, source: Addr | None = None
    ) -> list[Action]:
        actions = self._handle(trigger, now, message, source)
        deadlines = self._deadlines
        if deadlines and min(deadlines.values()) <= now:
            actions += self.on_timer(now)
        return actions

    def _handle(
        self, trigger: Trigger, now: float, message: SipMessage | None, source: Addr | None = None
    ) -> list[Action]:
        plan = self._plans[self.state].get(trigger)
        if plan is None:
            log.debug("%r: %s ignored", self, trigger)
            return []
        return self._run(plan, trigger, now, message, source)

    def _run(
        self, plan: Plan, trigger: Trigger | None, now: float, message: SipMessage | None,
        source: Addr | None,
    ) -> list[Action]:
        new_state, stops, dos, again, starts = plan
        deadlines = self._deadlines
        for timer in stops:
            deadlines.pop(timer, None)
        out: list[Action] = []
        for do in dos:
            if do is Do.SEND_RESPONSE:
                assert isinstance(message, SipResponse)
                self._remember(message)
                if self._shrink and message.status >= 200:
                    # final: from here on only resent (shrink), as the bytes sent now
                    self.shrink()
                    out.append(Send(self.last_response, self.peer, self))  # type: ignore[arg-type]
                else:
                    out.append(Send(message, self.peer, self))
            elif do is Do.DELIVER:
                assert message is not None
                out.append(Deliver(message, self, source or self.peer))
            elif do is Do.SEND_REQUEST:
                out.append(Send(self.request, self.peer, self))
            elif do is Do.DELIVER_STRAY:
                assert message is not None
                out.append(Deliver(message, None, source or self.peer))
            elif do is Do.SEND_ACK:
                assert isinstance(message, SipResponse)
                if self._ack is None:
                    self._ack = build_ack(self.request, message)
                out.append(Send(self._ack, self.peer, self))
            elif do is Do.RESEND_RESPONSE:
                if self.last_response is not None:
                    out.append(Send(self.last_response, self.peer, self))
            elif do is Do.RESEND_PROVISIONAL:
                if self._last_provisional is None:
                    self._remember(build_response(self.request, 100))
                assert self._last_provisional is not None
                out.append(Send(self._last_provisional, self.peer, self))
            elif do is Do.SEND_TRYING:
                self._remember(build_response(self.request, 100))
                assert self.last_response is not None
                out.append(Send(self.last_response, self.peer, self))
            elif do is Do.REPORT_TIMEOUT:
                assert isinstance(trigger, Timer)
                out.append(Timeout(self, trigger))
            elif do is Do.REPORT_TRANSPORT_ERROR:
                out.append(TransportError(self))
        if again is not None:
            backoff = again.backoff
            if backoff is Backoff.DOUBLE:
                self._interval *= 2
            elif backoff is Backoff.DOUBLE_CAP_T2:
                self._interval = min(self._interval * 2, self.config.t2)
            else:
                self._interval = self.config.t2
            self._arm(again.timer, now + self._interval)
        for timer, retransmits in starts:
            duration = self._durations[timer]
            if duration is not None:
                if retransmits:
                    self._interval = duration
                self._arm(timer, now + duration)
        if new_state is not None and new_state is not self.state:
            if trigger is not None:
                log.debug("%r -> %s on %s", self, new_state, trigger)
            self.state = new_state
            if new_state is TERMINATED:
                deadlines.clear()
                out.append(Terminated(self))
        return out

    def _arm(self, timer: Timer, when: float) -> None:
        self._deadlines[timer] = when
        heap = self._heap
        if heap is not None:
            heapq.heappush(heap, (when, next(_SEQ), self, timer))

    def shrink(self) -> None:
        """Drop the parsed messages a finished server transaction no longer reads:
        from Completed/Confirmed/Accepted on it only resends its last response (kept
        as the bytes sent) until its timer ends it. Thousands of transactions linger
        here for 32 s under load; as bytes they cost the garbage collector nothing.
        Only for RFC 3261 branches (the RFC 2543 match reads the stored messages).
        A layer made with ``shrink=True`` does this as the final response is sent,
        and sends those very bytes (the message is serialised once)."""
        if isinstance(self.last_response, SipResponse):
            self.last_response = bytes(self.last_response)  # type: ignore[assignment]
        self._last_provisional = None
        self.request = None  # type: ignore[assignment]

    def _remember(self, response: SipResponse) -> None:
        self.last_response = response
        if response.status < 200:
            self._last_provisional = response


class ClientTransaction(Transaction):
    """§17.1: created by the TU for an outgoing request; ``peer`` is the next hop."""

    is_client = True

    def __init__(
        self,
        request: SipRequest,
        dest: Addr,
        *,
        reliable: bool | None = None,
        timers: TimerConfig = TimerConfig(),
        key: Hashable | None = None,
    ) -> None:
        if request.method == "ACK":
            raise TransactionError(500, "ACK is sent without a client transaction (§17.1.1.3)")
        kind = ICT if request.method == "INVITE" else NICT
        if reliable is None:
            reliable = _reliable_transport(request)
        super().__init__(kind, request, dest, client_key(request) if key is None else key,
                         reliable=reliable, timers=timers)

    def receive_response(
        self, response: SipResponse, now: float, source: Addr | None = None
    ) -> list[Action]:
        status = response.status  # 1xx, 2xx, or 3xx-6xx (and beyond)
        event = R1XX if status < 200 else R2XX if status < 300 else R3XX_6XX
        return self._step(event, now, response, source)


class ServerTransaction(Transaction):
    """§17.2: created by the layer for an incoming request; ``peer`` is its source.

    Responses go back to the request's source address (what rport does, RFC 3581);
    a transport may refine that with the Via rules of §18.2.2.
    """

    def __init__(
        self,
        request: SipRequest,
        source: Addr,
        *,
        reliable: bool | None = None,
        timers: TimerConfig = TimerConfig(),
        key: Hashable | None = None,
    ) -> None:
        if request.method == "ACK":
            raise TransactionError(500, "an ACK never creates a server transaction (§17.2.3)")
        kind = IST if request.method == "INVITE" else NIST
        if reliable is None:
            reliable = _reliable_transport(request)
        super().__init__(kind, request, source, server_key(request) if key is None else key,
                         reliable=reliable, timers=timers)

    def receive_request(
        self, request: SipRequest, now: float, source: Addr | None = None
    ) -> list[Action]:
        """A retransmission of the request, or the ACK of a non-2xx final."""
        event = Event.ACK if request.method == "ACK" else Event.REQUEST
        return self._step(event, now, request, source)

    def send_response(self, response: SipResponse, now: float) -> list[Action]:
        status = response.status
        if not 100 <= status <= 699:
            raise TransactionError(500, f"bad response status {status}")
        event = TU_1XX if status < 200 else TU_2XX if status < 300 else TU_3XX_6XX
        return self._step(event, now, response)


# --------------------------------------------------------------------------- matching


def _is_reliable(via: Via) -> bool:
    return via.transport.upper() not in ("UDP", "DTLS")


def _reliable_transport(request: SipRequest) -> bool:
    return _is_reliable(request.top_via)


def _via_sent_by(via: Via) -> tuple[str, int]:
    return via.host.lower(), via.port or (5061 if via.transport.upper() in ("TLS", "WSS") else 5060)


def client_key(message: SipMessage) -> Hashable:
    """§17.1.3: top Via branch + CSeq method (a response matches its request's key)."""
    return _client_key(message, message.top_via)


def _client_key(message: SipMessage, via: Via) -> tuple[str, str | None, str]:
    """:func:`client_key` with the top Via already read."""
    return ("client", via.branch, message.cseq[1].upper())


def server_key(request: SipRequest, method: str | None = None) -> Hashable:
    """§17.2.3: branch + sent-by + method (ACK looks up INVITE).

    Without the magic cookie, the RFC 2543 rule: Request-URI, From tag, Call-ID,
    CSeq number, top Via and method; the To tag is checked by :func:`_to_tag_matches`.
    """
    return _server_key(request, request.top_via, method or request.method)


def _server_key(request: SipRequest, via: Via, method: str) -> tuple[Hashable, ...]:
    """:func:`server_key` with the top Via already read."""
    method = method.upper()
    if method == "ACK":
        method = "INVITE"
    branch = via.branch
    if branch is not None and branch.startswith(MAGIC_COOKIE):
        return ("3261", branch, _via_sent_by(via), method)
    return (
        "2543",
        str(request.request_uri),
        request.from_addr.tag,
        request.call_id,
        request.cseq[0],
        via.transport.upper(),
        _via_sent_by(via),
        branch,
        method,
    )


def _to_tag_matches(txn: Transaction, request: SipRequest) -> bool:
    """RFC 2543 fallback of §17.2.3: the To tag of an ACK equals that of the response
    sent; the To tag of any other request equals that of the original request."""
    if not (isinstance(txn.key, tuple) and txn.key[0] == "2543"):
        return True
    if request.method == "ACK" and txn.kind is IST:
        sent = txn.last_response
        return sent is not None and sent.to_addr.tag == request.to_addr.tag
    return txn.request.to_addr.tag == request.to_addr.tag


# --------------------------------------------------------------------------- the layer


class TransactionLayer:
    """All transactions of one endpoint, with their deadlines in one heap.

    Every entry point returns actions; the driver performs the ``Send`` ones and hands
    the rest to the TU. Terminated transactions leave the tables by themselves.

    The heap holds ``(deadline, seq, transaction, timer)`` for every timer armed; a
    stopped or re-armed timer leaves its entry behind, recognised as stale (the
    transaction's deadline for that timer differs) when it reaches the top, and
    dropped in bulk when stale entries make up half of the heap.
    """

    def __init__(self, timers: TimerConfig = TimerConfig(), *, shrink: bool = False) -> None:
        self.timers = timers
        self.shrink = shrink  # shrink finished server transactions (see Transaction.shrink)
        self._clients: dict[Hashable, ClientTransaction] = {}
        self._servers: dict[Hashable, ServerTransaction] = {}
        self._heap: list[HeapEntry] = []
        self._compact_at = 64  # heap size that triggers dropping the stale entries

    def __len__(self) -> int:
        return len(self._clients) + len(self._servers)

    @property
    def client_count(self) -> int:
        return len(self._clients)

    @property
    def server_count(self) -> int:
        return len(self._servers)

    # -- TU side
    def send_request(
        self, request: SipRequest, dest: Addr, now: float, *, reliable: bool | None = None
    ) -> tuple[ClientTransaction, list[Action]]:
        """Create a client transaction for ``request`` (which carries its Via/branch)."""
        via = request.top_via
        branch = via.branch
        if branch is None or not branch.startswith(MAGIC_COOKIE):
            raise TransactionError(500, "client requests need a z9hG4bK branch (§8.1.1.7)")
        if reliable is None:
            reliable = _is_reliable(via)
        key = _client_key(request, via)
        txn = ClientTransaction(request, dest, reliable=reliable, timers=self.timers, key=key)
        if key in self._clients:
            raise TransactionError(500, f"transaction {key!r} exists")
        self._clients[key] = txn
        return txn, self._adopt(txn, now)

    def respond(self, request: SipRequest, response: SipResponse, now: float) -> list[Action]:
        """Send ``response`` through the server transaction of ``request``."""
        txn = self.server_transaction(request)
        if txn is None:
            raise TransactionError(500, "no server transaction for this request")
        actions = txn.send_response(response, now)
        return self._settle(txn, actions)

    def transport_error(self, txn: Transaction, now: float) -> list[Action]:
        """The driver could not send a message of ``txn``."""
        actions = txn.transport_error(now)
        return self._settle(txn, actions)

    def server_transaction(self, request: SipRequest) -> ServerTransaction | None:
        key = _server_key(request, request.top_via, request.method)
        txn = self._servers.get(key)
        if txn is None or (key[0] != "3261" and not _to_tag_matches(txn, request)):
            return None
        return txn

    def client_transaction(self, message: SipMessage) -> ClientTransaction | None:
        return self._clients.get(client_key(message))

    def find_cancelled(self, cancel: SipRequest) -> ServerTransaction | None:
        """§9.2: the server transaction a CANCEL refers to (matched as in §17.2.3)."""
        txn = self._servers.get(server_key(cancel, method="INVITE"))
        if txn is None or not _to_tag_matches(txn, cancel):
            return None
        return txn

    # -- network side
    def receive(
        self, message: SipMessage, source: Addr, now: float, *, reliable: bool | None = None
    ) -> list[Action]:
        """Route a parsed message; unmatched responses and ACKs reach the TU as stray."""
        try:
            via = message.top_via  # read once: the keys and the transport come from it
            if isinstance(message, SipResponse):
                client = self._clients.get(_client_key(message, via))
                if client is None:
                    return [Deliver(message, None, source)]
                actions = client.receive_response(message, now, source)
                return self._settle(client, actions)
            method = message.method
            key = _server_key(message, via, method)
            server = self._servers.get(key)
            if server is not None and (key[0] == "3261" or _to_tag_matches(server, message)):
                actions = server.receive_request(message, now, source)
                return self._settle(server, actions)
            if method == "ACK":
                return [Deliver(message, None, source)]
            if reliable is None:
                reliable = _is_reliable(via)
            server = ServerTransaction(message, source, reliable=reliable, timers=self.timers, key=key)
        except SipError as exc:
            log.debug("dropping message without usable Via/CSeq: %s", exc)
            return []
        self._servers[key] = server
        server._shrink = self.shrink and not reliable and key[0] == "3261"
        actions = self._adopt(server, now)
        actions.insert(0, Deliver(message, server, source))
        return actions

    # -- timers
    def next_deadline(self) -> float | None:
        heap = self._heap
        while heap:
            deadline, _, txn, timer = heap[0]
            if txn._deadlines.get(timer) == deadline:
                return deadline
            heapq.heappop(heap)  # stale entry
        return None

    def on_timer(self, now: float) -> list[Action]:
        actions: list[Action] = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            deadline, _, txn, timer = heapq.heappop(heap)
            if txn._deadlines.get(timer) != deadline:
                continue  # stale
            actions += self._settle(txn, txn.on_timer(now))
        return actions

    def _adopt(self, txn: Transaction, now: float) -> list[Action]:
        """Start a new transaction with its timers on the layer's heap."""
        heap = txn._heap = self._heap
        if len(heap) > self._compact_at:
            self._compact()
        actions = txn.start(now)
        return self._settle(txn, actions)

    def _settle(self, txn: Transaction, actions: list[Action]) -> list[Action]:
        """After ``txn`` took a step: a terminated one leaves the tables."""
        if txn.state is TERMINATED:
            self._forget(txn)
        return actions

    def _forget(self, txn: Transaction) -> None:
        """A terminated transaction leaves its table (its heap entries go stale)."""
        table: dict[Hashable, ClientTransaction] | dict[Hashable, ServerTransaction]
        table = self._clients if txn.is_client else self._servers
        if table.get(txn.key) is txn:
            del table[txn.key]

    def _compact(self) -> None:
        heap = self._heap
        heap[:] = [entry for entry in heap if entry[2]._deadlines.get(entry[3]) == entry[0]]
        heapq.heapify(heap)
        self._compact_at = 2 * len(heap) + 64
