"""The PKCS#11 key-encryption key, against a SoftHSM2 token made for this module.

Skipped when SoftHSM2 or python-pkcs11 is missing, unless SPLITVAULT_REQUIRE_HSM=1
(as in CI), where a missing HSM is a failure.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import splitvault as sv
from splitvault.server import Kek
from splitvault.server._keysource import KeySource, generate_key_source, load_key_source
from splitvault.server._pkcs11 import Pkcs11Kek
from splitvault.server._pkcs11_uri import Pkcs11Uri, parse_pkcs11_uri

# One process holds the SoftHSM2 library (it reads SOFTHSM2_CONF once, at C_Initialize).
pytestmark = pytest.mark.xdist_group("pkcs11")

_MODULE_CANDIDATES = (
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
    "/opt/homebrew/lib/softhsm/libsofthsm2.so",
)
PIN = "1234"


def _unavailable(reason: str) -> None:
    if os.environ.get("SPLITVAULT_REQUIRE_HSM") == "1":
        pytest.fail(f"SPLITVAULT_REQUIRE_HSM=1 but {reason}", pytrace=False)
    pytest.skip(reason)


def _module_path() -> str | None:
    env = os.environ.get("SPLITVAULT_TEST_PKCS11_MODULE")
    candidates = (env,) if env else _MODULE_CANDIDATES
    return next((p for p in candidates if os.path.isfile(p)), None)


@dataclass
class Hsm:
    module: str
    root: Path

    def uri(self, label: str, *, pin: str = PIN, extra: str = "") -> str:
        return f"pkcs11:token=sv;object={label}?module-path={self.module}&pin-value={pin}{extra}"

    def session(self) -> Any:
        """A session of our own, to look at the token beside the code under test."""
        import pkcs11

        token = pkcs11.lib(self.module).get_token(token_label="sv")
        try:
            return token.open(rw=True, user_pin=PIN)
        except pkcs11.UserAlreadyLoggedIn:
            return token.open(rw=True)


@pytest.fixture(scope="module")
def hsm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hsm]:
    try:
        import pkcs11
    except ImportError:
        _unavailable("python-pkcs11 is not installed (pip install 'splitvault[hsm]')")
    module = _module_path()
    util = shutil.which("softhsm2-util")
    if module is None or util is None:
        where = os.environ.get("SPLITVAULT_TEST_PKCS11_MODULE")
        _unavailable(f"SPLITVAULT_TEST_PKCS11_MODULE={where} is not a file" if where and util
                     else "SoftHSM2 is not installed (apt-get install softhsm2)")
    assert module is not None and util is not None
    root = tmp_path_factory.mktemp("softhsm")
    (root / "tokens").mkdir()
    conf = root / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {root / 'tokens'}\nobjectstore.backend = file\n"
                    "log.level = ERROR\n")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SOFTHSM2_CONF", str(conf))
        subprocess.run(
            [util, "--init-token", "--free", "--label", "sv", "--pin", PIN, "--so-pin", "5678"],
            check=True, capture_output=True,
        )
        lib = pkcs11.lib(module)
        lib.reinitialize()  # in case an earlier module loaded it under another config
        yield Hsm(module, root)
        lib.finalize()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def keys() -> Iterator[list[KeySource]]:
    """Keys a test opens; wiped afterwards, so each test leaves the token logged out."""
    opened: list[KeySource] = []
    yield opened
    for key in opened:
        key.wipe()


def _label() -> str:
    return f"kek-{secrets.token_hex(4)}"


# -- URIs (no HSM needed) -----------------------------------------------------------------

MOD = "/usr/lib/softhsm/libsofthsm2.so"


@pytest.mark.parametrize(
    "uri, expected",
    [
        (f"pkcs11:token=sv;object=kek?module-path={MOD}&pin-value=1234",
         Pkcs11Uri("sv", "kek", MOD, pin_value="1234")),
        (f"PKCS11:object=kek;token=sv;type=secret-key?pin-source=file:hsm-pin.txt&module-path={MOD}",
         Pkcs11Uri("sv", "kek", MOD, pin_source="file:hsm-pin.txt")),
        ("pkcs11:token=My%20HSM;object=k%C3%A9k%3B1;id=%00%01%02%03%04%05%06%ff"
         "?module-path=/opt/v%20x/lib.so&pin-source=file:///etc/sv/pin",
         Pkcs11Uri("My HSM", "kék;1", "/opt/v x/lib.so", key_id=bytes([0, 1, 2, 3, 4, 5, 6, 255]),
                   pin_source="file:///etc/sv/pin")),
        (f"pkcs11:token=a&b;object=x=y?module-path={MOD}&pin-value=%26%3F",
         Pkcs11Uri("a&b", "x=y", MOD, pin_value="&?")),
    ],
)
def test_uri_vectors(uri: str, expected: Pkcs11Uri) -> None:
    """RFC 7512 URIs parse, percent-decoded, in any attribute order."""
    assert parse_pkcs11_uri(uri) == expected


@pytest.mark.parametrize(
    "uri, message",
    [
        ("pkcs12:token=sv", "starts with 'pkcs11:'"),
        (f"pkcs11:object=kek?module-path={MOD}&pin-value=1", "'token'"),
        (f"pkcs11:token=sv?module-path={MOD}&pin-value=1", "'object'"),
        ("pkcs11:token=sv;object=kek?pin-value=1", "'module-path'"),
        (f"pkcs11:token=sv;object=kek?module-path={MOD}", "exactly one of pin-source"),
        (f"pkcs11:token=sv;object=kek?module-path={MOD}&pin-value=1&pin-source=file:p",
         "exactly one of pin-source"),
        (f"pkcs11:token=sv;token=x;object=kek?module-path={MOD}&pin-value=1", "twice"),
        (f"pkcs11:token=sv;object=kek;type=cert?module-path={MOD}&pin-value=1", "secret-key"),
        (f"pkcs11:token=sv;object=kek;id=%01%02?module-path={MOD}&pin-value=1", "8-byte"),
        (f"pkcs11:token=sv;object=kek;serial=42?module-path={MOD}&pin-value=1", "not supported"),
        ("pkcs11:token=sv;object=kek?module-name=softhsm2&pin-value=1", "not supported"),
        (f"pkcs11:token=sv;object=kek;x-vendor=1?module-path={MOD}&pin-value=1", "unknown"),
        (f"pkcs11:token=sv;object=k%zz?module-path={MOD}&pin-value=1", "percent-encoded"),
        (f"pkcs11:token=sv;object=a/b?module-path={MOD}&pin-value=1", "percent-encoded"),
        (f"pkcs11:token=sv;object=k%ff?module-path={MOD}&pin-value=1", "not UTF-8"),
        (f"pkcs11:token=sv;;object=kek?module-path={MOD}&pin-value=1", "malformed path"),
        (f"pkcs11:token=sv;object=kek?module-path={MOD}&s3cr3t", "malformed query"),
        (f"pkcs11:token=sv;object=kek?module-path={MOD}&pin-source=env:PIN", "file:<path>"),
        (f"pkcs11:token=sv;object=kek?module-path={MOD}&pin-source=file://host/p", "local"),
        (f"pkcs11:token=sv;object=kek?token=x&module-path={MOD}&pin-value=1", "both"),
    ],
)
def test_uri_must_fail(uri: str, message: str) -> None:
    """Malformed or unsupported URIs raise ConfigurationError naming what is wrong."""
    with pytest.raises(sv.ConfigurationError, match=message):
        parse_pkcs11_uri(uri)


def test_uri_errors_and_description_never_show_the_pin() -> None:
    """No message, repr or describe() carries a pin-value."""
    pin = "s3cr3t-9876"
    for uri in (f"pkcs11:token=sv;object=k%zz?module-path={MOD}&pin-value={pin}",
                f"pkcs11:token=sv;object=k?module-path={MOD}&pin-value={pin}&{pin}",
                f"pkcs11:{pin}?pin-value={pin}"):
        with pytest.raises(sv.ConfigurationError) as info:
            parse_pkcs11_uri(uri)
        assert pin not in str(info.value)
    parsed = parse_pkcs11_uri(f"pkcs11:token=sv;object=kek?module-path={MOD}&pin-value={pin}")
    assert pin not in repr(parsed) and pin not in parsed.describe()
    assert parse_pkcs11_uri(parsed.describe() + "&pin-value=1").label == "kek"


def test_describe_round_trips() -> None:
    """describe() is itself a valid URI for the same key."""
    parsed = parse_pkcs11_uri("pkcs11:token=My%20HSM;object=k%C3%A9k%3B1;id=%00%01%02%03%04%05"
                              "%06%ff?module-path=/opt/v%20x/lib.so&pin-source=file:p%26q")
    again = parse_pkcs11_uri(parsed.describe())
    assert again == parsed


def test_missing_binding_says_which_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without python-pkcs11 the error says to install splitvault[hsm]."""
    monkeypatch.setitem(sys.modules, "pkcs11", None)
    with pytest.raises(sv.ConfigurationError, match=r"splitvault\[hsm\]"):
        Pkcs11Kek.open(f"pkcs11:token=sv;object=kek?module-path={MOD}&pin-value=1")


# -- the token ----------------------------------------------------------------------------


def test_generate_then_open(hsm: Hsm, keys: list[KeySource]) -> None:
    """generate makes a key whose CKA_ID is the kid; open finds it by label."""
    uri = hsm.uri(_label())
    made = Pkcs11Kek.generate(uri)
    keys.append(made)
    opened = Pkcs11Kek.open(uri)
    keys.append(opened)
    assert len(made.kid) == 8 and opened.kid == made.kid and opened.kid_hex == made.kid.hex()
    assert opened.unwrap("p", "r", made.wrap("p", "r", b"secret")) == b"secret"
    assert PIN not in repr(opened) and "pin" not in opened.describe()
    by_id = Pkcs11Kek.open(uri.replace("?", f";id=%{'%'.join(f'{b:02x}' for b in made.kid)}?"))
    keys.append(by_id)
    assert by_id.kid == made.kid


def test_generate_refuses_existing_label(hsm: Hsm, keys: list[KeySource]) -> None:
    """A second generate under the same label is refused; the first key still opens."""
    uri = hsm.uri(_label())
    keys.append(Pkcs11Kek.generate(uri))
    with pytest.raises(sv.ConfigurationError, match="already has an object labelled"):
        Pkcs11Kek.generate(uri)


def test_open_missing_key_or_token(hsm: Hsm) -> None:
    """A label or token that is not there is a clear ConfigurationError."""
    with pytest.raises(sv.ConfigurationError, match="no secret key labelled"):
        Pkcs11Kek.open(hsm.uri("nothing-here"))
    with pytest.raises(sv.ConfigurationError, match="no PKCS#11 token labelled 'nope'"):
        Pkcs11Kek.open(hsm.uri("k").replace("token=sv", "token=nope"))


def test_bad_module_path(hsm: Hsm, tmp_path: Path) -> None:
    """A missing or non-PKCS#11 module path is a ConfigurationError naming it."""
    with pytest.raises(sv.ConfigurationError, match="module not found"):
        Pkcs11Kek.open(f"pkcs11:token=sv;object=k?module-path={tmp_path}/no.so&pin-value=1")
    (tmp_path / "bad.so").write_bytes(b"not a library")
    with pytest.raises(sv.ConfigurationError, match="cannot load PKCS#11 module"):
        Pkcs11Kek.open(f"pkcs11:token=sv;object=k?module-path={tmp_path}/bad.so&pin-value=1")


def test_wrap_round_trip(hsm: Hsm, keys: list[KeySource]) -> None:
    """wrap/unwrap round-trips bytes and bytearrays, empty included; nonces differ."""
    kek = Pkcs11Kek.generate(hsm.uri(_label()))
    keys.append(kek)
    for secret in (b"", b"x", bytearray(secrets.token_bytes(32)), secrets.token_bytes(1000)):
        blob = kek.wrap("oprf-key", "card-1", secret)
        assert blob[:8] == kek.kid and len(blob) == 8 + 12 + len(secret) + 16
        out = kek.unwrap("oprf-key", "card-1", blob)
        assert isinstance(out, bytearray) and out == secret
    assert kek.wrap("p", "r", b"s")[8:20] != kek.wrap("p", "r", b"s")[8:20]


def test_binding_to_purpose_and_row(hsm: Hsm, keys: list[KeySource]) -> None:
    """A blob moved to another purpose or row fails as TamperedData."""
    kek = Pkcs11Kek.generate(hsm.uri(_label()))
    keys.append(kek)
    blob = kek.wrap("share", "card-1", b"share bytes")
    for purpose, row in (("share", "card-2"), ("oprf-key", "card-1"), ("sharec", "ard-1")):
        with pytest.raises(sv.TamperedData):
            kek.unwrap(purpose, row, blob)


def test_any_flipped_byte_is_tampering(hsm: Hsm, keys: list[KeySource]) -> None:
    """Flipping any byte of nonce, ciphertext or tag, or truncating, gives TamperedData;
    a flipped key-id byte names another key (ConfigurationError), as with the file key."""
    kek = Pkcs11Kek.generate(hsm.uri(_label()))
    keys.append(kek)
    blob = kek.wrap("p", "r", b"0123456789")
    for i in range(len(blob)):
        bad = bytearray(blob)
        bad[i] ^= 0x01
        expected = sv.ConfigurationError if i < 8 else sv.TamperedData
        with pytest.raises(expected) as info:
            kek.unwrap("p", "r", bytes(bad))
        assert info.value.__cause__ is None
    for cut in (8, 19, 20, 35, len(blob) - 1):
        with pytest.raises(sv.TamperedData):
            kek.unwrap("p", "r", blob[:cut])
    assert kek.unwrap("p", "r", blob) == b"0123456789"  # the session survived it all


def test_file_key_and_hsm_key_refuse_each_other(hsm: Hsm, keys: list[KeySource]) -> None:
    """A file-key blob given to the HSM key names the other key id, and vice versa;
    even under the same kid, the domain tags keep the two formats apart."""
    hsm_kek = Pkcs11Kek.generate(hsm.uri(_label()))
    file_kek = Kek.generate()
    keys.extend([hsm_kek, file_kek])
    with pytest.raises(sv.ConfigurationError, match="wrapped under key id"):
        hsm_kek.unwrap("p", "r", file_kek.wrap("p", "r", b"s"))
    with pytest.raises(sv.ConfigurationError, match="wrapped under key id"):
        file_kek.unwrap("p", "r", hsm_kek.wrap("p", "r", b"s"))
    same_kid = Kek(hsm_kek.kid, bytearray(32))
    keys.append(same_kid)
    with pytest.raises(sv.TamperedData):
        same_kid.unwrap("p", "r", hsm_kek.wrap("p", "r", b"s"))
    with pytest.raises(sv.TamperedData):
        hsm_kek.unwrap("p", "r", same_kid.wrap("p", "r", b"s"))


def test_key_is_not_extractable(hsm: Hsm, keys: list[KeySource]) -> None:
    """The key is sensitive, never extractable, and encrypt/decrypt only: its value
    cannot be read, and it cannot wrap or derive."""
    import pkcs11
    from pkcs11 import Attribute, ObjectClass

    label = _label()
    keys.append(Pkcs11Kek.generate(hsm.uri(label)))
    session = hsm.session()
    try:
        (key,) = session.get_objects({Attribute.CLASS: ObjectClass.SECRET_KEY,
                                      Attribute.LABEL: label})
        with pytest.raises(pkcs11.AttributeSensitive):
            key[Attribute.VALUE]
        assert key[Attribute.EXTRACTABLE] is False and key[Attribute.NEVER_EXTRACTABLE] is True
        assert key[Attribute.SENSITIVE] is True and key[Attribute.ALWAYS_SENSITIVE] is True
        assert key[Attribute.TOKEN] is True and key[Attribute.PRIVATE] is True
        assert key[Attribute.ENCRYPT] is True and key[Attribute.DECRYPT] is True
        for power in (Attribute.WRAP, Attribute.UNWRAP, Attribute.DERIVE, Attribute.SIGN):
            assert key[power] is False
        assert key[Attribute.VALUE_LEN] == 32
    finally:
        session.close()


def test_extractable_key_is_refused(hsm: Hsm) -> None:
    """open() refuses a key made outside splitvault that could leave the token."""
    from pkcs11 import Attribute, KeyType

    label = _label()
    session = hsm.session()
    try:
        session.generate_key(KeyType.AES, 256, id=b"\x01" * 8, label=label, store=True,
                             template={Attribute.EXTRACTABLE: True, Attribute.SENSITIVE: False})
    finally:
        session.close()
    with pytest.raises(sv.ConfigurationError, match="extractable"):
        Pkcs11Kek.open(hsm.uri(label))


def test_wrong_pin(hsm: Hsm, keys: list[KeySource]) -> None:
    """A wrong PIN is a ConfigurationError that does not contain the PIN."""
    uri = hsm.uri(_label())
    Pkcs11Kek.generate(uri).wipe()  # wiped: the token is logged out again
    wrong = "98765"
    with pytest.raises(sv.ConfigurationError, match="wrong PIN for PKCS#11 token 'sv'") as info:
        Pkcs11Kek.open(hsm.uri("k", pin=wrong))
    assert wrong not in str(info.value) and PIN not in str(info.value)
    keys.append(Pkcs11Kek.open(uri))  # the right PIN still works afterwards


def test_pin_source_file(hsm: Hsm, keys: list[KeySource], tmp_path: Path) -> None:
    """pin-source=file: reads the PIN (trailing newline stripped) from a 0600 file and
    refuses one that group or others can read."""
    pin_file = tmp_path / "hsm-pin.txt"
    pin_file.write_text(PIN + "\n")
    pin_file.chmod(0o600)
    uri = hsm.uri(_label()).replace(f"pin-value={PIN}", f"pin-source=file:{pin_file}")
    keys.append(Pkcs11Kek.generate(uri))
    assert str(pin_file) in keys[0].describe()
    pin_file.chmod(0o644)
    with pytest.raises(sv.ConfigurationError, match=f"chmod 600 {pin_file}"):
        Pkcs11Kek.open(uri)
    with pytest.raises(sv.ConfigurationError, match="cannot read PIN file"):
        Pkcs11Kek.open(uri.replace("hsm-pin.txt", "absent.txt"))


def test_two_keys_on_one_token(hsm: Hsm, keys: list[KeySource]) -> None:
    """Keys share the token's login: wiping one leaves the other working."""
    first = Pkcs11Kek.generate(hsm.uri(_label()))
    second = Pkcs11Kek.generate(hsm.uri(_label()))
    keys.append(second)
    blob = second.wrap("p", "r", b"s")
    first.wipe()
    assert second.unwrap("p", "r", blob) == b"s"
    with pytest.raises(sv.ConfigurationError, match="wiped"):
        first.wrap("p", "r", b"s")


def test_concurrent_wrap_unwrap(hsm: Hsm, keys: list[KeySource]) -> None:
    """8 threads wrapping and unwrapping at once all get their own secrets back."""
    kek = Pkcs11Kek.generate(hsm.uri(_label()))
    keys.append(kek)
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def work(n: int) -> None:
        try:
            start.wait()
            for i in range(50):
                secret = f"{n}-{i}".encode() * 3
                row = f"row-{n}-{i}"
                if kek.unwrap("p", row, kek.wrap("p", row, secret)) != secret:
                    raise AssertionError("wrong secret back")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_key_source_dispatch(hsm: Hsm, keys: list[KeySource], tmp_path: Path) -> None:
    """load/generate_key_source pick the HSM for pkcs11: URIs and a file otherwise;
    both satisfy KeySource, and neither replaces an existing key."""
    uri = hsm.uri(_label())
    made = generate_key_source(uri)
    keys.append(made)
    loaded = load_key_source(uri)
    keys.append(loaded)
    assert isinstance(loaded, Pkcs11Kek) and loaded.kid == made.kid
    path = tmp_path / "k.key"
    file_key = generate_key_source(str(path))
    keys.append(file_key)
    assert isinstance(file_key, Kek) and file_key.describe() == str(path)
    assert load_key_source(str(path)).kid == file_key.kid
    for spec in (uri, str(path)):
        with pytest.raises(sv.ConfigurationError, match="already"):
            generate_key_source(spec)
    for key in (loaded, file_key):
        assert isinstance(key, KeySource)


def test_lost_session_is_replaced(hsm: Hsm, keys: list[KeySource]) -> None:
    """If the token drops the session (an HSM restart), the next call logs in again and
    still unwraps what was wrapped before."""
    kek = Pkcs11Kek.generate(hsm.uri(_label()))
    keys.append(kek)
    blob = kek.wrap("p", "r", b"kept")
    # Reaching into the shared session is the only way to make SoftHSM2 drop it.
    kek._token.session.close()  # type: ignore[union-attr]
    assert kek.unwrap("p", "r", blob) == b"kept"
    assert kek.unwrap("p", "r", kek.wrap("p", "r", b"new")) == b"new"
