"""Real documents made by the tests (text, markdown, PDF, docx) and a vector-store poller."""

from __future__ import annotations

import io
import time

import docx
from fpdf import FPDF
from openai import OpenAI
from openai.types import VectorStore

FILLER = (
    "Quarterly planning covers budgets, hiring, and the roadmap for the platform team. "
    "Meetings happen on Tuesdays and notes are shared with every department afterwards. "
)


def text_document(phrase: str, paragraphs: int = 3) -> bytes:
    return (FILLER * paragraphs + "\n\n" + phrase + "\n\n" + FILLER).encode()


def markdown_document(title: str, phrase: str) -> bytes:
    return f"# {title}\n\n## Details\n\n- {phrase}\n- {FILLER}\n".encode()


def pdf_document(phrase: str) -> bytes:
    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("Helvetica", size=12)
    pdf.multi_cell(0, 8, FILLER, new_x="LMARGIN", new_y="NEXT")
    pdf.multi_cell(0, 8, phrase, new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


def docx_document(phrase: str) -> bytes:
    document = docx.Document()
    document.add_heading("Handbook", level=1)
    document.add_paragraph(FILLER)
    document.add_paragraph(phrase)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def wait_for_store(client: OpenAI, vector_store_id: str, timeout_s: float = 30.0) -> VectorStore:
    """Poll until the store has no file in progress (the SDK has no vector_stores.create_and_poll)."""
    deadline = time.monotonic() + timeout_s
    while True:
        store = client.vector_stores.retrieve(vector_store_id)
        if store.status != "in_progress" or time.monotonic() > deadline:
            return store
        time.sleep(0.05)
