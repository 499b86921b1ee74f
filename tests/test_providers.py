"""Providers declared in the environment, and the clear start-up errors for bad values."""

import os
import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured

from chatsite.providers import declared_providers

from .live import ROOT


def test_it_declares_nothing_by_default():
    assert declared_providers({}) == {}


def test_it_reads_each_declared_provider():
    environ = {
        "ASSISTANT_PROVIDERS": "ollama, vllm",
        "PROVIDER_OLLAMA_BASE_URL": "http://127.0.0.1:11434/v1/",
        "PROVIDER_OLLAMA_DEFAULT_MODEL": "llama3.2",
        "PROVIDER_VLLM_BASE_URL": "http://gpu-box:8000/v1",
        "PROVIDER_VLLM_API_KEY_ENV": "VLLM_API_KEY",
        "PROVIDER_VLLM_LABEL": "vLLM on the GPU box",
        "PROVIDER_VLLM_TIMEOUT_SECONDS": "120",
        "PROVIDER_VLLM_VISION": "0",
        "VLLM_API_KEY": "token-abc123",
    }

    assert declared_providers(environ) == {
        "ollama": {
            "base_url": "http://127.0.0.1:11434/v1",
            "api_key": "",
            "api_key_env": "",
            "label": "ollama",
            "simulated": False,
            "default_model": "llama3.2",
            "timeout": None,
            "vision": True,
        },
        "vllm": {
            "base_url": "http://gpu-box:8000/v1",
            "api_key": "token-abc123",
            "api_key_env": "VLLM_API_KEY",
            "label": "vLLM on the GPU box",
            "simulated": False,
            "default_model": "",
            "timeout": 120.0,
            "vision": False,  # a text-only server: images are refused before sending
        },
    }


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"ASSISTANT_PROVIDERS": "Ollama"}, "ASSISTANT_PROVIDERS: 'Ollama'"),
        ({"ASSISTANT_PROVIDERS": "lm-studio"}, "ASSISTANT_PROVIDERS: 'lm-studio'"),
        ({"ASSISTANT_PROVIDERS": "openai"}, "ASSISTANT_PROVIDERS: 'openai' is built in"),
        ({"ASSISTANT_PROVIDERS": "ollama,ollama",
          "PROVIDER_OLLAMA_BASE_URL": "http://127.0.0.1:11434/v1"}, "names a provider twice"),
        ({"ASSISTANT_PROVIDERS": "ollama"}, "PROVIDER_OLLAMA_BASE_URL must be set"),
        ({"ASSISTANT_PROVIDERS": "ollama", "PROVIDER_OLLAMA_BASE_URL": "127.0.0.1:11434"},
         "PROVIDER_OLLAMA_BASE_URL must be an http(s) URL"),
        ({"ASSISTANT_PROVIDERS": "vllm", "PROVIDER_VLLM_BASE_URL": "http://h:8000/v1",
          "PROVIDER_VLLM_API_KEY_ENV": "VLLM_API_KEY"},
         "PROVIDER_VLLM_API_KEY_ENV names VLLM_API_KEY, which is not set"),
        ({"ASSISTANT_PROVIDERS": "vllm", "PROVIDER_VLLM_BASE_URL": "http://h:8000/v1",
          "PROVIDER_VLLM_TIMEOUT_SECONDS": "soon"},
         "PROVIDER_VLLM_TIMEOUT_SECONDS must be a positive number"),
        ({"ASSISTANT_PROVIDERS": "vllm", "PROVIDER_VLLM_BASE_URL": "http://h:8000/v1",
          "PROVIDER_VLLM_TIMEOUT_SECONDS": "-1"},
         "PROVIDER_VLLM_TIMEOUT_SECONDS must be a positive number"),
        ({"ASSISTANT_PROVIDERS": "ollama", "PROVIDER_OLLAMA_BASE_URL": "http://h:11434/v1",
          "PROVIDER_OLLAMA_BASEURL": "http://h:11434/v1"},
         "PROVIDER_OLLAMA_BASEURL is not a provider setting"),
        ({"ASSISTANT_PROVIDERS": "olama", "PROVIDER_OLAMA_BASE_URL": "http://h:11434/v1",
          "PROVIDER_OLLAMA_BASE_URL": "http://h:11434/v1"},
         "PROVIDER_OLLAMA_BASE_URL is set but ASSISTANT_PROVIDERS (olama) does not declare"),
    ],
)  # fmt: skip
def test_it_names_the_variable_with_a_bad_value(environ, named):
    with pytest.raises(ImproperlyConfigured) as raised:
        declared_providers(environ)

    assert named in str(raised.value)


def test_it_leaves_the_shared_provider_timeout_alone():
    environ = {
        "ASSISTANT_PROVIDERS": "timeout",
        "PROVIDER_TIMEOUT_BASE_URL": "http://127.0.0.1:11434/v1",
        "PROVIDER_TIMEOUT_SECONDS": "10",
    }

    assert declared_providers(environ)["timeout"]["timeout"] is None
    assert declared_providers({"PROVIDER_TIMEOUT_SECONDS": "10"}) == {}


def test_it_does_not_echo_a_key_pasted_in_place_of_a_variable_name():
    environ = {
        "ASSISTANT_PROVIDERS": "gateway",
        "PROVIDER_GATEWAY_BASE_URL": "https://gateway.example/v1",
        "PROVIDER_GATEWAY_API_KEY_ENV": "sk-live-secret",
    }

    with pytest.raises(ImproperlyConfigured) as raised:
        declared_providers(environ)

    assert "PROVIDER_GATEWAY_API_KEY_ENV must be the name of the variable" in str(raised.value)
    assert "sk-live-secret" not in str(raised.value)


def test_the_site_refuses_to_start_with_a_bad_provider():
    environ = {**os.environ, "ASSISTANT_PROVIDERS": "ollama"}
    environ.pop("PROVIDER_OLLAMA_BASE_URL", None)

    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
    )

    assert result.returncode != 0
    assert "PROVIDER_OLLAMA_BASE_URL must be set" in result.stderr


def test_the_site_offers_declared_providers_next_to_the_built_in_ones():
    environ = {
        **os.environ,
        "ASSISTANT_PROVIDERS": "ollama",
        "PROVIDER_OLLAMA_BASE_URL": "http://127.0.0.1:11434/v1",
    }
    code = "from django.conf import settings; print(sorted(settings.ASSISTANT_PROVIDERS))"

    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=ROOT, env=environ, capture_output=True, text=True, check=True,
    )  # fmt: skip

    assert "'ollama'" in result.stdout and "'simulator'" in result.stdout
