"""File storage settings (local by default, an S3-compatible bucket through django-storages),
and the provider's file_search citations turned into numbered links."""

import json
import os
import subprocess
import sys
from types import SimpleNamespace

from assistants_app.engines.citations import cite_assistants, cite_responses

from ..live import ROOT

FILE_VARIABLES = ("FILE_STORAGE", "FILES_ROOT", "FILES_S3_BUCKET", "FILES_S3_ENDPOINT_URL")


def storages_under(**env) -> dict:
    code = (
        "import json; from chatsite import settings as s; "
        "print(json.dumps(s.STORAGES['default'], default=str))"
    )
    clean = {k: v for k, v in os.environ.items() if k not in FILE_VARIABLES}
    done = subprocess.run(
        [sys.executable, "-c", code], env={**clean, **env}, cwd=ROOT, capture_output=True,
        text=True, check=True,
    )  # fmt: skip
    return json.loads(done.stdout)


def test_files_are_local_by_default_and_in_a_private_bucket_with_s3():
    assert storages_under() == {"BACKEND": "django.core.files.storage.FileSystemStorage"}
    s3 = storages_under(
        FILE_STORAGE="s3", FILES_S3_BUCKET="chat-files", FILES_S3_ENDPOINT_URL="http://minio:9000"
    )
    assert s3["BACKEND"] == "storages.backends.s3.S3Storage"
    options = s3["OPTIONS"]
    assert (options["bucket_name"], options["endpoint_url"]) == ("chat-files", "http://minio:9000")
    assert options["default_acl"] is None and options["querystring_auth"] is True


def annotation(**fields):
    return SimpleNamespace(type="file_citation", **fields)


def test_responses_citations_become_numbered_links_by_first_appearance():
    text = "Water daily. Prune weekly. Feed monthly."
    cited = cite_responses(
        text,
        [
            annotation(file_id="file-b", filename="b.pdf", index=26),
            annotation(file_id="file-a", filename="a.pdf", index=12),
            annotation(file_id="file-a", filename="a.pdf", index=40),
            SimpleNamespace(type="url_citation", url="https://example.com"),
        ],
    )
    assert cited == (
        "Water daily. [1] Prune weekly. [2] Feed monthly. [1]\n\n"
        "[1]: /knowledge/files/file-a/\n[2]: /knowledge/files/file-b/"
    )
    assert cite_responses(text, []) == text


def test_assistants_citation_markers_are_replaced_by_numbers():
    text = "Water daily【4:0†guide.pdf】."
    start = text.index("【")
    cited = cite_assistants(
        text,
        [
            SimpleNamespace(
                type="file_citation",
                text="【4:0†guide.pdf】",
                start_index=start,
                end_index=start + len("【4:0†guide.pdf】"),
                file_citation=SimpleNamespace(file_id="file-g"),
            )
        ],
    )
    assert cited == "Water daily [1].\n\n[1]: /knowledge/files/file-g/"
