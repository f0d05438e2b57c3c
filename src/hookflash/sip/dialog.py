"""SIP dialogs (RFC 3261 §12) and the request/response builders UAs need around them.

A :class:`Dialog` is plain state: identifiers, sequence numbers, remote target and
route set. It builds in-dialog requests (§12.2.1.1) and ACKs for 2xx (§13.2.2.4) and
checks the CSeq of incoming requests (§12.2.2). Module functions build UAS responses
(§8.2.6), CANCEL requests (§9.1) and the transaction's ACK for non-2xx (§17.1.1.3).

Routing: loose routing (RFC 3261) and strict routing (RFC 2543 next hops, §12.2.1.1)
are both handled when building requests; parameters not allowed in a Request-URI
are not stripped for strict routers.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum, auto

from hookflash.sip.message import (
    Address,
    Headers,
    SipMessage,
    SipRequest,
    SipResponse,
    Status,
    split_list,
)

__all__ = [
    "Dialog",
    "DialogState",
    "build_ack",
    "build_cancel",
    "build_response",
    "dialog_id_for_request",
    "dialog_id_for_response",
]

HeaderItems = Iterable[tuple[str, str]]
DialogId = tuple[str, str, str]  # Call-ID, local tag, remote tag


def _header(msg: SipMessage, name: str) -> str:
    value = msg.headers.get(name)
    if value is None:
        raise ValueError(f"message has no {name} header")
    return value


def _without_tag(address: Address) -> Address:
    return Address(address.display, address.uri, {k: v for k, v in address.params.items() if k != "tag"})


def _target(msg: SipMessage, fallback: Address) -> str:
    contacts = msg.contacts
    return str((contacts[0] if contacts else fallback).uri)


# --------------------------------------------------------------------------- builders


def build_response(
    request: SipRequest,
    status: int,
    reason: str | None = None,
    to_tag: str | None = None,
    headers: HeaderItems = (),
    body: bytes = b"",
) -> SipResponse:
    """A UAS response to ``request`` (§8.2.6).

    Copies Via (all, in order), From, Call-ID, CSeq; To with ``to_tag`` added when it
    has none (never on 100, §8.2.6.2); Timestamp on 100 (§8.2.6.1); Record-Route on
    dialog-forming 101-299 responses (§12.1.1).
    """
    if reason is None:
        reason = _PHRASES.get(status) or (Status(status).phrase if 100 <= status <= 699 else "Unknown")
    req = request.headers
    first = req._first_values()
    from_, to, call_id, cseq = first.get("from"), first.get("to"), first.get("call-id"), first.get("cseq")
    if from_ is None or to is None:
        raise _missing("From" if from_ is None else "To")
    if status != 100 and request.to_addr.tag is None and to_tag:
        to = f"{to};tag={to_tag}"  # the To as written (verbatim), with our tag
    if call_id is None or cseq is None:
        raise _missing("Call-ID" if call_id is None else "CSeq")
    # every Via value (as get_all gives them); when the parsed view has as many Vias as
    # there are values, no value holds two and each only needs stripping
    items = [("via", "Via", value.strip(" \t")) for key, _, value in req._items if key == "via"]
    if len(items) != len(req._cache.get("via") or ()):
        items = [("via", "Via", via) for _, _, value in items for via in split_list(value)]
    items += (("from", "From", from_), ("to", "To", to), ("call-id", "Call-ID", call_id), ("cseq", "CSeq", cseq))
    if status == 100:
        stamp = first.get("timestamp")
        if stamp is not None:
            items.append(("timestamp", "Timestamp", stamp))
    elif status < 300 and "record-route" in first:
        items += [("record-route", "Record-Route", rr) for rr in req.get_all("Record-Route")]
    # the same values: no second parse of them
    views = req._cache
    cache = {key: views[key] for key in _SHARED_VIEWS if key in views}
    if headers:
        extra = Headers._keyed(headers)
        items += extra
        if cache:
            for key, _, _ in extra:  # as Headers.add would: a view of a header added is stale
                cache.pop(key, None)
    return SipResponse(status, reason, Headers._of(items, cache), body)


def _missing(name: str) -> ValueError:
    return ValueError(f"message has no {name} header")


_SHARED_VIEWS = ("via", "from", "cseq")
_PHRASES = {int(s): s.phrase for s in Status}


def build_cancel(request: SipRequest) -> SipRequest:
    """§9.1: CANCEL for a pending request: same Request-URI, Call-ID, To, From, CSeq
    number and top Via (hence branch), and the request's Route headers."""
    h = Headers()
    h.add("Via", request.headers.get_all("Via")[0])
    h.add("Max-Forwards", "70")
    for route in request.headers.get_all("Route"):
        h.add("Route", route)
    for name in ("From", "To", "Call-ID"):
        h.add(name, _header(request, name))
    h.add("CSeq", f"{request.cseq[0]} CANCEL")
    return SipRequest("CANCEL", request.uri, h)


def build_ack(request: SipRequest, response: SipResponse) -> SipRequest:
    """§17.1.1.3: the ACK for a non-2xx final response, built by the client transaction:
    Request-URI, Call-ID, From and CSeq number of the request, To of the response (with
    its tag), the request's top Via only and its Route headers."""
    h = Headers()
    h.add("Via", request.headers.get_all("Via")[0])
    h.add("Max-Forwards", "70")
    for route in request.headers.get_all("Route"):
        h.add("Route", route)
    h.add("From", _header(request, "From"))
    h.add("To", _header(response, "To"))
    h.add("Call-ID", _header(request, "Call-ID"))
    h.add("CSeq", f"{request.cseq[0]} ACK")
    return SipRequest("ACK", request.uri, h)


def dialog_id_for_request(request: SipRequest) -> DialogId:
    """(Call-ID, local tag, remote tag) of the dialog an incoming request belongs to."""
    return request.call_id, request.to_addr.tag or "", request.from_addr.tag or ""


def dialog_id_for_response(response: SipResponse) -> DialogId:
    """(Call-ID, local tag, remote tag) for a response to a request we sent."""
    return response.call_id, response.from_addr.tag or "", response.to_addr.tag or ""


# --------------------------------------------------------------------------- dialogs


class DialogState(Enum):
    EARLY = auto()  # created by a 1xx with To tag (§12.1)
    CONFIRMED = auto()  # created or confirmed by a 2xx
    TERMINATED = auto()


@dataclass(eq=False)
class Dialog:
    """Dialog state of §12.1. ``local``/``remote`` are the From/To addresses without
    tag; ``route_set`` holds Route values (name-addr) in the order they are sent."""

    call_id: str
    local_tag: str
    remote_tag: str
    local: Address
    remote: Address
    remote_target: str
    route_set: list[str] = field(default_factory=list)
    local_seq: int | None = None
    remote_seq: int | None = None
    secure: bool = False
    state: DialogState = DialogState.CONFIRMED
    local_contact: str | None = None
    _texts: tuple[tuple[Address, str, Address, str], tuple[str, str]] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    @property
    def id(self) -> DialogId:
        return self.call_id, self.local_tag, self.remote_tag

    @property
    def local_uri(self) -> str:
        return str(self.local.uri)

    @property
    def remote_uri(self) -> str:
        return str(self.remote.uri)

    # -- creation
    @classmethod
    def from_uac(
        cls, request: SipRequest, response: SipResponse, local_contact: str | None = None
    ) -> Dialog:
        """§12.1.2: UAC side, from a 1xx-with-tag (early) or 2xx to ``request``."""
        remote_tag, local_tag = response.to_addr.tag, request.from_addr.tag
        if not remote_tag or not local_tag:
            raise ValueError("a dialog needs From and To tags")
        return cls(
            call_id=request.call_id,
            local_tag=local_tag,
            remote_tag=remote_tag,
            local=_without_tag(request.from_addr),
            remote=_without_tag(response.to_addr),
            remote_target=_target(response, response.to_addr),
            route_set=response.headers.get_all("Record-Route")[::-1],
            local_seq=request.cseq[0],
            secure=request.request_uri.scheme == "sips",
            state=DialogState.EARLY if response.status < 200 else DialogState.CONFIRMED,
            local_contact=local_contact,
        )

    @classmethod
    def from_uas(
        cls,
        request: SipRequest,
        local_tag: str,
        local_contact: str | None = None,
        *,
        early: bool = False,
    ) -> Dialog:
        """§12.1.1: UAS side, when sending a 1xx/2xx with To tag ``local_tag``."""
        remote_tag = request.from_addr.tag
        if not remote_tag:
            raise ValueError("request without From tag (RFC 2543 peers are not supported)")
        return cls(
            call_id=request.call_id,
            local_tag=local_tag,
            remote_tag=remote_tag,
            local=_without_tag(request.to_addr),
            remote=_without_tag(request.from_addr),
            remote_target=_target(request, request.from_addr),
            route_set=request.headers.get_all("Record-Route"),
            remote_seq=request.cseq[0],
            secure=request.request_uri.scheme == "sips",
            state=DialogState.EARLY if early else DialogState.CONFIRMED,
            local_contact=local_contact,
        )

    # -- state updates
    def update_from_response(self, response: SipResponse) -> None:
        """UAC: a later 1xx/2xx of the dialog-creating INVITE, or a 2xx to a target
        refresh (§12.2.1.2): refresh the target; a 2xx confirms an early dialog and
        replaces its route set (§13.2.2.4)."""
        if response.status >= 300:
            return
        if response.contacts:
            self.remote_target = str(response.contacts[0].uri)
        if self.state is DialogState.EARLY and response.status >= 200:
            self.route_set = response.headers.get_all("Record-Route")[::-1]
            self.state = DialogState.CONFIRMED

    def receive_request(self, request: SipRequest) -> bool:
        """§12.2.2: False means out of order (answer 500); else remote CSeq updated.

        A target refresh request (re-INVITE, UPDATE) with a Contact also updates the
        remote target (§12.2.2 last paragraph).
        """
        if request.method in ("ACK", "CANCEL"):
            return True  # ACK reuses the INVITE's number; CANCEL is hop-by-hop
        number = request.cseq[0]
        if self.remote_seq is not None and number < self.remote_seq:
            return False
        self.remote_seq = number
        if request.method in ("INVITE", "UPDATE") and request.contacts:
            self.remote_target = str(request.contacts[0].uri)
        return True

    def matches(self, request: SipRequest) -> bool:
        return dialog_id_for_request(request) == self.id

    # -- requests
    def create_request(
        self,
        method: str,
        *,
        via: str | None = None,
        headers: HeaderItems = (),
        body: bytes = b"",
    ) -> SipRequest:
        """§12.2.1.1: a request within the dialog; CSeq is incremented (use
        :meth:`create_ack` for ACK and :func:`build_cancel` for CANCEL). ``via`` is
        the top Via value (with branch); without it the caller inserts one."""
        method = method.upper()
        if method in ("ACK", "CANCEL"):
            raise ValueError(f"{method} is built with create_ack / build_cancel")
        self.local_seq = self.local_seq + 1 if self.local_seq is not None else _initial_cseq()
        return self._request(method, self.local_seq, via, headers, body)

    def create_ack(
        self,
        response: SipResponse,
        *,
        via: str | None = None,
        invite: SipRequest | None = None,
        headers: HeaderItems = (),
        body: bytes = b"",
    ) -> SipRequest:
        """§13.2.2.4: the ACK for a 2xx: in-dialog headers, CSeq number of the INVITE,
        and the INVITE's credentials when ``invite`` is given."""
        extra = list(headers)
        if invite is not None:
            for name in ("Authorization", "Proxy-Authorization"):
                extra += [(name, v) for v in invite.headers.get_all(name)]
        return self._request("ACK", response.cseq[0], via, extra, body)

    def _request(
        self, method: str, number: int, via: str | None, headers: HeaderItems, body: bytes
    ) -> SipRequest:
        uri, routes = self.next_hop()
        items = [("via", "Via", via)] if via is not None else []
        items.append(("max-forwards", "Max-Forwards", "70"))
        if routes:
            items += [("route", "Route", route) for route in routes]
        local, remote = self._addresses()
        items.append(("from", "From", local))
        items.append(("to", "To", remote))
        items.append(("call-id", "Call-ID", self.call_id))
        items.append(("cseq", "CSeq", f"{number} {method}"))
        if self.local_contact is not None and method in _CONTACT_METHODS:
            items.append(("contact", "Contact", self.local_contact))
        if headers:
            items += Headers._keyed(headers)
        return SipRequest(method, uri, Headers._of(items), body)

    def _addresses(self) -> tuple[str, str]:
        """From and To of the dialog's requests (with tags), as text: kept while
        ``local``, ``remote`` and the tags stay equal (addresses are never changed in
        place), so that a BYE or ACK does not format them again."""
        key = (self.local, self.local_tag, self.remote, self.remote_tag)
        texts = self._texts
        if texts is None or texts[0] != key:
            texts = self._texts = (key, (
                str(self.local.with_tag(self.local_tag)), str(self.remote.with_tag(self.remote_tag))
            ))
        return texts[1]

    def next_hop(self) -> tuple[str, list[str]]:
        """§12.2.1.1: Request-URI and Route values (loose or strict first hop)."""
        if not self.route_set:
            return self.remote_target, []
        first = Address.parse(self.route_set[0]).uri
        if "lr" in first.params:
            return self.remote_target, list(self.route_set)
        # strict router: it becomes the Request-URI, the remote target the last Route
        return str(first), [*self.route_set[1:], f"<{self.remote_target}>"]


# requests whose Contact is a target refresh or otherwise mandatory
_CONTACT_METHODS = frozenset({"INVITE", "UPDATE", "SUBSCRIBE", "NOTIFY", "REFER"})


def _initial_cseq() -> int:
    # §8.1.1.5: chosen by the UAC, below 2**31
    return secrets.randbelow(2**16) + 1
