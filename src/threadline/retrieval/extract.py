"""Plain text of an uploaded file, for chunking and indexing.

The format is chosen by extension, as OpenAI's file_search does (OpenAI's documentation lists the
supported ones). Text must be UTF-8, UTF-16 (with a BOM, or plainly recognisable without one) or
ASCII. A known extension with broken content raises ``InvalidFile``; an unknown extension is indexed
if its bytes are text and otherwise raises ``UnsupportedFile``, so READMEs, logs and config files
work while images and archives are refused.

HTML goes through the stdlib ``html.parser`` rather than BeautifulSoup: we only need visible text
(skip script/style, break lines at block elements), the stdlib parser is already what bs4 would use
underneath without lxml, and one dependency fewer is one less thing to keep patched.
"""

from __future__ import annotations

import codecs
import html
import re
from collections.abc import Callable
from html.parser import HTMLParser

from threadline.domain.errors import InvalidFile, UnsupportedFile
from threadline.retrieval import documents
from threadline.retrieval.tokens import clean_text

TEXT_EXTENSIONS = frozenset(
    {
        # documents and data
        "txt", "text", "md", "markdown", "rst", "tex", "json", "jsonl", "csv", "tsv", "xml", "yaml",
        "yml", "toml", "ini", "cfg", "conf", "log", "srt", "vtt",
        # source code
        "py", "pyi", "js", "mjs", "cjs", "jsx", "ts", "tsx", "c", "h", "cc", "cpp", "cxx", "hpp", "hh",
        "cs", "java", "kt", "kts", "scala", "go", "rs", "rb", "php", "pl", "pm", "sh", "bash", "zsh",
        "ps1", "bat", "swift", "m", "mm", "r", "lua", "sql", "css", "scss", "sass", "less", "vue",
        "svelte", "dart", "hs", "ex", "exs", "erl", "clj", "elm", "jl", "proto", "graphql", "tf",
    }
)  # fmt: skip
HTML_EXTENSIONS = frozenset({"html", "htm", "xhtml"})
# Binary formats OpenAI lists or people try, that we cannot read: say so instead of "not text".
_UNREADABLE = frozenset({"doc", "ppt", "xls", "xlsx", "odt", "rtf", "pages", "key", "epub"})
_BINARY_DOCUMENTS: dict[str, Callable[[bytes, str], str]] = {
    "pdf": documents.pdf_text,
    "docx": documents.docx_text,
    "pptx": documents.pptx_text,
}
# C0 controls other than whitespace and ESC (ANSI colours in logs); DEL too.
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1a\x1c-\x1f\x7f]")
# Text with more of these than this share of characters is binary that happened to decode.
_MAX_CONTROL_SHARE = 0.01
_CONTROL_SAMPLE_CHARS = 1 << 20


def extract_text(data: bytes, filename: str) -> str:
    """Text of ``data``; newlines normalised to ``\\n``, no NUL characters, no lone surrogates.

    Raises ``UnsupportedFile`` or ``InvalidFile`` (see the module docstring). May return ``""``
    (an empty file, a scanned PDF): the caller decides whether that is an error.
    """
    extension = file_extension(filename)
    if extension in _BINARY_DOCUMENTS:
        text = _BINARY_DOCUMENTS[extension](data, filename)
    elif extension in HTML_EXTENSIONS:
        text = html_text(decode_text(data, filename))
    elif extension in TEXT_EXTENSIONS:
        text = decode_text(data, filename)
    elif extension in _UNREADABLE:
        raise UnsupportedFile(f"Files with extension [.{extension}] are not supported for retrieval.")
    else:
        try:
            text = decode_text(data, filename)
        except InvalidFile as exc:
            shown = f"[.{extension}]" if extension else "without an extension"
            raise UnsupportedFile(
                f"Files with extension {shown} are not supported for retrieval unless they are "
                "UTF-8 or UTF-16 text."
            ) from exc
    # PDF and Word text can carry NULs and CRs; PostgreSQL text columns reject NUL outright.
    return clean_text(text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", ""))


def file_extension(filename: str) -> str:
    """Lower-case extension without the dot; ``""`` for none (``README``, ``.bashrc``)."""
    stem, dot, extension = filename.rpartition(".")
    return extension.lower() if dot and stem and "/" not in extension else ""


def decode_text(data: bytes, filename: str) -> str:
    """Decode UTF-8 (BOM optional) or UTF-16 (BOM, or NUL-interleaved ASCII without one)."""
    if data.startswith(codecs.BOM_UTF8):
        encoding, body = "utf-8", data[len(codecs.BOM_UTF8) :]
    elif data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encoding, body = "utf-16", data  # the codec reads and drops the BOM
    else:
        encoding, body = _bomless_utf16(data) or "utf-8", data
    try:
        text = body.decode(encoding)
    except UnicodeDecodeError as exc:
        raise InvalidFile(f"File '{filename}' is not valid UTF-8 or UTF-16 text.") from exc
    sample = text[:_CONTROL_SAMPLE_CHARS]
    if "\x00" in text or len(_CONTROL.findall(sample)) > _MAX_CONTROL_SHARE * len(sample):
        raise InvalidFile(f"File '{filename}' looks like binary data, not text.")
    return text


def _bomless_utf16(data: bytes) -> str | None:
    """``utf-16-le``/``-be`` when ``data`` is mostly ASCII stored as UTF-16 without a BOM (every other
    byte NUL, as Windows tools sometimes write it), else None."""
    sample = data[:4096]
    if len(data) % 2 or len(sample) < 4:
        return None
    pairs = len(sample) // 2
    even_nuls, odd_nuls = sample[0::2].count(0), sample[1::2].count(0)
    if odd_nuls > 0.4 * pairs and even_nuls < 0.05 * pairs:
        return "utf-16-le"
    if even_nuls > 0.4 * pairs and odd_nuls < 0.05 * pairs:
        return "utf-16-be"
    return None


def html_text(markup: str) -> str:
    """Visible text of an HTML document: no script/style/template content, no comments, entities
    decoded, whitespace collapsed outside ``<pre>``, one line per block element."""
    parser = _VisibleText()
    try:
        parser.feed(markup)
        parser.close()
    except AssertionError:
        # html.parser asserts on some malformed declarations (``<![foo[ ]]>``); fall back to
        # dropping tags rather than refusing the file.
        visible = re.sub(r"<[^>]*>", " ", _INVISIBLE_BLOCK.sub(" ", markup))
        return _HTML_SPACE.sub(" ", html.unescape(visible)).strip()
    return _tidy("".join(parser.parts))


# Elements whose content a reader never sees. <head> is not among them: its <title> is worth
# indexing, and the rest of it (meta, link, script, style) has no text or is skipped anyway.
_INVISIBLE = frozenset({"script", "style", "noscript", "template"})
_INVISIBLE_BLOCK = re.compile(r"<(script|style|template)\b.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
_BLOCK_TAGS = """address article aside blockquote br caption dd details div dl dt fieldset figcaption figure
footer form h1 h2 h3 h4 h5 h6 header hr li main nav ol p pre section summary table title tr ul"""
_BLOCKS = frozenset(_BLOCK_TAGS.split())
_CELLS = frozenset({"td", "th"})
# HTML's whitespace, which browsers collapse. Not Python's \s: that would also eat &nbsp; (U+00A0).
_HTML_SPACE = re.compile(r"[ \t\n\r\f]+")


class _VisibleText(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._hidden = 0  # depth inside invisible elements (noscript/template may nest)
        self._pre = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _INVISIBLE:
            self._hidden += 1
        elif tag == "pre":
            self._pre += 1
        self._separate(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in _INVISIBLE:
            self._hidden = max(0, self._hidden - 1)  # a stray end tag must not go negative
        elif tag == "pre":
            self._pre = max(0, self._pre - 1)
        self._separate(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        # <br/>, <hr/>, <script src=x />: one separator, and nothing left open.
        self._separate(tag)

    def handle_data(self, data: str) -> None:
        if self._hidden:
            return
        if not self._pre:
            data = _HTML_SPACE.sub(" ", data)
            if self._at_line_start():
                data = data.lstrip(" ")
        if data:
            self.parts.append(data)

    def _separate(self, tag: str) -> None:
        if tag in _BLOCKS:
            # One line break between blocks, however many tags open and close there.
            if self.parts and not self.parts[-1].endswith("\n"):
                if not self._pre:
                    self.parts[-1] = self.parts[-1].rstrip(" ")
                self.parts.append("\n")
        elif tag in _CELLS and not self._at_line_start():
            self.parts.append("\t")

    def _at_line_start(self) -> bool:
        return not self.parts or self.parts[-1].endswith(("\n", "\t"))


def _tidy(text: str) -> str:
    # At most one blank line between blocks; no trailing blanks on a line.
    return re.sub(r"\n{3,}", "\n\n", re.sub(r"[ \t]+\n", "\n", text)).strip()
