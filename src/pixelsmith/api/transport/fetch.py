"""Downloading images that JSON edits name by http(s) URL, without becoming a proxy into the
server's own network (SSRF).

Off by default. When on: only http and https; every address the host resolves to must be
public (no private, loopback, link-local, multicast, reserved or unspecified address, unless
the operator allows private ones); plain-http connections go to the address that was checked,
so DNS cannot change between the check and the request (https keeps the name for TLS, and a
certificate for the name cannot be served by an internal address); redirects are followed by
hand, each hop checked again; the body is read up to the upload limit.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx

from pixelsmith.errors import InvalidRequestError, PayloadTooLargeError
from pixelsmith.service.inputs import MAX_UPLOAD_BYTES

MAX_REDIRECTS = 3
TIMEOUT_SECONDS = 15.0
TOTAL_SECONDS = 60.0


class ImageFetcher:
    def __init__(self, *, allow_private: bool = False, max_bytes: int = MAX_UPLOAD_BYTES) -> None:
        self.allow_private = allow_private
        self.max_bytes = max_bytes

    async def fetch(self, url: str, *, param: str) -> bytes:
        try:
            # One deadline for the whole download: a server trickling a byte at a time must
            # not hold the request for longer.
            return await asyncio.wait_for(self._fetch(url, param), TOTAL_SECONDS)
        except asyncio.TimeoutError:
            raise self._refused(param, "it took too long to download") from None
        except (ValueError, httpx.InvalidURL):  # unparsable URL, bad port
            raise self._refused(param, "the URL is malformed") from None

    async def _fetch(self, url: str, param: str) -> bytes:
        for _ in range(MAX_REDIRECTS + 1):
            target, headers = await self._checked_target(url, param)
            # trust_env=False: no proxy or .netrc from the server's environment.
            async with httpx.AsyncClient(
                timeout=TIMEOUT_SECONDS, follow_redirects=False, trust_env=False
            ) as client:
                try:
                    async with client.stream("GET", target, headers=headers) as response:
                        if response.is_redirect and "location" in response.headers:
                            url = urljoin(url, response.headers["location"])
                            continue
                        if response.status_code != 200:
                            raise self._refused(
                                param, f"the server answered {response.status_code}"
                            )
                        return await self._read(response, param)
                except httpx.HTTPError as exc:
                    raise self._refused(
                        param, f"it could not be downloaded ({type(exc).__name__})"
                    ) from None
        raise self._refused(param, f"more than {MAX_REDIRECTS} redirects")

    async def _read(self, response: httpx.Response, param: str) -> bytes:
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > self.max_bytes:
                raise PayloadTooLargeError(
                    f"Invalid '{param}': the image at the URL is over the "
                    f"{self.max_bytes // (1024 * 1024)} MB limit.",
                    param=param,
                )
            chunks.append(chunk)
        return b"".join(chunks)

    async def _checked_target(self, url: str, param: str) -> tuple[str, dict[str, str]]:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise self._refused(param, "only http and https URLs can be fetched")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                parts.hostname, port, type=socket.SOCK_STREAM
            )
        except socket.gaierror:
            raise self._refused(param, f"the host {parts.hostname} could not be resolved") from None
        addresses = [ipaddress.ip_address(info[4][0]) for info in infos]
        for address in addresses:
            if not self.allow_private and not address.is_global:
                raise self._refused(param, "it points to a private or local address")
        if parts.scheme == "https":
            return url, {}
        # Plain http: connect to the address just checked, and name the host in the header.
        pinned = addresses[0]
        host = f"[{pinned}]" if pinned.version == 6 else str(pinned)
        netloc = f"{host}:{port}"
        return urlunsplit(parts._replace(netloc=netloc)), {"host": parts.netloc.split("@")[-1]}

    @staticmethod
    def _refused(param: str, why: str) -> InvalidRequestError:
        return InvalidRequestError(
            f"Invalid '{param}': the image URL was refused: {why}.",
            param=param,
            code="invalid_image_url",
        )
