"""A provider's `file_search` citations as numbered links in the answer's Markdown.

OpenAI marks where an answer cites a file of the assistant's vector store: Responses with a
`file_citation` annotation at an index of the text, Assistants with a marker such as
"【4:0†source】" in it. Each becomes "[n]", numbered by first appearance, and a Markdown
reference definition "[n]: /knowledge/files/<file id>/" after the text makes it a link to our
copy of the document (served to those who may use the assistant). Pure translation: no
database here."""

from django.urls import reverse


def cite_responses(text: str, annotations) -> str:
    """Responses: a "[n]" at each `file_citation` annotation's index."""
    cited = [a for a in annotations or [] if getattr(a, "type", "") == "file_citation"]
    if not cited:
        return text
    numbers = _numbered(a.file_id for a in sorted(cited, key=lambda a: a.index))
    for annotation in sorted(cited, key=lambda a: a.index, reverse=True):
        at = max(0, min(len(text), annotation.index))
        text = f"{text[:at]} [{numbers[annotation.file_id]}]{text[at:]}"
    return _with_definitions(text, numbers)


def cite_assistants(text: str, annotations) -> str:
    """Assistants: each `file_citation` marker replaced by "[n]"."""
    cited = [a for a in annotations or [] if getattr(a, "type", "") == "file_citation"]
    if not cited:
        return text
    in_order = sorted(cited, key=lambda a: a.start_index)
    numbers = _numbered(a.file_citation.file_id for a in in_order)
    for annotation in sorted(cited, key=lambda a: a.start_index, reverse=True):
        number = numbers[annotation.file_citation.file_id]
        text = f"{text[: annotation.start_index]} [{number}]{text[annotation.end_index :]}"
    return _with_definitions(text, numbers)


def _numbered(file_ids) -> dict[str, int]:
    numbers: dict[str, int] = {}
    for file_id in file_ids:
        numbers.setdefault(file_id, len(numbers) + 1)
    return numbers


def _with_definitions(text: str, numbers: dict[str, int]) -> str:
    definitions = "\n".join(
        f"[{number}]: {reverse('knowledge-file', args=[file_id])}"
        for file_id, number in numbers.items()
    )
    return f"{text.rstrip()}\n\n{definitions}"
