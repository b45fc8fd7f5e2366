"""RFC 7512 ``pkcs11:`` URIs naming a splitvault key-encryption key, and their PINs.

Only the attributes that name one secret key are accepted; a standard attribute we
cannot honour (``serial``, ``slot-id``, ...) is refused rather than ignored, since
ignoring it would widen the match. Messages name attributes, never a value that
could hold a PIN.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass, field
from urllib.parse import quote, unquote_to_bytes

from .._errors import ConfigurationError

__all__ = ["Pkcs11Uri", "parse_pkcs11_uri"]

#: The key id is CKA_ID, as long as the file key's id.
_KID_LEN = 8
#: A PIN file is a line of text; anything larger is the wrong file.
_MAX_PIN_FILE = 4096

# Section 2.3: unreserved, pk11-res-avail, plus "&" in the path or "/?|" in the query.
_RES_AVAIL = r":\[\]@!$'()*+,="
_PATH_VALUE = re.compile(rf"(?:[A-Za-z0-9\-._~{_RES_AVAIL}&]|%[0-9A-Fa-f]{{2}})*")
_QUERY_VALUE = re.compile(rf"(?:[A-Za-z0-9\-._~{_RES_AVAIL}/?|]|%[0-9A-Fa-f]{{2}})*")
_NAME = re.compile(r"[a-z][a-z0-9\-_]*")
_PATH_SAFE = "-._~:[]@!$'()*+,=&"
_QUERY_SAFE = "-._~:[]@!$'()*+,=/?|"
# Standard attributes we cannot honour: ignoring one would widen the match, so refuse.
_UNSUPPORTED = frozenset(
    {"manufacturer", "serial", "model", "library-manufacturer", "library-description",
     "library-version", "slot-description", "slot-manufacturer", "slot-id", "module-name"}
)


@dataclass(frozen=True, slots=True)
class Pkcs11Uri:
    """A parsed ``pkcs11:`` URI naming one secret key. ``repr`` never shows a PIN."""

    token: str
    label: str
    module_path: str
    key_id: bytes | None = None
    pin_source: str | None = None
    pin_value: str | None = field(default=None, repr=False)

    def describe(self) -> str:
        """The URI in canonical form without ``pin-value`` (``pin-source`` is only a path)."""
        path = [f"token={quote(self.token, _PATH_SAFE)}", f"object={quote(self.label, _PATH_SAFE)}"]
        if self.key_id is not None:
            path.append("id=" + "".join(f"%{b:02x}" for b in self.key_id))
        path.append("type=secret-key")
        query = [f"module-path={quote(self.module_path, _QUERY_SAFE)}"]
        if self.pin_source is not None:
            query.append(f"pin-source={quote(self.pin_source, _QUERY_SAFE)}")
        return "pkcs11:" + ";".join(path) + "?" + "&".join(query)

    def read_pin(self) -> str:
        """The user PIN: ``pin-value``, or the first line of the ``pin-source`` file."""
        if self.pin_value is not None:
            return self.pin_value
        if self.pin_source is None:  # parse_pkcs11_uri requires one of the two
            raise ConfigurationError("PKCS#11 URI has neither pin-source nor pin-value")
        return _read_pin_file(_pin_file_path(self.pin_source))


def parse_pkcs11_uri(uri: str) -> Pkcs11Uri:
    """Parse an RFC 7512 URI for a splitvault key; ``ConfigurationError`` says what is wrong.

    Path: ``token`` and ``object`` (required), ``id``, ``type=secret-key``. Query:
    ``module-path`` (required) and exactly one of ``pin-source=file:<path>`` or
    ``pin-value``. Values are percent-decoded. Messages name attributes, never values
    that could hold a PIN.
    """
    if uri[:7].lower() != "pkcs11:":
        raise ConfigurationError("a PKCS#11 URI starts with 'pkcs11:'")
    path, has_query, query = uri[7:].partition("?")
    attrs = _attributes(path, ";", _PATH_VALUE, "path")
    qattrs = _attributes(query, "&", _QUERY_VALUE, "query") if has_query and query else {}
    for name in attrs.keys() & qattrs.keys():
        raise ConfigurationError(f"PKCS#11 URI attribute {name!r} is in both path and query")
    attrs.update(qattrs)
    for name in attrs:
        if name in _UNSUPPORTED:
            raise ConfigurationError(f"PKCS#11 URI attribute {name!r} is not supported here")
        if name not in {"token", "object", "id", "type", "module-path", "pin-source",
                        "pin-value"}:
            raise ConfigurationError(f"unknown PKCS#11 URI attribute {name!r}")
    if "type" in attrs and attrs["type"] != b"secret-key":
        raise ConfigurationError("PKCS#11 URI: a key-encryption key has type=secret-key")
    for required in ("token", "object", "module-path"):
        if not attrs.get(required):
            raise ConfigurationError(f"PKCS#11 URI needs a non-empty {required!r} attribute")
    if ("pin-source" in attrs) == ("pin-value" in attrs):
        raise ConfigurationError("PKCS#11 URI needs exactly one of pin-source or pin-value")
    key_id = attrs.get("id")
    if key_id is not None and len(key_id) != _KID_LEN:
        raise ConfigurationError(
            f"PKCS#11 URI: id must be the {_KID_LEN}-byte key id, got {len(key_id)} bytes"
        )
    pin_source = _text(attrs, "pin-source")
    if pin_source is not None:
        _pin_file_path(pin_source)
    return Pkcs11Uri(
        token=_text(attrs, "token") or "",
        label=_text(attrs, "object") or "",
        module_path=_text(attrs, "module-path") or "",
        key_id=key_id,
        pin_source=pin_source,
        pin_value=_text(attrs, "pin-value"),
    )


def _attributes(part: str, sep: str, value_re: re.Pattern[str], where: str) -> dict[str, bytes]:
    attrs: dict[str, bytes] = {}
    if not part:
        return attrs
    for item in part.split(sep):
        name, has_value, value = item.partition("=")
        if not has_value or not _NAME.fullmatch(name):
            raise ConfigurationError(f"PKCS#11 URI: malformed {where} attribute (want name=value)")
        if name in attrs:
            raise ConfigurationError(f"PKCS#11 URI attribute {name!r} appears twice")
        if not value_re.fullmatch(value):
            raise ConfigurationError(
                f"PKCS#11 URI attribute {name!r} has a character that must be percent-encoded"
            )
        attrs[name] = unquote_to_bytes(value)
    return attrs


def _text(attrs: dict[str, bytes], name: str) -> str | None:
    raw = attrs.get(name)
    if raw is None:
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigurationError(f"PKCS#11 URI attribute {name!r} is not UTF-8") from None


def _pin_file_path(pin_source: str) -> str:
    if not pin_source.startswith("file:"):
        raise ConfigurationError("PKCS#11 URI: pin-source must be file:<path>")
    path = pin_source[5:]
    if path.startswith("//"):  # file://host/path (RFC 8089): only the local host
        host, slash, rest = path[2:].partition("/")
        if host not in ("", "localhost") or not slash:
            raise ConfigurationError("PKCS#11 URI: pin-source must name a local file")
        path = "/" + rest
    if not path:
        raise ConfigurationError("PKCS#11 URI: pin-source names no file")
    return path


def _read_pin_file(path: str) -> str:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        raise ConfigurationError(f"cannot read PIN file {path}: {exc.strerror}") from None
    try:
        # fstat the open file, not the name: no window for a swap between check and read.
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ConfigurationError(f"PIN file {path} is not a regular file")
        if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ConfigurationError(
                f"PIN file {path} is accessible by group or others; run: chmod 600 {path}"
            )
        raw = os.read(fd, _MAX_PIN_FILE + 1)
    finally:
        os.close(fd)
    if len(raw) > _MAX_PIN_FILE:
        raise ConfigurationError(f"PIN file {path} is too large to be a PIN file")
    raw = raw.removesuffix(b"\n").removesuffix(b"\r")
    if not raw or b"\n" in raw:
        raise ConfigurationError(f"PIN file {path} must hold the PIN on one line")
    try:
        return raw.decode("utf-8")  # a str, as python-pkcs11 takes it: it cannot be wiped
    except UnicodeDecodeError:
        raise ConfigurationError(f"PIN file {path} is not UTF-8") from None
