"""The SCRAM exchange on its own (``imapd.accounts.scram``), byte for byte.

RFC 7677 §3's example fixes the arithmetic; the other expected messages
come from a small client written here from RFC 5802 §3's formulas
(``hashlib``/``hmac`` only, nothing from the server), itself checked
against that example. Covered: the authorization identity of RFC 5802 §7's
GS2 header (GNU SASL, so mutt, always sends ``a=USER``), saslname escapes
and SASLprep (§5.1), malformed headers, the ``c=`` check against the
header as sent, and channel binding choices (§6, RFC 9266, RFC 5929).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from typing import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imapd.accounts.scram import Failure, ScramExchange, ScramFailed, ScramKeys


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def mac(key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, hashlib.sha256).digest()


@dataclass(frozen=True)
class Credentials:
    """RFC 5802 §3 from a password, computed here independently."""

    password: bytes
    salt: bytes
    iterations: int

    @property
    def salted(self) -> bytes:
        return hashlib.pbkdf2_hmac("sha256", self.password, self.salt, self.iterations)

    @property
    def client_key(self) -> bytes:
        return mac(self.salted, b"Client Key")

    @property
    def keys(self) -> ScramKeys:
        stored = hashlib.sha256(self.client_key).digest()
        return ScramKeys(self.iterations, self.salt, stored, mac(self.salted, b"Server Key"))

    def final(self, bare: str, server_first: str, cbind: bytes) -> tuple[str, str]:
        """(client-final-message, the server-final it must get back)."""
        nonce = dict(p.split("=", 1) for p in server_first.split(","))["r"]
        without_proof = f"c={b64(cbind)},r={nonce}"
        auth_message = f"{bare},{server_first},{without_proof}".encode()
        proof = bytes(a ^ b for a, b in zip(self.client_key, mac(self.keys.stored_key, auth_message)))
        return f"{without_proof},p={b64(proof)}", f"v={b64(mac(self.keys.server_key, auth_message))}"


# RFC 7677 §3: user "user", password "pencil".
RFC_CREDENTIALS = Credentials(b"pencil", base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ=="), 4096)
RFC_SERVER_NONCE = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
ALICE = Credentials(b"wonderland", b"0123456789abcdef", 4096)
SERVER_NONCE = "3rfcNHYJY1ZVvWVs7j"


def exchange(users: dict[str, ScramKeys] | None = None, **options: object) -> ScramExchange:
    table = users if users is not None else {"alice": ALICE.keys}
    return ScramExchange(table.get, server_nonce=lambda: SERVER_NONCE, **options)  # type: ignore[arg-type]


def recorder(seen: list[str]) -> Callable[[str], ScramKeys | None]:
    """A lookup that knows nobody and records the names it was asked for."""

    def lookup(user: str) -> ScramKeys | None:
        seen.append(user)
        return None

    return lookup


def failure(call: object, *args: bytes) -> ScramFailed:
    with pytest.raises(ScramFailed) as info:
        call(*args)  # type: ignore[operator]
    return info.value


def test_rfc7677_example_byte_for_byte() -> None:
    server = ScramExchange({"user": RFC_CREDENTIALS.keys}.get, server_nonce=lambda: RFC_SERVER_NONCE)
    first = server.first(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO")
    assert first == (b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                     b"s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")
    final = (b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
             b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
    assert server.final(final) == b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
    assert server.username == "user"


def test_the_test_client_reproduces_rfc7677() -> None:
    """The client below is right: it computes the RFC's proof and verifier."""
    server_first = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
    final, verifier = RFC_CREDENTIALS.final("n=user,r=rOprNGfwEbeRWgbNEkqO", server_first, b"n,,")
    assert final.endswith(",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
    assert verifier == "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="


def run(server: ScramExchange, header: str, bare: str, creds: Credentials = ALICE,
        cbind: bytes | None = None) -> tuple[bytes, str]:
    """Drive a whole exchange; return (server-final, the expected one)."""
    server_first = server.first((header + bare).encode()).decode()
    final, verifier = creds.final(bare, server_first, cbind if cbind is not None else header.encode())
    return server.final(final.encode()), verifier


def test_authorization_identity_equal_to_the_user_logs_in() -> None:
    """What GNU SASL (mutt) sends: n,a=USER,n=USER,r=... and c= covers "n,a=alice,"."""
    server = exchange()
    first = server.first(b"n,a=alice,n=alice,r=fyko+d2lbbFgONRv9qkxdawL")
    assert first == (b"r=fyko+d2lbbFgONRv9qkxdawL" + SERVER_NONCE.encode()
                     + b",s=MDEyMzQ1Njc4OWFiY2RlZg==,i=4096")
    final, verifier = ALICE.final("n=alice,r=fyko+d2lbbFgONRv9qkxdawL", first.decode(), b"n,a=alice,")
    assert final.startswith("c=bixhPWFsaWNlLA==,")  # base64("n,a=alice,")
    assert server.final(final.encode()) == verifier.encode()
    assert server.username == "alice"


def test_another_authorization_identity_is_refused_before_any_challenge() -> None:
    server = exchange({"alice": ALICE.keys, "bob": ALICE.keys})
    error = failure(server.first, b"n,a=bob,n=alice,r=abcdef")
    assert error.kind is Failure.AUTHORIZATION


def test_c_must_repeat_the_header_as_sent_authzid_included() -> None:
    server = exchange()
    server_first = server.first(b"n,a=alice,n=alice,r=abcdef").decode()
    final, _ = ALICE.final("n=alice,r=abcdef", server_first, b"n,,")  # header without a=
    error = failure(server.final, final.encode())
    assert error.kind is Failure.REFUSED and "c=" in error.reason


@pytest.mark.parametrize("escaped,name", [
    ("a=2Cb", "a,b"), ("x=3Dy", "x=y"), ("=2C=3D=2C", ",=,"), ("caf\u00e9", "caf\u00e9"),
])
def test_saslname_escapes_in_user_and_authzid(escaped: str, name: str) -> None:
    """RFC 5802 §5.1: "," and "=" travel as =2C and =3D, in n= and a= alike."""
    seen: list[str] = []

    def lookup(user: str) -> ScramKeys | None:
        seen.append(user)
        return ALICE.keys if user == name else None

    server = ScramExchange(lookup, server_nonce=lambda: SERVER_NONCE)
    got, expected = run(server, f"n,a={escaped},", f"n={escaped},r=nonce1")
    assert got == expected.encode() and seen == [name]


@pytest.mark.parametrize("sent,prepared", [
    ("ali\u00adce", "alice"),  # RFC 4013 §2.2: soft hyphen maps to nothing
    ("\u2168", "IX"),  # NFKC: ROMAN NUMERAL NINE
    ("al\u00a0ice", "al ice"),  # §2.1: non-ASCII space to SPACE
])
def test_user_names_are_saslprepped_before_lookup(sent: str, prepared: str) -> None:
    seen: list[str] = []
    server = ScramExchange(recorder(seen), server_nonce=lambda: SERVER_NONCE)
    server.first(f"n,a={sent},n={sent},r=x".encode())
    assert seen == [prepared]  # a= prepared the same way, so it matches


@pytest.mark.parametrize("message,reason", [
    (b"n=alice,r=abc", "no GS2 header"),
    (b"x,,n=alice,r=abc", "must start with n, y or p="),
    (b"p=,,n=alice,r=abc", "bad channel binding name"),
    (b"p=tls unique,,n=alice,r=abc", "bad channel binding name"),
    (b"n,b=alice,n=alice,r=abc", "must be a=name"),
    (b"n,a=,n=alice,r=abc", "empty authorization identity"),
    (b"n,a=al=2Dice,n=alice,r=abc", "'=' not followed by 2C or 3D"),
    (b"n,,n=al=ice,r=abc", "'=' not followed by 2C or 3D"),
    (b"n,,n=alice=,r=abc", "'=' not followed by 2C or 3D"),
    (b"n,,n=,r=abc", "empty user name"),
    (b"n,,r=abc,n=alice", "must be n=user,r=nonce"),
    (b"n,,n=alice", "must be n=user,r=nonce"),
    (b"n,,", "attributes must be letter=value"),
    (b"n,,n=alice,r=a b", "printable ASCII"),
    (b"n,,n=alice,r=", "printable ASCII"),
    (b"n,,n=al\x07ice,r=abc", "SASLprep"),
    (b"n,,n=\xc3\xad\xff,r=abc", "not UTF-8"),
    (b"n,,n=al\x00ice,r=abc", "NUL"),
    (b"n,,n=\xc2\xad,r=abc", "empty after SASLprep"),
])
def test_malformed_client_first_is_bad_with_a_reason(message: bytes, reason: str) -> None:
    error = failure(exchange().first, message)
    assert error.kind is Failure.MALFORMED and reason in error.reason


def test_mandatory_extension_is_refused() -> None:
    error = failure(exchange().first, b"n,,m=ext,n=alice,r=abc")
    assert error.kind is Failure.REFUSED and "m=" in error.reason


@pytest.mark.parametrize("final,reason", [
    (b"c=biws,r=abc", "no proof"),
    (b"r=x,c=biws,p=" + b64(bytes(32)).encode(), "must start c=...,r=..."),
    (b"c=biw,r=x,p=" + b64(bytes(32)).encode(), "not base64"),
    (b"c=biws,r=x,p=AAAA", "wrong length"),
    (b"c=biws,r=wrong,p=" + b64(bytes(32)).encode(), "nonce does not match"),
])
def test_malformed_client_final_is_bad_with_a_reason(final: bytes, reason: str) -> None:
    server = exchange()
    server.first(b"n,,n=alice,r=abc")
    error = failure(server.final, final)
    assert error.kind is Failure.MALFORMED and reason in error.reason


def test_final_before_first_is_malformed() -> None:
    assert failure(exchange().final, b"c=biws,r=x,p=AAAA").kind is Failure.MALFORMED


@pytest.mark.parametrize("user,creds", [("alice", Credentials(b"wrong", ALICE.salt, 4096)), ("nobody", ALICE)])
def test_wrong_password_and_unknown_user_fail_the_same_way(user: str, creds: Credentials) -> None:
    server = exchange()
    server_first = server.first(f"n,,n={user},r=abc".encode()).decode()
    if user == "nobody":  # a decoy salt, stable per name, still 16 bytes
        salt = base64.b64decode(dict(p.split("=", 1) for p in server_first.split(","))["s"])
        assert len(salt) == 16 and salt != ALICE.salt
    final, _ = creds.final(f"n={user},r=abc", server_first, b"n,,")
    assert failure(server.final, final.encode()).kind is Failure.PROOF


# --- channel binding (RFC 5802 §6, RFC 9266, RFC 5929) ------------------------------

EXPORTER = {"tls-exporter": bytes(range(32)), "tls-server-end-point": b"\xee" * 32}


@pytest.mark.parametrize("cb_name", ["tls-exporter", "tls-server-end-point"])
def test_plus_binds_the_header_and_the_connection_data(cb_name: str) -> None:
    server = exchange(plus=True, bindings=EXPORTER, plus_offered=True)
    header = f"p={cb_name},a=alice,"
    got, expected = run(server, header, "n=alice,r=abc", cbind=header.encode() + EXPORTER[cb_name])
    assert got == expected.encode()


def test_plus_with_another_connections_data_is_refused() -> None:
    """A man in the middle has another TLS channel, so other binding data."""
    server = exchange(plus=True, bindings=EXPORTER, plus_offered=True)
    header = "p=tls-exporter,,"
    server_first = server.first((header + "n=alice,r=abc").encode()).decode()
    final, _ = ALICE.final("n=alice,r=abc", server_first, header.encode() + b"\x00" * 32)
    error = failure(server.final, final.encode())
    assert error.kind is Failure.REFUSED and "does not match" in error.reason


@pytest.mark.parametrize("plus,header,bindings,offered,reason", [
    (True, "p=tls-unique,,", EXPORTER, True, "tls-unique is not supported here; use tls-exporter or tls-server-end-point"),
    (True, "p=tls-exporter,,", {}, True, "use none on this connection"),
    (True, "n,,", EXPORTER, True, "needs channel binding"),
    (True, "y,,", EXPORTER, True, "needs channel binding"),
    (False, "p=tls-exporter,,", EXPORTER, True, "channel binding needs SCRAM-SHA-256-PLUS"),
    (False, "y,,", EXPORTER, True, "channel binding is supported here"),  # downgrade
])
def test_channel_binding_choices_that_are_refused(
    plus: bool, header: str, bindings: dict[str, bytes], offered: bool, reason: str
) -> None:
    server = exchange(plus=plus, bindings=bindings, plus_offered=offered)
    error = failure(server.first, (header + "n=alice,r=abc").encode())
    assert error.kind is Failure.REFUSED and reason in error.reason


@pytest.mark.parametrize("bindings,offered", [({}, False), (EXPORTER, False), ({}, True)])
def test_y_is_fine_where_the_server_cannot_or_does_not_offer_binding(
    bindings: dict[str, bytes], offered: bool
) -> None:
    server = exchange(bindings=bindings, plus_offered=offered)
    got, expected = run(server, "y,,", "n=alice,r=abc")
    assert got == expected.encode()


def test_n_on_a_tls_connection_with_plain_scram_is_fine() -> None:
    """The client does not do channel binding at all (scramp, mutt)."""
    server = exchange(bindings=EXPORTER, plus_offered=True)
    got, expected = run(server, "n,,", "n=alice,r=abc")
    assert got == expected.encode()


# --- any input -------------------------------------------------------------------------

@settings(max_examples=300, deadline=None)
@given(first=st.binary(max_size=80), final=st.binary(max_size=80), plus=st.booleans())
def test_any_bytes_either_fail_cleanly_or_go_on(first: bytes, final: bytes, plus: bool) -> None:
    server = exchange(plus=plus, bindings=EXPORTER, plus_offered=True)
    try:
        server.first(first)
        server.final(final)
    except ScramFailed as error:
        assert error.reason
    else:  # pragma: no cover - a random proof cannot verify
        raise AssertionError("random bytes logged in")


@settings(max_examples=200, deadline=None)
@given(name=st.text(min_size=1, max_size=12))
def test_any_user_name_escaped_by_the_rules_round_trips(name: str) -> None:
    escaped = name.replace("=", "=3D").replace(",", "=2C")
    seen: list[str] = []
    server = ScramExchange(recorder(seen), server_nonce=lambda: SERVER_NONCE)
    try:
        server.first(f"n,,n={escaped},r=abc".encode("utf-8", "surrogatepass"))
    except ScramFailed as error:
        assert error.kind is Failure.MALFORMED  # SASLprep or UTF-8 refused it
    else:
        assert len(seen) == 1 and ("," in seen[0]) == ("," in name)
