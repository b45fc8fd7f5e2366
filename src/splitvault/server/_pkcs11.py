"""A key-encryption key held in a PKCS#11 token: an HSM, or SoftHSM2 for tests.

The key is an AES-256 secret key created inside the token as sensitive and
non-extractable; wrapping and unwrapping are C_Encrypt / C_Decrypt with CKM_AES_GCM
there, so the key never reaches this process. The wrapped format matches the file
key's (``kid || nonce || ciphertext || tag``), so a keyring routes by the first
8 bytes; the associated data uses another domain tag, so a blob made by one kind of
key never verifies under the other even if their ids collided.

The key is named by an RFC 7512 URI, for example
``pkcs11:token=sv;object=kek?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:hsm-pin.txt``.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shlex
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast

from .._errors import ConfigurationError, TamperedData
from ..crypto.encoding import encode
from ._pkcs11_uri import Pkcs11Uri, parse_pkcs11_uri

if TYPE_CHECKING:
    from pkcs11 import Session

__all__ = ["Pkcs11Kek", "Pkcs11Uri", "parse_pkcs11_uri"]

_KID_LEN = 8
#: 96 bits: the GCM IV length used as is, without GHASH derivation (SP 800-38D 8.2).
_NONCE_LEN = 12
#: The full GCM tag; shorter tags weaken forgery bounds for nothing here.
_TAG_BITS = 128
_TAG_LEN = _TAG_BITS // 8
#: Not the file key's ``splitvault/v1/kek-wrap``: the two formats never cross-verify.
_D_WRAP = b"splitvault/v1/pkcs11-kek-wrap"
_INSTALL_HINT = "PKCS#11 support needs python-pkcs11: pip install 'splitvault[hsm]'"


class _TokenKey(Protocol):
    """The part of python-pkcs11's SecretKey (a class built at run time) used here."""

    def __getitem__(self, key: Any) -> Any: ...
    def encrypt(self, data: bytes, **kwargs: Any) -> bytes: ...
    def decrypt(self, data: bytes, **kwargs: Any) -> bytes: ...
    def destroy(self) -> None: ...


_T = TypeVar("_T")

# Thread safety. python-pkcs11 calls C_Initialize(NULL), and with NULL arguments the
# PKCS#11 base specification (C_Initialize, CK_C_INITIALIZE_ARGS) lets a module assume
# it is never called from two threads at once. So every call into one module goes
# through one lock per module, shared by all keys on it. A GCM operation on a few
# dozen bytes takes well under a millisecond in SoftHSM2 and about one network round
# trip on a network HSM, so the server's thread pool queues only briefly here;
# throughput scales with server processes, each with its own session.
#
# One session per token, not per key: PKCS#11 login belongs to the token and the
# application, not to a session, so a second C_Login fails (USER_ALREADY_LOGGED_IN)
# and python-pkcs11's Session.close() calls C_Logout, which would log out every other
# key on the token. Keys on one token share one logged-in session, closed by the last
# key's wipe(). It is a read/write session because generate needs one; the PIN
# grants that anyway, so a read-only session would protect nothing.


class _Token:
    """The logged-in session shared by the keys on one token; ``generation`` counts
    re-logins, after which every key looks its object up again in the new session."""

    __slots__ = ("generation", "session", "users")

    def __init__(self) -> None:
        self.session: Session | None = None
        self.users = 0
        self.generation = 0


class _Module:
    __slots__ = ("lock", "tokens")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.tokens: dict[str, _Token] = {}


_MODULES: dict[str, _Module] = {}
_MODULES_LOCK = threading.Lock()
# A forked child (``serve --workers N`` forks after the parent checked the key) must
# initialize the library itself: PKCS#11 leaves a C_Initialize inherited across fork()
# undefined, and a network HSM's library shares its connection with the parent. So the
# first login in a child re-initializes (C_Finalize, C_Initialize) first.
_forked = threading.Event()
os.register_at_fork(after_in_child=_forked.set)


def _module(module_path: str) -> _Module:
    with _MODULES_LOCK:
        return _MODULES.setdefault(os.path.realpath(module_path), _Module())


def _binding() -> Any:
    try:
        import pkcs11
    except ImportError:
        raise ConfigurationError(_INSTALL_HINT) from None
    return pkcs11


def _attach(uri: Pkcs11Uri, module: _Module) -> _Token:
    """The token's shared session, logging in if no key holds it. Module lock held.

    A later key on a logged-in token reuses the login: its PIN is read (so a bad PIN
    file is refused whatever the order) but not presented again.
    """
    pin = uri.read_pin()
    token = module.tokens.setdefault(uri.token, _Token())
    if token.session is None:
        token.session = _login(uri, pin)
        token.generation += 1
    token.users += 1
    return token


def _detach(uri: Pkcs11Uri, module: _Module, token: _Token) -> None:
    token.users -= 1
    if token.users <= 0:
        if token.session is not None:
            _close_quietly(token.session)
        token.session = None
        module.tokens.pop(uri.token, None)


def _relogin(uri: Pkcs11Uri, token: _Token) -> None:
    """Replace a lost session (token restarted, network HSM reconnected)."""
    if token.session is not None:
        _close_quietly(token.session)
    token.session = None
    token.session = _login(uri, uri.read_pin())
    token.generation += 1


def _login(uri: Pkcs11Uri, pin: str) -> Session:
    """A new logged-in session on the URI's token."""
    p11 = _binding()
    if not os.path.isfile(uri.module_path):
        raise ConfigurationError(f"PKCS#11 module not found: {uri.module_path}")
    try:
        lib = p11.lib(uri.module_path)
        if _forked.is_set():
            _forked.clear()
            lib.reinitialize()
    except p11.PKCS11Error:
        raise ConfigurationError(
            f"cannot load PKCS#11 module {uri.module_path} (not a PKCS#11 library?)"
        ) from None
    try:
        token = lib.get_token(token_label=uri.token)
    except p11.NoSuchToken:
        raise ConfigurationError(
            f"no PKCS#11 token labelled {uri.token!r} in {uri.module_path}"
        ) from None
    except p11.MultipleTokensReturned:
        raise ConfigurationError(f"several PKCS#11 tokens are labelled {uri.token!r}") from None
    except p11.PKCS11Error as exc:
        raise _token_error(exc, f"cannot list the tokens of {uri.module_path}") from None
    try:
        return cast("Session", token.open(rw=True, user_pin=pin))
    except (p11.PinIncorrect, p11.PinLenRange, p11.PinInvalid):
        raise ConfigurationError(f"wrong PIN for PKCS#11 token {uri.token!r}") from None
    except p11.PinLocked:
        raise ConfigurationError(f"the PIN of PKCS#11 token {uri.token!r} is locked") from None
    except p11.PinExpired:
        raise ConfigurationError(f"the PIN of PKCS#11 token {uri.token!r} expired") from None
    except p11.UserAlreadyLoggedIn:
        # Logged in by other code in this process (not a Pkcs11Kek): share its login.
        return cast("Session", token.open(rw=True))
    except p11.PKCS11Error as exc:
        raise _token_error(exc, f"cannot log in to PKCS#11 token {uri.token!r}") from None


def _close_quietly(session: Session) -> None:
    # Best effort: a lost session is gone already.
    with contextlib.suppress(Exception):
        session.close()


def _token_error(exc: BaseException, what: str) -> ConfigurationError:
    # The binding's error class names the CKR_ code (PinIncorrect, DeviceError, ...).
    return ConfigurationError(f"{what}: {type(exc).__name__}")


def _find_key(session: Session, uri: Pkcs11Uri) -> tuple[_TokenKey, bytes]:
    """The one secret key with the URI's label (and id), and its id; checked usable."""
    p11 = _binding()
    template: dict[Any, Any] = {
        p11.Attribute.CLASS: p11.ObjectClass.SECRET_KEY, p11.Attribute.LABEL: uri.label
    }
    if uri.key_id is not None:
        template[p11.Attribute.ID] = uri.key_id
    found = list(session.get_objects(template))
    if not found:
        raise ConfigurationError(
            f"no secret key labelled {uri.label!r} in PKCS#11 token {uri.token!r}"
        )
    if len(found) > 1:
        raise ConfigurationError(
            f"{len(found)} secret keys are labelled {uri.label!r} in PKCS#11 token "
            f"{uri.token!r}; add id=<key id> to the URI"
        )
    key = cast(_TokenKey, found[0])
    kid = bytes(key[p11.Attribute.ID])
    if len(kid) != _KID_LEN:
        raise ConfigurationError(
            f"key {uri.label!r} has a {len(kid)}-byte CKA_ID; keys made by "
            f"'splitvault keys generate' have {_KID_LEN}"
        )
    if key[p11.Attribute.KEY_TYPE] != p11.KeyType.AES or key[p11.Attribute.VALUE_LEN] != 32:
        raise ConfigurationError(f"key {uri.label!r} is not an AES-256 key")
    if key[p11.Attribute.EXTRACTABLE] or not key[p11.Attribute.SENSITIVE]:
        raise ConfigurationError(
            f"key {uri.label!r} is extractable or not sensitive: its value could leave the token"
        )
    if not (key[p11.Attribute.ENCRYPT] and key[p11.Attribute.DECRYPT]):
        raise ConfigurationError(f"key {uri.label!r} may not encrypt and decrypt")
    return key, kid


def _key_template(p11: Any) -> dict[Any, Any]:
    """Least privilege: encrypt and decrypt only. DERIVE and WRAP stay off because a
    sensitive key that may derive or wrap can be turned into an extractable value."""
    a = p11.Attribute
    return {
        a.TOKEN: True, a.PRIVATE: True, a.SENSITIVE: True, a.EXTRACTABLE: False,
        a.ENCRYPT: True, a.DECRYPT: True, a.WRAP: False, a.UNWRAP: False, a.SIGN: False,
        a.VERIFY: False, a.DERIVE: False, a.MODIFIABLE: False,
    }


def _create_key(session: Session, uri: Pkcs11Uri) -> tuple[_TokenKey, bytes]:
    p11 = _binding()
    # Not atomic against a concurrent generate elsewhere; generating is an operator's
    # one-off step, and open() refuses a label that names several keys.
    if list(session.get_objects({p11.Attribute.LABEL: uri.label})):
        raise ConfigurationError(
            f"PKCS#11 token {uri.token!r} already has an object labelled {uri.label!r}; "
            "choose another object= label"
        )
    session.generate_key(
        p11.KeyType.AES, 256, id=secrets.token_bytes(_KID_LEN), label=uri.label, store=True,
        template=_key_template(p11),
    )
    return _find_key(session, uri)


def _as_uri(uri: str | Pkcs11Uri) -> Pkcs11Uri:
    return uri if isinstance(uri, Pkcs11Uri) else parse_pkcs11_uri(uri)


class Pkcs11Kek:
    """A key-encryption key inside a PKCS#11 token, with the same interface as ``Kek``."""

    __slots__ = ("_generation", "_key", "_module", "_token", "_uri", "kid")

    def __init__(self, uri: Pkcs11Uri, module: _Module, token: _Token, key: _TokenKey,
                 kid: bytes) -> None:
        self._uri = uri
        self._module = module
        self._token: _Token | None = token
        self._key: _TokenKey | None = key
        self._generation = token.generation
        self.kid = kid

    @classmethod
    def open(cls, uri: str | Pkcs11Uri) -> Pkcs11Kek:
        """The key the URI names; ``ConfigurationError`` if absent, ambiguous or unusable."""
        parsed = _as_uri(uri)
        return cls._attached(parsed, lambda session: _find_key(session, parsed))

    @classmethod
    def generate(cls, uri: str | Pkcs11Uri) -> Pkcs11Kek:
        """Create a sensitive, non-extractable AES-256 key in the token, labelled ``object``.

        Refuses if any object already has that label. The key id (CKA_ID) is 8 random
        bytes, so two keys never share the id a keyring routes by.
        """
        parsed = _as_uri(uri)
        if parsed.key_id is not None:
            raise ConfigurationError("generate chooses the key id itself; remove id= from the URI")
        return cls._attached(parsed, lambda session: _create_key(session, parsed))

    @classmethod
    def _attached(
        cls, uri: Pkcs11Uri, find: Callable[[Session], tuple[_TokenKey, bytes]]
    ) -> Pkcs11Kek:
        p11 = _binding()
        module = _module(uri.module_path)
        with module.lock:
            token = _attach(uri, module)
            try:
                if token.session is None:  # _attach just logged in
                    raise ConfigurationError("PKCS#11 session missing")
                key, kid = find(token.session)
            except p11.PKCS11Error as exc:
                _detach(uri, module, token)
                raise _token_error(exc, f"PKCS#11 token {uri.token!r} failed") from None
            except BaseException:
                _detach(uri, module, token)
                raise
        kek = cls(uri, module, token, key, kid)
        try:
            kek._check_mechanism()
        except BaseException:
            kek.wipe()
            raise
        return kek

    @property
    def kid_hex(self) -> str:
        return self.kid.hex()

    def describe(self) -> str:
        """The key's URI without any PIN."""
        return self._uri.describe()

    def __repr__(self) -> str:
        return f"<Pkcs11Kek id={self.kid_hex} {self.describe()}>"

    # -- wrapping ------------------------------------------------------------------------

    def wrap(self, purpose: str, row: str, secret: bytes | bytearray) -> bytes:
        """``kid || nonce || ciphertext || tag`` of ``secret``, encrypted inside the token."""
        # A random 96-bit IV per wrap: SP 800-38D 8.3 allows 2**32 of them per key;
        # a deployment wraps once per stored secret and rotates long before that.
        nonce = secrets.token_bytes(_NONCE_LEN)
        aad = self._aad(self.kid, purpose, row)
        # python-pkcs11 takes a bytearray for a stream of chunks, so this copies the
        # secret into bytes, which cannot be wiped (see the threat model).
        data = bytes(secret)
        sealed = self._call(lambda key: key.encrypt(data, **self._gcm(nonce, aad)))
        return self.kid + nonce + sealed

    def unwrap(self, purpose: str, row: str, blob: bytes) -> bytearray:
        """The secret; the caller wipes it. ``TamperedData`` if it was altered or moved,
        ``ConfigurationError`` if it was wrapped under another key."""
        kid = blob[:_KID_LEN]
        if not secrets.compare_digest(kid, self.kid):
            raise ConfigurationError(
                f"a stored value is wrapped under key id {kid.hex()}, "
                f"but the loaded key is {self.kid_hex}: wrong key?"
            )
        nonce = blob[_KID_LEN : _KID_LEN + _NONCE_LEN]
        sealed = bytes(blob[_KID_LEN + _NONCE_LEN :])
        if len(nonce) != _NONCE_LEN or len(sealed) < _TAG_LEN:
            raise TamperedData() from None
        aad = self._aad(kid, purpose, row)
        try:
            return bytearray(self._call(lambda key: key.decrypt(sealed, **self._gcm(nonce, aad))))
        except ConfigurationError:
            # Tokens report a tag mismatch differently (SoftHSM2: CKR_GENERAL_ERROR). If
            # a fresh wrap and unwrap succeeds the token is healthy, so the blob was bad.
            self._check_mechanism()
            raise TamperedData() from None

    @staticmethod
    def _aad(kid: bytes, purpose: str, row: str) -> bytes:
        return encode(_D_WRAP, kid, purpose.encode(), row.encode())

    @staticmethod
    def _gcm(nonce: bytes, aad: bytes) -> dict[str, Any]:
        p11 = _binding()
        return {
            "mechanism": p11.Mechanism.AES_GCM,
            "mechanism_param": p11.GCMParams(nonce, aad, _TAG_BITS),
        }

    def _check_mechanism(self) -> None:
        """Wrap and unwrap a random value: the token does CKM_AES_GCM with our IV."""
        probe = secrets.token_bytes(16)
        nonce = secrets.token_bytes(_NONCE_LEN)
        aad = self._aad(self.kid, "self-test", "")
        try:
            sealed = self._call(lambda key: key.encrypt(probe, **self._gcm(nonce, aad)))
            opened = self._call(lambda key: key.decrypt(sealed, **self._gcm(nonce, aad)))
        except ConfigurationError as exc:
            raise ConfigurationError(
                f"AES-GCM self-test with key {self._uri.label!r} failed ({exc}); the token "
                "must support CKM_AES_GCM with a caller-chosen 12-byte IV"
            ) from None
        if not secrets.compare_digest(opened, probe):
            raise ConfigurationError("the token's AES-GCM returned a wrong result")

    def _call(self, operation: Callable[[_TokenKey], _T]) -> _T:
        """Run one token operation under the module lock; a lost session is replaced
        once and the operation retried."""
        p11 = _binding()
        with self._module.lock:
            try:
                return self._run(p11, operation)
            except p11.PKCS11Error as exc:
                raise _token_error(exc, "the PKCS#11 token refused the operation") from None

    def _run(self, p11: Any, operation: Callable[[_TokenKey], _T]) -> _T:
        token = self._token
        if token is None:
            raise ConfigurationError("the key-encryption key was wiped")
        if token.session is None:  # an earlier re-login failed
            _relogin(self._uri, token)
        if self._generation != token.generation:
            self._find_again(token)
        try:
            return operation(self._usable_key())
        except (p11.SessionHandleInvalid, p11.SessionClosed, p11.DeviceRemoved,
                p11.TokenNotPresent, p11.UserNotLoggedIn, p11.ObjectHandleInvalid):
            _relogin(self._uri, token)
            self._find_again(token)
            return operation(self._usable_key())

    def _usable_key(self) -> _TokenKey:
        if self._key is None:
            raise ConfigurationError("the key-encryption key was wiped")
        return self._key

    def _find_again(self, token: _Token) -> None:
        if token.session is None:
            raise ConfigurationError("PKCS#11 session missing")
        key, kid = _find_key(token.session, self._uri)
        if not secrets.compare_digest(kid, self.kid):
            raise ConfigurationError(
                f"key {self._uri.label!r} now has id {kid.hex()}, not {self.kid_hex}"
            )
        self._key, self._generation = key, token.generation

    def destroy(self) -> None:
        """C_DestroyObject: delete the key from the token for good, then let go of it.
        Everything still wrapped under it is lost: ``keys retire --destroy`` calls this
        only after the store verified that nothing is."""
        try:
            self._call(lambda key: key.destroy())
        finally:
            self.wipe()

    def destroy_command(self) -> str:
        """How an operator deletes this key with OpenSC's pkcs11-tool (it asks for the
        PIN itself, so none appears here)."""
        u = self._uri
        return (f"pkcs11-tool --module {shlex.quote(u.module_path)} --token-label "
                f"{shlex.quote(u.token)} --login --delete-object --type secrkey "
                f"--id {self.kid_hex}")

    def wipe(self) -> None:
        """Let go of the key (it stays in the token); the last key on a token logs out.
        Later calls raise ``ConfigurationError``."""
        with self._module.lock:
            token, self._token, self._key = self._token, None, None
            if token is not None:
                _detach(self._uri, self._module, token)
