"""Providers declared in the environment: named OpenAI-compatible servers (Ollama, vLLM, ...).

`ASSISTANT_PROVIDERS=ollama,vllm` names them; each has `PROVIDER_<NAME>_*` variables (see
README, "Providers"). Keys stay in the environment: a provider names the variable that holds
its key, and an assistant stores only the provider's name. A bad value stops the site at
start-up with an error naming the variable.
"""

import re
from collections.abc import Mapping
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

# Built in: `simulator` always, `openai` from OPENAI_API_KEY.
RESERVED_NAMES = frozenset({"simulator", "openai"})
NAME = re.compile(r"[a-z][a-z0-9_]{0,49}")
VARIABLE_NAME = re.compile(r"[A-Z_][A-Z0-9_]*")
SETTINGS = ("BASE_URL", "API_KEY_ENV", "DEFAULT_MODEL", "LABEL", "TIMEOUT_SECONDS", "VISION")
# Settings of every provider at once, which look like a provider's own.
SHARED_VARIABLES = frozenset({"PROVIDER_TIMEOUT_SECONDS"})


def declared_providers(environ: Mapping[str, str]) -> dict[str, dict]:
    """The providers `ASSISTANT_PROVIDERS` declares, as entries of settings.ASSISTANT_PROVIDERS."""
    names = [name.strip() for name in environ.get("ASSISTANT_PROVIDERS", "").split(",")]
    names = [name for name in names if name]
    for name in names:
        if not NAME.fullmatch(name):
            raise ImproperlyConfigured(
                f"ASSISTANT_PROVIDERS: {name!r} is not a provider name "
                "(lower-case letters, digits and _, starting with a letter)."
            )
        if name in RESERVED_NAMES:
            raise ImproperlyConfigured(
                f"ASSISTANT_PROVIDERS: {name!r} is built in; choose another name "
                "(the openai provider comes from OPENAI_API_KEY and OPENAI_BASE_URL)."
            )
    if len(set(names)) != len(names):
        raise ImproperlyConfigured(f"ASSISTANT_PROVIDERS names a provider twice: {names}.")
    _refuse_stray_variables(environ, names)
    return {name: _provider(name, environ) for name in names}


def _prefix(name: str) -> str:
    return f"PROVIDER_{name.upper()}_"


def _refuse_stray_variables(environ: Mapping[str, str], names: list[str]) -> None:
    """A misspelt variable or provider name would otherwise be ignored without a word."""
    for variable in environ:
        if not variable.startswith("PROVIDER_") or variable in SHARED_VARIABLES:
            continue
        owner = next((name for name in names if variable.startswith(_prefix(name))), None)
        if owner and variable[len(_prefix(owner)) :] not in SETTINGS:
            known = ", ".join(_prefix(owner) + setting for setting in SETTINGS)
            raise ImproperlyConfigured(f"{variable} is not a provider setting; known: {known}.")
        if owner is None and variable.endswith(tuple("_" + setting for setting in SETTINGS)):
            raise ImproperlyConfigured(
                f"{variable} is set but ASSISTANT_PROVIDERS ({', '.join(names) or 'empty'}) "
                "does not declare its provider."
            )


def _provider(name: str, environ: Mapping[str, str]) -> dict:
    prefix = _prefix(name)

    def value(setting: str) -> str:
        return environ.get(prefix + setting, "").strip()

    return {
        "base_url": _base_url(prefix + "BASE_URL", value("BASE_URL")),
        "api_key": _api_key(prefix + "API_KEY_ENV", value("API_KEY_ENV"), environ),
        "api_key_env": value("API_KEY_ENV"),
        "label": value("LABEL") or name,
        "simulated": False,
        "default_model": value("DEFAULT_MODEL"),
        "timeout": _timeout(prefix + "TIMEOUT_SECONDS", value("TIMEOUT_SECONDS")),
        # A text-only server: messages with images are refused before they are sent.
        "vision": _vision(prefix + "VISION", value("VISION")),
    }


def _vision(variable: str, value: str) -> bool:
    if value not in ("", "0", "1"):
        raise ImproperlyConfigured(f"{variable} must be 0 or 1, not {value!r}.")
    return value != "0"


def _base_url(variable: str, url: str) -> str:
    if not url:
        raise ImproperlyConfigured(f"{variable} must be set, e.g. http://127.0.0.1:11434/v1.")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ImproperlyConfigured(
            f"{variable} must be an http(s) URL such as http://127.0.0.1:11434/v1, not {url!r}."
        )
    return url.rstrip("/")


def _api_key(variable: str, key_variable: str, environ: Mapping[str, str]) -> str:
    """The key from the variable `key_variable` names; none for servers that need none."""
    if not key_variable:
        return ""
    if not VARIABLE_NAME.fullmatch(key_variable):
        raise ImproperlyConfigured(
            # Not echoed: it may be the key itself, pasted in the wrong place.
            f"{variable} must be the name of the variable holding the key (upper case, e.g. "
            "VLLM_API_KEY), not the key itself."
        )
    key = environ.get(key_variable, "")
    if not key:
        raise ImproperlyConfigured(f"{variable} names {key_variable}, which is not set.")
    return key


def _timeout(variable: str, value: str) -> float | None:
    if not value:
        return None  # PROVIDER_TIMEOUT_SECONDS applies
    try:
        seconds = float(value)
    except ValueError:
        seconds = 0.0
    if seconds <= 0:
        raise ImproperlyConfigured(f"{variable} must be a positive number, not {value!r}.")
    return seconds
