"""Hostile documents built in the test, small on disk: one enormous whitespace-free text run inside a
.pptx or .docx (deflate shrinks it ~1000x), and plain text without whitespace."""

from __future__ import annotations

import io
import zipfile

_PIECE = b"Q" * (1 << 20)
_P = "http://schemas.openxmlformats.org/presentationml/2006/main"
_A = "http://schemas.openxmlformats.org/drawingml/2006/main"
_W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"


def _write_run(archive: zipfile.ZipFile, name: str, head: bytes, tail: bytes, run_mib: int) -> None:
    # Streamed into the archive a MiB at a time: the test never holds the inflated text.
    with archive.open(name, "w", force_zip64=True) as member:
        member.write(head)
        for _ in range(run_mib):
            member.write(_PIECE)
        member.write(tail)


def pptx_bomb(run_mib: int) -> bytes:
    """A one-slide .pptx whose slide holds one text run of ``run_mib`` MiB with no whitespace."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("ppt/presentation.xml", f'<p:presentation xmlns:p="{_P}"/>')
        head = f'<p:sld xmlns:p="{_P}" xmlns:a="{_A}"><p:cSld><p:spTree><p:sp><p:txBody><a:p><a:r><a:t>'
        tail = b"</a:t></a:r></a:p></p:txBody></p:sp></p:spTree></p:cSld></p:sld>"
        _write_run(archive, "ppt/slides/slide1.xml", head.encode(), tail, run_mib)
    return buffer.getvalue()


def docx_bomb(run_mib: int) -> bytes:
    """A .docx whose one paragraph is a text run of ``run_mib`` MiB with no whitespace."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(
            "[Content_Types].xml",
            '<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/'
            'package/2006/content-types"><Default Extension="rels" ContentType="application/'
            'vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" '
            'ContentType="application/xml"/><Override PartName="/word/document.xml" ContentType='
            '"application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>',
        )
        archive.writestr(
            "_rels/.rels",
            '<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/'
            'package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/'
            'officeDocument/2006/relationships/officeDocument" Target="word/document.xml"/></Relationships>',
        )
        head = f'<w:document xmlns:w="{_W}"><w:body><w:p><w:r><w:t>'.encode()
        _write_run(archive, "word/document.xml", head, b"</w:t></w:r></w:p></w:body></w:document>", run_mib)
    return buffer.getvalue()


def whitespace_free_text(mib: int) -> bytes:
    """``mib`` MiB of letters without one whitespace character (a few distinct tokens repeating)."""
    return b"abcdefgh" * (mib * (1 << 17))
