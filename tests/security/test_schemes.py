"""Dovecot password schemes (verification by well-kept libraries), the
passwd-file reader and ``imapd user import-passwd`` end to end: imported
users log in over a real socket with imaplib."""

from __future__ import annotations

import base64
import hashlib
import imaplib
import os
import warnings
from pathlib import Path

import argon2
import bcrypt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imapd.accounts import schemes
from imapd.accounts.passwd_import import parse_dovecot_passwd
from imapd.core.model import Secret
from imapd.accounts.users import UserDatabase, UserDatabaseError, hasher_from_spec
from tests.security.helpers import secure_server
from tests.support.context import cheap_hasher
from tests.support.server import run_cli

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    try:
        import crypt as system_crypt
    except ImportError:  # Python >= 3.13
        import crypt_r as system_crypt  # type: ignore[import-not-found, no-redef]

# Known answers from Ulrich Drepper's "Unix crypt using SHA-256 and SHA-512"
# specification (the reference the libcrypt implementations follow).
SHA512_VECTOR = ("Hello world!", "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJu"
                 "esI68u4OTLiBFdcbYEdFCoEOfaS35inz1")
SHA256_VECTOR = ("Hello world!", "$5$saltstring$5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGWEc5")


def ssha512(password: bytes, salt: bytes) -> str:
    return base64.b64encode(hashlib.sha512(password + salt).digest() + salt).decode()


def sample_hashes(password: str) -> dict[str, str]:
    """One hash of ``password`` per scheme, made by the libraries directly."""
    pw = password.encode()
    return {
        "ARGON2ID": cheap_hasher().hash(pw),
        "BLF-CRYPT": bcrypt.hashpw(pw, bcrypt.gensalt(4)).decode().replace("$2b$", "$2y$"),
        "SHA512-CRYPT": system_crypt.crypt(password, "$6$rounds=5000$abcdefgh$"),
        "SHA256-CRYPT": system_crypt.crypt(password, "$5$abcdefgh$"),
        "SSHA512": ssha512(pw, os.urandom(8)),
        "PLAIN": password,
    }


def test_sha_crypt_known_answers() -> None:
    assert schemes.verify_sha512_crypt(SHA512_VECTOR[1], SHA512_VECTOR[0].encode())
    assert schemes.verify_sha256_crypt(SHA256_VECTOR[1], SHA256_VECTOR[0].encode())
    assert not schemes.verify_sha512_crypt(SHA512_VECTOR[1], b"Hello world")


@pytest.mark.parametrize("scheme", ["ARGON2ID", "BLF-CRYPT", "SHA512-CRYPT", "SHA256-CRYPT", "SSHA512", "PLAIN"])
def test_each_scheme_accepts_the_password_and_nothing_else(scheme: str) -> None:
    data = sample_hashes("pässword")[scheme]
    verify = schemes.VERIFIERS[scheme]
    assert verify(data, "pässword".encode())
    for wrong in (b"password", "pässword".encode() + b"x", b"", b"p\xe4ssword"):
        assert not verify(data, wrong)


def test_a_scheme_never_verifies_another_schemes_hash() -> None:
    """A {SHA512-CRYPT} label on a DES crypt() hash must not be checked with
    DES; bcrypt must not accept an SHA hash, and so on."""
    hashes = sample_hashes("secret")
    hashes["DES"] = system_crypt.crypt("secret", "ab") or ""
    for scheme, verify in schemes.VERIFIERS.items():
        for other, data in hashes.items():
            assert verify(data, b"secret") == (other == scheme), (scheme, other)


def test_bcrypt_uses_the_first_72_bytes_as_its_definition_says() -> None:
    long = b"x" * 72
    data = bcrypt.hashpw(long, bcrypt.gensalt(4)).decode()
    assert schemes.verify_bcrypt(data, long + b"ignored")  # no exception from bcrypt 5


@settings(max_examples=300, deadline=None)
@given(scheme=st.sampled_from(sorted(schemes.VERIFIERS)), data=st.text(max_size=120), password=st.binary(max_size=80))
def test_verifiers_never_raise_on_arbitrary_hashes(scheme: str, data: str, password: bytes) -> None:
    assert schemes.VERIFIERS[scheme](data, password) in (True, False)


@pytest.mark.parametrize("field,normalized", [
    ("{SHA512-CRYPT}" + SHA512_VECTOR[1], "{SHA512-CRYPT}" + SHA512_VECTOR[1]),
    ("{CRYPT}" + SHA512_VECTOR[1], "{SHA512-CRYPT}" + SHA512_VECTOR[1]),  # system crypt(): $6$
    (SHA256_VECTOR[1], "{SHA256-CRYPT}" + SHA256_VECTOR[1]),  # no scheme = CRYPT
    ("{cleartext}hello", "{PLAIN}hello"),
    ("{blf-crypt}$2y$04$" + "a" * 53, "{BLF-CRYPT}$2y$04$" + "a" * 53),
])
def test_password_fields_are_normalized(field: str, normalized: str) -> None:
    assert schemes.normalize_password_field(field) == normalized


@pytest.mark.parametrize("field,reason", [
    ("{CRYPT}abJnggxhB/yWI", "weak or unknown"),  # DES crypt
    ("$1$salt$qJH7.N4xYta3aEG/dfqo/0", "weak or unknown"),  # MD5 crypt
    ("{MD5-CRYPT}$1$salt$qJH7.N4xYta3aEG/dfqo/0", "unsupported password scheme {MD5-CRYPT}"),
    ("{SHA}qUqP5cyxm6YcTAhz05Hph5gvu9M=", "unsupported password scheme {SHA}"),
    ("{SHA512-CRYPT}$6$short", "malformed {SHA512-CRYPT}"),
    ("{SSHA512}" + base64.b64encode(b"x" * 64).decode(), "malformed {SSHA512}"),  # no salt
    ("{PLAIN}", "malformed {PLAIN}"),
])
def test_unsupported_or_weak_fields_are_refused_without_quoting_the_hash(field: str, reason: str) -> None:
    with pytest.raises(schemes.UnsupportedHash) as info:
        schemes.normalize_password_field(field)
    assert reason in str(info.value)
    hash_part = field.split("}")[-1]
    assert not hash_part or hash_part not in str(info.value)


def test_dovecot_file_reader_keeps_extra_fields_and_reports_line_numbers() -> None:
    text = (
        "# comment\n\n"
        "alice:{PLAIN}pw:1000:1000::/home/alice::userdb_quota_rule=*:storage=1G\n"
        "bob:{MD5-CRYPT}$1$x$y\n"
        "bad name:{PLAIN}x\n"
        "noseparator\n"
        "alice:{PLAIN}again\n"
    )
    entries, problems = parse_dovecot_passwd(text)
    assert [(e.name, e.password_field, e.extra) for e in entries] == [
        ("alice", "{PLAIN}pw", "1000:1000::/home/alice::userdb_quota_rule=*:storage=1G")]
    assert [n for n, _ in problems] == [4, 5, 6, 7]


def test_import_passwd_cli_then_every_scheme_logs_in_over_a_real_socket(tmp_path: Path) -> None:
    password = "correct horse"
    hashes = sample_hashes(password)
    lines = [f"user{i}:{{{scheme}}}{data}:1000:1000::/home/u{i}::" for i, (scheme, data) in enumerate(hashes.items())]
    lines += ["weak:{CRYPT}abJnggxhB/yWI", "alice:{PLAIN}not-replaced"]
    source = tmp_path / "dovecot.passwd"
    source.write_text("\n".join(lines) + "\n")
    with secure_server(tmp_path, {"alice": "wonderland"}, imaps=False) as server:
        data = str(server.data_dir)
        result = run_cli("user", "import-passwd", str(source), "--data", data, check=False)
        assert result.returncode == 1  # one line was refused
        assert f"{source}:{len(hashes) + 1}: skipped: crypt() hash in a weak" in result.stderr
        assert "alice: already exists, kept (use --replace)" in result.stderr
        assert "abJnggxhB" not in result.stderr + result.stdout
        assert f"imported {len(hashes)} user(s)" in result.stdout
        for i in range(len(hashes)):
            imap = imaplib.IMAP4(server.host, server.port)
            assert imap.login(f"user{i}", password)[0] == "OK"
            imap.logout()
            with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
                imaplib.IMAP4(server.host, server.port).login(f"user{i}", password + "!")
        assert imaplib.IMAP4(server.host, server.port).login("alice", "wonderland")[0] == "OK"
        # --replace takes the imported alice; extra Dovecot fields are kept.
        run_cli("user", "import-passwd", str(source), "--replace", "--data", data, check=False)
        assert imaplib.IMAP4(server.host, server.port).login("alice", "not-replaced")[0] == "OK"
        text = (server.data_dir / "users.passwd").read_text()
        assert ":1000:1000::/home/u0::" in text


def test_new_passwords_are_always_argon2id_even_for_imported_users(tmp_path: Path) -> None:
    db = UserDatabase.in_data_dir(tmp_path, hasher=cheap_hasher())
    db.import_entries(parse_dovecot_passwd("erin:{PLAIN}old\n")[0], replace_existing=False)
    assert db.verify("erin", Secret(b"old"))
    db.set_password("erin", Secret(b"new"))
    assert "erin:{ARGON2ID}$argon2id$" in (tmp_path / "users.passwd").read_text()
    assert db.verify("erin", Secret(b"new")) and not db.verify("erin", Secret(b"old"))


def test_argon2_cost_option(tmp_path: Path) -> None:
    assert argon2.extract_parameters(hasher_from_spec("t=2,m=16,p=1").hash(b"x")).memory_cost == 16
    with pytest.raises(UserDatabaseError):
        hasher_from_spec("t=0")
    with pytest.raises(UserDatabaseError):
        hasher_from_spec("memory=lots")
    run_cli("user", "add", "zed", "--password-stdin", "--argon2", "t=1,m=8,p=1",
            "--data", str(tmp_path), stdin="pw\n")
    field = (tmp_path / "users.passwd").read_text().split(":")[1]
    assert "$m=8,t=1,p=1$" in field
