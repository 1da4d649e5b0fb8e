"""Text of binary document formats: PDF (pypdf), docx (python-docx), pptx (stdlib zip + XML).

Every parser here meets hostile or merely broken files, and each library signals breakage with
many exception types (pypdf alone raises PdfReadError, ValueError, KeyError, struct.error, zlib.error
... on malformed input). So each entry point catches ``Exception`` and turns it into ``InvalidFile``:
the file's ``last_error.code`` is then ``invalid_file``, not a crash of the ingestion job.
"""

from __future__ import annotations

import io
import posixpath
import re
import zipfile
from collections.abc import Iterator
from typing import TYPE_CHECKING
from xml.etree import ElementTree

from threadline.domain.errors import InvalidFile

if TYPE_CHECKING:
    from docx.table import Table

# pypdf and python-docx (with lxml) take ~200 ms to import; they are imported on the first PDF or
# .docx so that importing threadline.retrieval stays cheap for the API and CLI.

# OpenAI's per-file limit is 512 MB; an office file whose XML inflates past
# that is a zip bomb, not a document.
MAX_UNZIPPED_BYTES = 512 * 1024 * 1024

_NS = {
    "a": "http://schemas.openxmlformats.org/drawingml/2006/main",
    "p": "http://schemas.openxmlformats.org/presentationml/2006/main",
    "r": "http://schemas.openxmlformats.org/officeDocument/2006/relationships",
    "rel": "http://schemas.openxmlformats.org/package/2006/relationships",
}
_A_PARAGRAPH = f"{{{_NS['a']}}}p"
_A_TEXT = f"{{{_NS['a']}}}t"
_SLIDE_NAME = re.compile(r"ppt/slides/slide(\d+)\.xml")


def pdf_text(data: bytes, filename: str) -> str:
    """Text of every page, pages separated by a blank line. A scanned PDF yields ``""`` (no OCR)."""
    from pypdf import PasswordType, PdfReader

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and reader.decrypt("") == PasswordType.NOT_DECRYPTED:
            # Owner-password-only PDFs open with the empty user password; others cannot be read.
            raise InvalidFile(f"File '{filename}' is a password-protected PDF.")
        return "\n\n".join(page.extract_text() for page in reader.pages)
    except InvalidFile:
        raise
    except Exception as exc:  # see the module docstring
        raise InvalidFile(f"File '{filename}' is not a readable PDF: {_reason(exc)}") from exc


def docx_text(data: bytes, filename: str) -> str:
    """Paragraphs and tables of the body, in document order; table cells separated by tabs."""
    import docx
    from docx.table import Table

    _check_zip(data, filename)
    try:
        document = docx.Document(io.BytesIO(data))
        blocks: list[str] = []
        for block in document.iter_inner_content():
            blocks.append(_table_text(block) if isinstance(block, Table) else block.text)
        return "\n".join(blocks)
    except Exception as exc:  # see the module docstring
        raise InvalidFile(f"File '{filename}' is not a readable .docx file: {_reason(exc)}") from exc


def _table_text(table: Table) -> str:
    rows: list[str] = []
    for row in table.rows:
        cells: list[str] = []
        previous: object = None
        for cell in row.cells:
            # A merged cell is returned once per grid column it spans; keep its text once.
            if cell._tc is not previous:
                cells.append(cell.text)
            previous = cell._tc
        rows.append("\t".join(cells))
    return "\n".join(rows)


def pptx_text(data: bytes, filename: str) -> str:
    """Text of every slide in presentation order, slides separated by a blank line.

    Parsed with the stdlib rather than python-pptx, which would add Pillow and XlsxWriter to the
    server's dependencies to read ``<a:t>`` elements. ElementTree does not fetch external entities,
    and the bundled expat (>= 2.4.1) refuses billion-laughs expansion.
    """
    _check_zip(data, filename)
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            slides = [_slide_text(archive.read(name)) for name in _slide_names(archive)]
    except Exception as exc:  # see the module docstring
        raise InvalidFile(f"File '{filename}' is not a readable .pptx file: {_reason(exc)}") from exc
    return "\n\n".join(slide for slide in slides if slide)


def _slide_text(xml: bytes) -> str:
    root = ElementTree.fromstring(xml)
    paragraphs: list[str] = []
    for paragraph in root.iter(_A_PARAGRAPH):
        text = "".join(run.text or "" for run in paragraph.iter(_A_TEXT))
        if text:
            paragraphs.append(text)
    return "\n".join(paragraphs)


def _slide_names(archive: zipfile.ZipFile) -> list[str]:
    """Slide part names in the order ``presentation.xml`` lists them; if that cannot be read, by
    number (``slide2.xml`` before ``slide10.xml``)."""
    names = set(archive.namelist())
    if "ppt/presentation.xml" not in names:
        raise ValueError("it has no ppt/presentation.xml part")
    try:
        ordered = list(_listed_slides(archive))
    except (KeyError, ElementTree.ParseError):
        ordered = []
    if ordered and all(name in names for name in ordered):
        return ordered
    numbered = [(int(match[1]), name) for name in names if (match := _SLIDE_NAME.fullmatch(name))]
    return [name for _, name in sorted(numbered)]


def _listed_slides(archive: zipfile.ZipFile) -> Iterator[str]:
    presentation = ElementTree.fromstring(archive.read("ppt/presentation.xml"))
    relationships = ElementTree.fromstring(archive.read("ppt/_rels/presentation.xml.rels"))
    targets = {
        rel.get("Id"): rel.get("Target", "") for rel in relationships.iter(f"{{{_NS['rel']}}}Relationship")
    }
    for slide_id in presentation.iterfind("p:sldIdLst/p:sldId", _NS):
        target = targets.get(slide_id.get(f"{{{_NS['r']}}}id"), "")
        # Targets are relative to ppt/ unless absolute ("/ppt/slides/slide1.xml").
        yield target.lstrip("/") if target.startswith("/") else posixpath.normpath(f"ppt/{target}")


def _check_zip(data: bytes, filename: str) -> None:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            inflated = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, ValueError) as exc:
        raise InvalidFile(f"File '{filename}' is not a valid Office Open XML (zip) file.") from exc
    # Declared sizes can lie, but zipfile stops reading a member at its declared size and fails the
    # CRC check, so a lie cannot inflate more than this either.
    if inflated > MAX_UNZIPPED_BYTES:
        raise InvalidFile(f"File '{filename}' expands to more than {MAX_UNZIPPED_BYTES} bytes.")


def _reason(exc: Exception) -> str:
    return str(exc) or type(exc).__name__
