"""Digest authentication (RFC 2617 / RFC 7616 MD5, RFC 3261 §22)."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hookflash.sip.auth import (
    AuthError,
    AuthStatus,
    DigestChallenger,
    answer_challenge,
    digest_response,
    ha1,
    ha1_lookup_from,
    parse_auth_header,
)

REALM = "asterisk"
KEY = b"0123456789abcdef"
URI = "sip:bob@pbx.example.com"


def lookup(username: str) -> str | None:
    return {"alice": ha1("alice", REALM, "s3cret")}.get(username)


def challenger(**kw: object) -> DigestChallenger:
    return DigestChallenger(REALM, KEY, **kw)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- vectors


def test_rfc2617_mufasa_vector() -> None:
    # RFC 2617 §3.5
    h = ha1("Mufasa", "testrealm@host.com", "Circle Of Life")
    got = digest_response(
        h,
        "dcd98b7102dd2f0e8b11d0f600bfb0c093",
        "GET",
        "/dir/index.html",
        qop="auth",
        nc="00000001",
        cnonce="0a4f113b",
    )
    assert got == "6629fae49393a05397450978507c4ef1"


def test_answer_challenge_reproduces_mufasa() -> None:
    chal = (
        'Digest realm="testrealm@host.com", qop="auth,auth-int", '
        'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"'
    )
    value = answer_challenge(chal, "GET", "/dir/index.html", "Mufasa", "Circle Of Life", 1, "0a4f113b")
    scheme, p = parse_auth_header(value)
    assert scheme == "Digest"
    assert p["response"] == "6629fae49393a05397450978507c4ef1"
    assert p["nc"] == "00000001" and p["qop"] == "auth" and p["cnonce"] == "0a4f113b"
    assert p["opaque"] == "5ccc069c403ebaf9f0171e9517f40e41"


def test_rfc2069_no_qop_response() -> None:
    h = ha1("Mufasa", "testrealm@host.com", "Circle Of Life")
    expected = digest_response(h, "abc", "GET", "/x")
    chal = 'Digest realm="testrealm@host.com", nonce="abc"'
    _, p = parse_auth_header(answer_challenge(chal, "GET", "/x", "Mufasa", "Circle Of Life"))
    assert p["response"] == expected
    assert "qop" not in p and "nc" not in p and "cnonce" not in p


def test_parse_quoted_escapes_and_commas() -> None:
    scheme, p = parse_auth_header('Digest username="a\\"b,c", Realm=x , nonce="n"')
    assert scheme == "Digest"
    assert p == {"username": 'a"b,c', "realm": "x", "nonce": "n"}


@pytest.mark.parametrize(
    "bad", ["", "Digest", "Digest realm", 'Digest realm="x', 'Digest realm="x" y', "a=b", "Digest r=1, r=2"]
)
def test_parse_rejects_bad_headers(bad: str) -> None:
    if bad == "Digest":
        assert parse_auth_header(bad) == ("Digest", {})
        return
    with pytest.raises(AuthError):
        parse_auth_header(bad)


# --------------------------------------------------------------------------- round trips


def test_challenge_format() -> None:
    c = challenger()
    scheme, p = parse_auth_header(c.challenge(1000.0))
    assert scheme == "Digest"
    assert p["realm"] == REALM and p["algorithm"] == "MD5" and p["qop"] == "auth"
    assert p["opaque"] == c.opaque and "stale" not in p
    _, p2 = parse_auth_header(c.challenge(1000.0, stale=True))
    assert p2["stale"] == "true" and p2["nonce"] != p["nonce"]


def test_round_trip_ok() -> None:
    c = challenger()
    auth = answer_challenge(c.challenge(1000.0), "REGISTER", URI, "alice", "s3cret")
    result = c.verify("REGISTER", auth, lookup, 1001.0, request_uri=URI)
    assert result.ok and result.status is AuthStatus.OK and result.username == "alice"


def test_round_trip_rfc2069_client_single_use() -> None:
    c = challenger()
    _, p = parse_auth_header(c.challenge(0.0))
    bare = f'Digest realm="{REALM}", nonce="{p["nonce"]}"'
    auth = answer_challenge(bare, "INVITE", URI, "alice", "s3cret")
    assert c.verify("INVITE", auth, lookup, 1.0).ok
    # without nc there is no replay protection but single use
    assert c.verify("INVITE", auth, lookup, 2.0).status is AuthStatus.STALE


def test_wrong_password() -> None:
    c = challenger()
    auth = answer_challenge(c.challenge(0.0), "REGISTER", URI, "alice", "guess")
    r = c.verify("REGISTER", auth, lookup, 1.0)
    assert r.status is AuthStatus.WRONG and r.username == "alice"


def test_wrong_method_fails() -> None:
    c = challenger()
    auth = answer_challenge(c.challenge(0.0), "REGISTER", URI, "alice", "s3cret")
    assert c.verify("INVITE", auth, lookup, 1.0).status is AuthStatus.WRONG


def test_unknown_user_is_wrong() -> None:
    c = challenger()
    auth = answer_challenge(c.challenge(0.0), "REGISTER", URI, "mallory", "s3cret")
    r = c.verify("REGISTER", auth, lookup, 1.0)
    assert r.status is AuthStatus.WRONG and r.username == "mallory"


def test_lookup_that_raises_is_wrong() -> None:
    def broken(_: str) -> str | None:
        raise RuntimeError("db down")

    c = challenger()
    auth = answer_challenge(c.challenge(0.0), "REGISTER", URI, "alice", "s3cret")
    assert c.verify("REGISTER", auth, broken, 1.0).status is AuthStatus.WRONG


def test_realm_mismatch() -> None:
    c = challenger()
    chal = c.challenge(0.0).replace(f'realm="{REALM}"', 'realm="other"')
    auth = answer_challenge(chal, "REGISTER", URI, "alice", "s3cret")
    r = c.verify("REGISTER", auth, lambda u: ha1(u, "other", "s3cret"), 1.0)
    assert r.status is AuthStatus.WRONG and "realm" in r.reason


def test_opaque_mismatch() -> None:
    c = challenger()
    chal = c.challenge(0.0).replace(c.opaque, "f" * 32)
    auth = answer_challenge(chal, "REGISTER", URI, "alice", "s3cret")
    assert c.verify("REGISTER", auth, lookup, 1.0).status is AuthStatus.WRONG


def test_request_uri_mismatch_is_accepted_as_asterisk_does() -> None:
    """SIPp's [authentication] and proxies that rewrite the Request-URI hash another uri:
    Asterisk checks the response over the header's uri and accepts; so do we. A wrong
    password over that uri is still refused."""
    c = challenger()
    auth = answer_challenge(c.challenge(0.0), "REGISTER", URI, "alice", "s3cret")
    assert c.verify("REGISTER", auth, lookup, 1.0, request_uri="sip:other@x").status is AuthStatus.OK
    bad = answer_challenge(c.challenge(0.0), "REGISTER", URI, "alice", "wrong")
    assert c.verify("REGISTER", bad, lookup, 1.0, request_uri="sip:other@x").status is AuthStatus.WRONG


def test_stale_after_lifetime() -> None:
    c = challenger(nonce_lifetime=30.0)
    auth = answer_challenge(c.challenge(100.0), "REGISTER", URI, "alice", "s3cret")
    assert c.verify("REGISTER", auth, lookup, 130.0).ok
    auth2 = answer_challenge(c.challenge(100.0), "REGISTER", URI, "alice", "s3cret")
    r = c.verify("REGISTER", auth2, lookup, 130.5)
    assert r.status is AuthStatus.STALE and r.username == "alice"


def test_stale_only_if_digest_right() -> None:
    c = challenger(nonce_lifetime=30.0)
    auth = answer_challenge(c.challenge(100.0), "REGISTER", URI, "alice", "nope")
    assert c.verify("REGISTER", auth, lookup, 500.0).status is AuthStatus.WRONG


def test_nonce_from_the_future_is_stale() -> None:
    c = challenger()
    auth = answer_challenge(c.challenge(1000.0), "REGISTER", URI, "alice", "s3cret")
    assert c.verify("REGISTER", auth, lookup, 900.0).status is AuthStatus.STALE


def test_foreign_nonce_is_stale() -> None:
    other = DigestChallenger(REALM, b"another key")
    c = challenger()
    chal = other.challenge(0.0).replace(other.opaque, c.opaque)
    auth = answer_challenge(chal, "REGISTER", URI, "alice", "s3cret")
    assert c.verify("REGISTER", auth, lookup, 1.0).status is AuthStatus.STALE


def test_stateless_verification_across_instances() -> None:
    # any node holding the key verifies the nonce
    a, b = challenger(), challenger()
    auth = answer_challenge(a.challenge(0.0), "REGISTER", URI, "alice", "s3cret")
    assert b.verify("REGISTER", auth, lookup, 1.0).ok


def test_replayed_nc_rejected_and_increasing_nc_accepted() -> None:
    c = challenger()
    chal = c.challenge(0.0)
    first = answer_challenge(chal, "REGISTER", URI, "alice", "s3cret", nc=1, cnonce="aa")
    assert c.verify("REGISTER", first, lookup, 1.0).ok
    assert c.verify("REGISTER", first, lookup, 2.0).status is AuthStatus.STALE
    third = answer_challenge(chal, "REGISTER", URI, "alice", "s3cret", nc=3, cnonce="bb")
    assert c.verify("REGISTER", third, lookup, 3.0).ok
    second = answer_challenge(chal, "REGISTER", URI, "alice", "s3cret", nc=2, cnonce="cc")
    assert c.verify("REGISTER", second, lookup, 4.0).status is AuthStatus.STALE


def test_nonce_tracking_is_bounded_and_forgotten_nonces_refused() -> None:
    c = challenger(max_tracked_nonces=10, nonce_lifetime=1000.0)
    answers = []
    for i in range(30):
        chal = c.challenge(float(i))
        answers.append(answer_challenge(chal, "REGISTER", URI, "alice", "s3cret", cnonce="x"))
        assert c.verify("REGISTER", answers[-1], lookup, float(i)).ok
    assert c.tracked_nonces <= 10
    # a replay of an evicted nonce must not slip through
    assert c.verify("REGISTER", answers[0], lookup, 31.0).status is AuthStatus.STALE
    assert c.verify("REGISTER", answers[-1], lookup, 31.0).status is AuthStatus.STALE


def test_expired_nonces_are_purged() -> None:
    c = challenger(nonce_lifetime=10.0)
    for i in range(50):
        auth = answer_challenge(c.challenge(float(i)), "REGISTER", URI, "alice", "s3cret")
        assert c.verify("REGISTER", auth, lookup, float(i)).ok
    assert c.tracked_nonces <= 12


def test_md5secret() -> None:
    stored = ha1("alice", REALM, "s3cret")  # what md5secret= holds
    look = ha1_lookup_from(REALM, secrets={"bob": "pw"}, md5secrets={"alice": stored.upper()})
    c = challenger()
    a = answer_challenge(c.challenge(0.0), "REGISTER", URI, "alice", "s3cret")
    b = answer_challenge(c.challenge(0.0), "REGISTER", URI, "bob", "pw")
    assert c.verify("REGISTER", a, look, 1.0).ok
    assert c.verify("REGISTER", b, look, 1.0).ok
    assert look("carol") is None


@pytest.mark.parametrize(
    "header",
    [
        "",
        "Basic YWxhZGRpbjpvcGVuc2VzYW1l",
        "Digest",
        'Digest username="alice"',
        'Digest username="alice", realm="asterisk", nonce="x", uri="u", response="r", qop=auth',
        ('Digest username="alice", realm="asterisk", nonce="x", uri="u", response="r", '
        'qop=auth, nc=zz, cnonce="c"'),
        'Digest username="alice", realm="asterisk", nonce="x", uri="u", response="r", algorithm=SHA-256',
        'Digest username="alice", realm="asterisk", nonce="x", uri="u", response="r", qop=auth-int',
        'Digest username="alice", realm="asterisk", nonce="x", uri="u", response="r", nc=00000001',
        'Digest username="alice", realm="asterisk" nonce="x"',
    ],
)
def test_malformed_headers(header: str) -> None:
    r = challenger().verify("REGISTER", header, lookup, 0.0)
    assert r.status in (AuthStatus.MALFORMED, AuthStatus.WRONG)
    assert not r.ok


@settings(max_examples=300)
@given(st.text())
def test_verify_never_raises(header: str) -> None:
    assert not challenger().verify("REGISTER", header, lookup, 0.0).ok


@settings(max_examples=200)
@given(
    st.dictionaries(
        st.sampled_from(["username", "realm", "nonce", "uri", "response", "qop", "nc", "cnonce", "opaque"]),
        st.text(max_size=40),
    )
)
def test_verify_never_raises_on_structured_garbage(params: dict[str, str]) -> None:
    header = "Digest " + ", ".join(
        f'{k}="{v.replace(chr(92), "").replace(chr(34), "")}"' for k, v in params.items()
    )
    assert not challenger().verify("REGISTER", header, lookup, 0.0).ok


@settings(max_examples=100)
@given(
    user=st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=20),
    password=st.text(max_size=20),
    method=st.sampled_from(["REGISTER", "INVITE", "BYE", "SUBSCRIBE"]),
    nc=st.integers(1, 2**32 - 1),
)
def test_round_trip_any_credentials(user: str, password: str, method: str, nc: int) -> None:
    c = challenger()
    auth = answer_challenge(c.challenge(50.0), method, URI, user, password, nc=nc)
    assert c.verify(method, auth, lambda u: ha1(u, REALM, password) if u == user else None, 51.0).ok


def test_client_rejects_unanswerable_challenges() -> None:
    with pytest.raises(AuthError):
        answer_challenge('Basic realm="x"', "GET", "/", "u", "p")
    with pytest.raises(AuthError):
        answer_challenge('Digest realm="x", nonce="n", algorithm=SHA-256', "GET", "/", "u", "p")
    with pytest.raises(AuthError):
        answer_challenge('Digest realm="x", nonce="n", qop="auth-int"', "GET", "/", "u", "p")
    with pytest.raises(AuthError):
        answer_challenge('Digest realm="x"', "GET", "/", "u", "p")


def test_client_md5_sess() -> None:
    chal = 'Digest realm="r", nonce="n", algorithm=MD5-sess, qop="auth"'
    _, p = parse_auth_header(answer_challenge(chal, "INVITE", "sip:x", "u", "pw", cnonce="c"))
    def md5(s: str) -> str:
        return hashlib.md5(s.encode()).hexdigest()

    sess = md5(f"{ha1('u', 'r', 'pw')}:n:c")
    assert p["response"] == md5(f"{sess}:n:00000001:c:auth:{md5('INVITE:sip:x')}")
    assert p["algorithm"] == "MD5-sess"
