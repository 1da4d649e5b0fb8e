from __future__ import annotations

import io
import os
import random
import zipfile

import docx
import pptx
import pytest
from fpdf import FPDF
from pypdf import PdfReader, PdfWriter

from threadline.domain.errors import InvalidFile, ThreadlineError, UnsupportedFile
from threadline.retrieval import documents
from threadline.retrieval.extract import extract_text, file_extension, html_text

PHRASE = "periwinkle zeppelin quorum 4711"


def make_pdf(pages: list[str]) -> bytes:
    pdf = FPDF()
    pdf.set_font("Helvetica", size=12)
    for text in pages:
        pdf.add_page()
        pdf.multi_cell(0, 10, text)
    return bytes(pdf.output())


def make_docx() -> bytes:
    document = docx.Document()
    document.add_heading("Quarterly report", level=1)
    document.add_paragraph(f"The secret phrase is {PHRASE}.")
    table = document.add_table(rows=2, cols=3)
    table.cell(0, 0).text = "region"
    table.cell(0, 1).text = "revenue"
    table.cell(0, 2).text = "note"
    table.cell(1, 0).text = "north"
    table.cell(1, 1).text = "42"
    table.cell(1, 2).text = "table-only-marker"
    merged = table.cell(0, 1).merge(table.cell(0, 2))
    merged.text = "merged-header"
    document.add_paragraph("closing paragraph")
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def make_pptx(titles: list[str]) -> bytes:
    presentation = pptx.Presentation()
    for title in titles:
        slide = presentation.slides.add_slide(presentation.slide_layouts[1])
        slide.shapes.title.text = title
        slide.placeholders[1].text = f"body of {title}"
    buffer = io.BytesIO()
    presentation.save(buffer)
    return buffer.getvalue()


# --- plain text -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        f"héllo {PHRASE}".encode(),
        b"\xef\xbb\xbf" + f"héllo {PHRASE}".encode(),
        f"héllo {PHRASE}".encode("utf-16"),  # with BOM
        b"\xfe\xff" + f"héllo {PHRASE}".encode("utf-16-be"),
        f"hello {PHRASE}".encode("utf-16-le"),  # no BOM: Windows-style
        f"hello {PHRASE}".encode("utf-16-be"),
    ],
)
def test_text_encodings(data: bytes) -> None:
    text = extract_text(data, "notes.txt")
    assert PHRASE in text
    assert not text.startswith("\ufeff")


@pytest.mark.parametrize(
    "filename",
    ["a.md", "b.json", "c.csv", "d.py", "e.ts", "f.CPP", "g.cs", "h.java", "i.rb", "j.sh", "k.tex"],
)
def test_text_like_extensions(filename: str) -> None:
    assert extract_text(f"// {PHRASE}\n".encode(), filename) == f"// {PHRASE}\n"


def test_newlines_are_normalised() -> None:
    assert extract_text(b"one\r\ntwo\rthree\n", "x.txt") == "one\ntwo\nthree\n"


def test_undecodable_text_with_a_known_extension_is_invalid() -> None:
    with pytest.raises(InvalidFile) as caught:
        extract_text("caf\xe9".encode("latin-1"), "menu.txt")
    assert caught.value.code == "invalid_file"
    assert isinstance(caught.value, ThreadlineError)


def test_binary_that_decodes_is_still_refused() -> None:
    with pytest.raises(InvalidFile):
        extract_text(b"abc\x00def", "data.json")
    with pytest.raises(InvalidFile):
        extract_text(bytes(range(1, 32)) * 10, "x.txt")


def test_unknown_extension_text_is_accepted() -> None:
    assert extract_text(PHRASE.encode(), "server.log.old") == PHRASE
    assert extract_text(PHRASE.encode(), "Makefile") == PHRASE


@pytest.mark.parametrize("filename", ["photo.png", "archive.zip", "blob", "x.exe"])
def test_unknown_extension_binary_is_unsupported(filename: str) -> None:
    garbage = random.Random(7).randbytes(4096)
    with pytest.raises(UnsupportedFile) as caught:
        extract_text(garbage, filename)
    assert caught.value.code == "unsupported_file"


@pytest.mark.parametrize("filename", ["old.doc", "deck.ppt", "sheet.xlsx"])
def test_unreadable_office_formats_are_unsupported(filename: str) -> None:
    with pytest.raises(UnsupportedFile, match="not supported for retrieval"):
        extract_text(b"irrelevant", filename)


def test_file_extension() -> None:
    assert file_extension("Report.PDF") == "pdf"
    assert file_extension("archive.tar.gz") == "gz"
    assert file_extension(".bashrc") == ""
    assert file_extension("README") == ""


# --- HTML ---------------------------------------------------------------------------------------


def test_html_visible_text_only() -> None:
    markup = f"""<!doctype html><html><head><title>Page title</title>
    <style>.hidden {{ color: red }}</style><script>var secret = "script-marker";</script></head>
    <body><h1>Heading</h1><p>First   paragraph with&nbsp;entities &amp; {PHRASE}.</p>
    <!-- comment-marker --><noscript>noscript-marker</noscript>
    <template><p>template-marker</p></template>
    <table><tr><td>cell one</td><td>cell two</td></tr></table>
    <pre>  keep
      spacing</pre><p>last<br/>line</p></body></html>"""
    text = extract_text(markup.encode(), "page.html")
    assert PHRASE in text
    assert "Page title" in text
    assert "Page title\nHeading\nFirst paragraph with\xa0entities & " in text
    for hidden in ("script-marker", "color: red", "comment-marker", "noscript-marker", "template-marker"):
        assert hidden not in text
    assert "cell one\tcell two" in text
    assert "  keep\n      spacing" in text  # <pre> keeps its spacing
    assert "last\nline" in text


def test_malformed_html_falls_back_to_dropping_tags() -> None:
    text = html_text(f"<p>{PHRASE}</p><![foo[ bar ]]><script>x()</script>")
    assert PHRASE in text
    assert "x()" not in text


def test_stray_end_tags_do_not_hide_text() -> None:
    assert html_text("</script></noscript><p>visible</p>") == "visible"


# --- PDF ----------------------------------------------------------------------------------------


def test_pdf_finds_a_phrase_on_a_later_page() -> None:
    data = make_pdf(["Cover page", "Nothing here", f"Appendix: {PHRASE}"])
    text = extract_text(data, "report.pdf")
    assert PHRASE in text
    assert text.index("Cover page") < text.index(PHRASE)


def test_pdf_with_an_owner_password_only_is_read() -> None:
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(make_pdf([PHRASE]))))
    writer.encrypt(user_password="", owner_password="owner", algorithm="RC4-128")
    buffer = io.BytesIO()
    writer.write(buffer)
    assert PHRASE in extract_text(buffer.getvalue(), "locked.pdf")


def test_pdf_with_a_user_password_is_invalid() -> None:
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(make_pdf([PHRASE]))))
    writer.encrypt(user_password="secret", algorithm="RC4-128")
    buffer = io.BytesIO()
    writer.write(buffer)
    with pytest.raises(InvalidFile, match="password-protected"):
        extract_text(buffer.getvalue(), "locked.pdf")


@pytest.mark.parametrize(
    "data", [b"", b"not a pdf at all", b"%PDF-1.7\n1 0 obj << /Type /Catalog", os.urandom(2048)]
)
def test_broken_pdf_is_invalid(data: bytes) -> None:
    with pytest.raises(InvalidFile):
        extract_text(data, "broken.pdf")


# --- docx / pptx --------------------------------------------------------------------------------


def test_docx_paragraphs_and_tables_in_order() -> None:
    text = extract_text(make_docx(), "report.docx")
    assert PHRASE in text
    assert "region\tmerged-header" in text  # a merged cell appears once
    assert "north\t42\ttable-only-marker" in text
    assert text.index("Quarterly report") < text.index(PHRASE) < text.index("north") < text.index("closing")


def test_pptx_slides_in_presentation_order() -> None:
    data = make_pptx(["first-slide", "second-slide", f"third {PHRASE}"])
    text = extract_text(data, "deck.pptx")
    assert text.index("first-slide") < text.index("second-slide") < text.index(PHRASE)
    assert "body of first-slide" in text

    # Move the first slide to the end: order follows presentation.xml, not slide1.xml's name.
    presentation = pptx.Presentation(io.BytesIO(data))
    slide_ids = presentation.slides._sldIdLst
    first = next(iter(slide_ids))
    slide_ids.remove(first)
    slide_ids.append(first)
    buffer = io.BytesIO()
    presentation.save(buffer)
    reordered = extract_text(buffer.getvalue(), "deck.pptx")
    assert reordered.index("second-slide") < reordered.index(PHRASE) < reordered.index("first-slide")


@pytest.mark.parametrize("filename", ["broken.docx", "broken.pptx"])
def test_broken_office_files_are_invalid(filename: str) -> None:
    with pytest.raises(InvalidFile):
        extract_text(os.urandom(2048), filename)
    empty_zip = io.BytesIO()
    with zipfile.ZipFile(empty_zip, "w") as archive:
        archive.writestr("hello.txt", "not an office document")
    with pytest.raises(InvalidFile):
        extract_text(empty_zip.getvalue(), filename)


def test_a_pptx_is_not_a_docx() -> None:
    with pytest.raises(InvalidFile):
        extract_text(make_pptx(["x"]), "renamed.docx")


def test_zip_bombs_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(documents, "MAX_UNZIPPED_BYTES", 1000)
    with pytest.raises(InvalidFile, match="expands to more than"):
        extract_text(make_docx(), "bomb.docx")
    with pytest.raises(InvalidFile, match="expands to more than"):
        extract_text(make_pptx(["x"]), "bomb.pptx")


def test_xml_entity_expansion_is_refused() -> None:
    laughs = (
        '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        + "".join(
            f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">' for i in range(1, 10)
        )
        + ']><p:sld xmlns:p="http://schemas.openxmlformats.org/presentationml/2006/main">&lol9;</p:sld>'
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("ppt/presentation.xml", "<p:presentation/>")
        archive.writestr("ppt/slides/slide1.xml", laughs)
    # expat refuses the amplification (a ParseError), so this fails fast instead of eating memory.
    with pytest.raises(InvalidFile, match=r"not a readable \.pptx"):
        extract_text(buffer.getvalue(), "laughs.pptx")
