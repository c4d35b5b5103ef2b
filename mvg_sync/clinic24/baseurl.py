"""Which Clinic24 base URLs may carry the client credentials: https, or http to a loopback host."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit


class InsecureBaseURL(ValueError):
    """The base URL would send the client secret in clear, or is not a usable URL at all."""


def is_loopback_host(host: str | None) -> bool:
    """127.0.0.0/8, ::1 or `localhost`; nothing else (a name that merely resolves there is not)."""
    if not host:
        return False
    host = host.strip("[]").lower().rstrip(".")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def base_url_host(url: str) -> str | None:
    """The host the URL really connects to: userinfo (`user:pass@`) and port stripped.

    `http://127.0.0.1:8024@clinic24.example.test` connects to clinic24.example.test; a naive
    split on ':' and '/' took it for the loopback sandbox.
    """
    try:
        return urlsplit(url.strip()).hostname
    except ValueError:
        return None


def is_loopback_url(url: str) -> bool:
    """True for an http(s) URL whose real host is loopback (the only place the sandbox runs)."""
    parts = urlsplit(url.strip())
    return parts.scheme in ("http", "https") and is_loopback_host(base_url_host(url))


def check_base_url(url: str) -> str:
    """Return the URL if credentials may be sent there, else raise InsecureBaseURL (one line).

    Clinic24's token endpoint takes the client secret in the request body, so plain http to
    anything but this machine would hand it to every hop on the way.
    """
    text = url.strip()
    try:
        parts = urlsplit(text)
        port = parts.port  # raises on a port that is not a number
    except ValueError:
        raise InsecureBaseURL(f"CLINIC24_BASE_URL {text!r} is not a valid URL") from None
    del port
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InsecureBaseURL(
            f"CLINIC24_BASE_URL {_shown(text)} is not an http(s) URL with a host; "
            "set it to Clinic24's https address"
        )
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        raise InsecureBaseURL(
            f"refusing plain http to {parts.hostname}: the client secret would travel unencrypted; "
            "set CLINIC24_BASE_URL to https:// (plain http is only for a loopback sandbox)"
        )
    if parts.username is not None or parts.password is not None:
        raise InsecureBaseURL(
            f"CLINIC24_BASE_URL must not hold user info before the host ({_shown(text)}); "
            "set it to Clinic24's https address"
        )
    return text


def _shown(url: str) -> str:
    """The URL without any user info, so a message never repeats a password typed into it."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(unparsable)"
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return parts._replace(netloc=netloc).geturl()
