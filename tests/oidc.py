"""The test OpenID provider (tests/oidc_provider/) as a running process, and a person who
signs in at it: what a browser does between our site's redirect and its callback."""

import os
import re
import subprocess
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

ROOT = Path(__file__).resolve().parent.parent


def new_rsa_key() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


@dataclass
class Provider:
    url: str

    @property
    def issuer(self) -> str:
        return f"{self.url}/o"

    def set_user(self, username: str, password: str, groups: list[str], email: str = "") -> str:
        """Create or update one of the provider's people; their `sub`."""
        email = email or f"{username}@example.org"
        data = {"username": username, "password": password, "groups": groups, "email": email}
        return httpx.post(f"{self.url}/test/users/", json=data).raise_for_status().json()["sub"]

    def set_client(self, client_id: str, secret: str, redirect_uris: list[str],
                   post_logout_redirect_uris: list[str] = ()) -> None:  # fmt: skip
        data = {
            "client_id": client_id,
            "client_secret": secret,
            "redirect_uris": list(redirect_uris),
            "post_logout_redirect_uris": list(post_logout_redirect_uris),
        }
        httpx.post(f"{self.url}/test/clients/", json=data).raise_for_status()

    def browser(self) -> httpx.Client:
        """A person's browser at the provider: it keeps their session there."""
        return httpx.Client(follow_redirects=False, timeout=10)

    def sign_in(self, browser: httpx.Client, authorize_url: str, username: str,
                password: str) -> str:  # fmt: skip
        """Follow the site's redirect to the provider, sign in there, and return the address
        the provider sends the browser back to (the site's callback with code and state)."""
        login = browser.get(authorize_url)
        assert login.status_code == 302, login.text
        page = browser.get(self.url + login.headers["location"])
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)[1]
        next_url = parse_qs(urlsplit(login.headers["location"]).query)["next"][0]
        data = {"username": username, "password": password, "next": next_url,
                "csrfmiddlewaretoken": token}  # fmt: skip
        signed_in = browser.post(str(page.url), data=data)
        assert signed_in.status_code == 302, "the provider refused the password"
        back = browser.get(self.url + signed_in.headers["location"])
        assert back.status_code == 302, back.text
        return back.headers["location"]

    def signed_in_as(self, browser: httpx.Client) -> str | None:
        return browser.get(f"{self.url}/test/whoami/").json()["user"]


@contextmanager
def start_provider(tmp_path: Path):
    env = {
        **os.environ,
        "PROVIDER_RSA_KEY": new_rsa_key(),
        "PROVIDER_DATABASE": str(tmp_path / "provider.sqlite3"),
        "PYTHONUNBUFFERED": "1",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.oidc_provider.serve"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline()
        match = re.match(r"listening on (\d+)", line)
        if not match:
            raise RuntimeError(f"the test provider did not start: {line!r}")
        yield Provider(url=f"http://127.0.0.1:{match[1]}")
    finally:
        process.terminate()
        process.wait(timeout=10)
