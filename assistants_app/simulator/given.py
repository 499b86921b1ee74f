"""What a request gave the simulator besides the user's words: images, files and numbered
passages of an assistant's knowledge. The canned reply says what it was given and cites the
first passage, so the offline demo and the integration tests show attachments and citations
working end to end. It reads nothing in them but names and the first sentence of a passage."""

import re

PASSAGE = re.compile(r"^\[(\d+)\] (.+)\n(.+)", re.MULTILINE)
FILE_TEXT = re.compile(r'<file name="([^"]*)">.*?</file>', re.DOTALL)
IMAGE_PARTS = {"image_url", "input_image", "image_file"}


def describe(content, instructions: str = "", attachments=()) -> str:
    """A sentence on the files and a cited sentence from the passages, or ""."""
    images, files = 0, []
    for part in content if isinstance(content, list) else []:
        if not isinstance(part, dict):
            continue
        if part.get("type") in IMAGE_PARTS:
            images += 1
        elif part.get("type") == "input_file":
            files.append(str(part.get("filename") or "a file"))
        text = part.get("text")
        files += FILE_TEXT.findall(text if isinstance(text, str) else "")
    if isinstance(content, str):
        files += FILE_TEXT.findall(content)
    files += [f"file {a.get('file_id')}" for a in attachments if isinstance(a, dict)]
    sentences = []
    if images or files:
        things = ([f"{images} image{'s' if images > 1 else ''}"] if images else []) + [
            f"“{name}”" for name in files
        ]
        sentences.append(f"I was given {' and '.join(things)} with this message.")
    passage = PASSAGE.search(instructions or "")
    if passage:
        number, title, first_line = passage.groups()
        quote = first_line.split(". ")[0].strip()[:160]
        # The name in code: bare names like "guide.md" would be linked as web addresses.
        sentences.append(f"From `{title.strip()}`: “{quote}” [{number}].")
    return " ".join(sentences)


def without_file_text(text: str) -> str:
    """The user's words without the documents' text appended to them."""
    return FILE_TEXT.sub("", text).strip()
