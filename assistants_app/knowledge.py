"""An assistant's knowledge: documents staff give it, cut into passages and searched in our
own database, so that an answer can quote them and cite them by number.

Search is the database's own full-text search, no extra service: PostgreSQL's
`websearch_to_tsquery`, ranked by `ts_rank_cd` over the passage and (weighted higher) its
heading, and SQLite's FTS5 with its porter stemmer, ranked by bm25. A question is rarely
worded like the passage that answers it, so both match passages holding any of its words and
rank those holding most of them, and the rarest, first. Providers with vector stores of their
own (`file_search`) search there instead (engines/openai_files.py); the passages are indexed
here all the same, so an assistant can move between providers.
"""

import logging
import re
from dataclasses import dataclass

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import connection

from . import files
from .db import database_sync_to_async
from .exceptions import FileRefused
from .models import Assistant, Citation, KnowledgeChunk, KnowledgeDocument, Run

log = logging.getLogger(__name__)

CHUNK_CHARS = 1200  # a passage: a few paragraphs, small enough that several fit a prompt
FTS_TABLE = "assistants_app_knowledgechunk_fts"
HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
ITEM_START = re.compile(r"\n(?=\s*(?:[-*+|]|\d+[.)])\s)")  # a list item or table row begins
WORD = re.compile(r"[^\W_]+")
# Words that say nothing about a passage (PostgreSQL drops its own list; FTS5 has none).
STOPWORDS = frozenset(
    """a about above after again all am an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from
    further had has have having he her here hers him his how i if in into is it its itself
    just me more most my no nor not now of off on once only or other our ours out over own
    same she should so some such than that the their theirs them then there these they this
    those through to too under until up very was we were what when where which while who whom
    why will with would you your yours""".split()
)


@dataclass(frozen=True)
class Passage:
    page: int | None
    heading: str
    text: str


# --- Adding documents -----------------------------------------------------------------


def add_document(assistant: Assistant, name: str, data: bytes) -> KnowledgeDocument:
    """Check, store, cut into passages and index a document for the assistant; FileRefused
    for a file that is not a readable document (nothing is stored then)."""
    checked = files.check(name, data)
    if checked.kind != "document":
        raise FileRefused(
            "KNOWLEDGE_NOT_DOCUMENT",
            f"“{checked.name}” is an image; knowledge is documents (PDF, DOCX, text, Markdown).",
        )
    document = KnowledgeDocument(
        assistant=assistant,
        name=checked.name,
        content_type=checked.content_type,
        size=len(data),
        pages=len(checked.pages) or None,
    )
    with files.stored_whole([document]):
        document.file.save(checked.name, ContentFile(data), save=False)
        document.save()
        KnowledgeChunk.objects.bulk_create(
            KnowledgeChunk(
                document=document, ordinal=n, page=p.page, heading=p.heading, text=p.text
            )
            for n, p in enumerate(passages(checked))
        )
    return document


def passages(checked: files.CheckedFile) -> list[Passage]:
    """A document cut into passages: a PDF page by page, text by its Markdown headings; each
    passage at most about CHUNK_CHARS, cut between paragraphs where it can be."""
    title = _title(checked.name)
    if checked.pages:
        return [
            Passage(number, title, piece)
            for number, text in enumerate(checked.pages, start=1)
            for piece in _pieces(text)
        ]
    result = []
    for heading, text in _sections(checked.text):
        label = f"{title} › {heading}" if heading else title
        result += [Passage(None, label, piece) for piece in _pieces(text)]
    return result


def _title(name: str) -> str:
    return re.sub(r"[_-]+", " ", name.rsplit(".", 1)[0]).strip() or name


def _sections(text: str) -> list[tuple[str, str]]:
    sections: list[tuple[str, list[str]]] = [("", [])]
    fenced = False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        match = None if fenced else HEADING.match(line)
        if match:
            sections.append((match.group(2), []))
        else:
            sections[-1][1].append(line)
    return [
        (heading, "\n".join(lines).strip())
        for heading, lines in sections
        if "".join(lines).strip() or heading
    ]


def _pieces(text: str) -> list[str]:
    text = text.strip()
    if not text:
        return []
    pieces, current = [], ""
    for paragraph in re.split(r"\n\s*\n", text):
        paragraph = paragraph.strip()
        while len(paragraph) > CHUNK_CHARS:
            # One long paragraph (a table, a list): cut before an item, else a sentence or a space.
            starts = [m.start() for m in ITEM_START.finditer(paragraph, 0, CHUNK_CHARS)]
            cut = starts[-1] if starts else -1
            if cut < CHUNK_CHARS // 2:
                cut = max(
                    paragraph.rfind(". ", 0, CHUNK_CHARS), paragraph.rfind(" ", 0, CHUNK_CHARS)
                )
            cut = cut + 1 if cut > CHUNK_CHARS // 2 else CHUNK_CHARS
            if current:
                pieces.append(current)
                current = ""
            pieces.append(paragraph[:cut].strip())
            paragraph = paragraph[cut:].strip()
        if current and len(current) + len(paragraph) + 2 > CHUNK_CHARS:
            pieces.append(current)
            current = ""
        current = f"{current}\n\n{paragraph}" if current else paragraph
    if current:
        pieces.append(current)
    return pieces


# --- Searching ------------------------------------------------------------------------


def search(assistant_id: int, question: str, limit: int = 3) -> list[KnowledgeChunk]:
    """The assistant's passages that best answer `question`, best first."""
    if connection.vendor == "postgresql":
        ids = _search_postgresql(assistant_id, question, limit)
    else:
        ids = _search_sqlite(assistant_id, question, limit)
    found = KnowledgeChunk.objects.select_related("document").in_bulk(ids)
    return [found[pk] for pk in ids if pk in found]


def _search_postgresql(assistant_id: int, question: str, limit: int) -> list[int]:
    # `search_vector` holds the heading (weight A) and the text (B) in English: a generated,
    # indexed column (see the migration), so no passage is parsed again at search time.
    # websearch_to_tsquery reads the question as people type searches ("quoted phrases",
    # -excluded words) and asks for all its words; `any_words` asks for any of them (unless
    # the question excludes some), and passages holding all of them rank first.
    sql = """
        WITH q AS (SELECT websearch_to_tsquery('english', %s) AS all_words)
        SELECT c.id FROM assistants_app_knowledgechunk c
        JOIN assistants_app_knowledgedocument d ON d.id = c.document_id, q,
        LATERAL (SELECT CASE WHEN strpos(all_words::text, '!') > 0 THEN all_words
                 ELSE to_tsquery('simple', replace(all_words::text, ' & ', ' | ')) END
                 AS any_words) w
        WHERE d.assistant_id = %s AND numnode(all_words) > 0 AND c.search_vector @@ any_words
        ORDER BY ts_rank_cd(c.search_vector, any_words, 1)
                 * CASE WHEN c.search_vector @@ all_words THEN 2 ELSE 1 END DESC, c.id
        LIMIT %s
    """
    with connection.cursor() as cursor:
        cursor.execute(sql, [question, assistant_id, limit])
        return [row[0] for row in cursor.fetchall()]


def _search_sqlite(assistant_id: int, question: str, limit: int) -> list[int]:
    terms = fts5_terms(question)
    if not terms:
        return []
    sql = f"""
        SELECT c.id FROM {FTS_TABLE} f
        JOIN assistants_app_knowledgechunk c ON c.id = f.rowid
        JOIN assistants_app_knowledgedocument d ON d.id = c.document_id
        WHERE {FTS_TABLE} MATCH %s AND d.assistant_id = %s
        ORDER BY bm25({FTS_TABLE}, 3.0, 1.0), c.id
        LIMIT %s
    """
    with connection.cursor() as cursor:
        cursor.execute(sql, [" OR ".join(terms), assistant_id, limit])
        return [row[0] for row in cursor.fetchall()]


def fts5_terms(question: str) -> list[str]:
    """The question's words as FTS5 strings: quoted, so that no word is read as an operator
    (NEAR, AND, a column name), without the words that say nothing."""
    words = dict.fromkeys(word.lower() for word in WORD.findall(question))
    return [f'"{word}"' for word in words if word not in STOPWORDS]


# --- Grounding a run ------------------------------------------------------------------

INTRODUCTION = (
    "Passages from the documents you were given follow, numbered. Answer from them where "
    "they are relevant and cite each passage you use by its number in square brackets, like "
    "[1]. If they do not hold the answer, say so."
)


def uses_vector_store(assistant: Assistant) -> bool:
    provider = settings.ASSISTANT_PROVIDERS.get(assistant.provider, {})
    return bool(provider.get("vector_stores")) and assistant.engine != "chat"


def nothing_to_search(assistant: Assistant) -> bool:
    """Known without a query: the assistant has no documents here to ground a run on (its
    version, read as the run was stored, says so; assistant_versions.values_of), or its
    provider searches its own vector store."""
    return uses_vector_store(assistant) or getattr(assistant, "has_documents", None) is False


def ground(run: Run, question: str) -> list[Citation]:
    """Find the passages for a run's question and number them as its sources; none for an
    assistant without documents or whose provider searches its own vector store."""
    assistant = run.thread.assistant
    if nothing_to_search(assistant):
        return []
    if getattr(assistant, "has_documents", None) is None and not assistant.documents.exists():
        return []  # not read with its version: asked
    chunks = search(assistant.pk, question, settings.KNOWLEDGE_PASSAGES)
    return Citation.objects.bulk_create(
        Citation(
            run=run,
            number=number,
            document=chunk.document,
            title=chunk.document.name,
            page=chunk.page,
            quote=chunk.text,
        )
        for number, chunk in enumerate(chunks, start=1)
    )


async def acontext_for(run: Run) -> str:
    """`context_for`, for async callers: no trip to a database thread for a run grounded
    here on no passage."""
    if getattr(run, "grounded_on", None) == 0:
        return ""
    return await database_sync_to_async(context_for)(run)


def context_for(run: Run) -> str:
    """The numbered passages a run answers from, as text for the model ("" for none)."""
    if getattr(run, "grounded_on", None) == 0:
        return ""  # grounded in this process, on no passage: nothing to read
    citations = Citation.objects.filter(run_id=run.pk).exclude(quote="")
    blocks = []
    for citation in citations:
        where = f", page {citation.page}" if citation.page else ""
        blocks.append(f"[{citation.number}] {citation.title}{where}\n{citation.quote}")
    return f"{INTRODUCTION}\n\n" + "\n\n".join(blocks) if blocks else ""


def with_context(instructions: str, context: str) -> str:
    return "\n\n".join(part for part in (instructions, context) if part)
