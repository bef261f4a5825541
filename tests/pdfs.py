"""PDFs made by hand for tests: pages of text, and a bomb (a small file whose compressed page
content takes pypdf many seconds of CPU to turn into text)."""

import zlib

# One text-showing operator: pypdf parses each and adds its text; 3 MB of them took 16 s of CPU.
BOMB_OPERATOR = b"(Hello) Tj\n"


def text_page(text: str) -> bytes:
    return f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()


def pdf_with_pages(*contents: bytes, compress: bool = False) -> bytes:
    """A PDF whose pages draw ``contents`` (content streams), FlateDecode'd if ``compress``."""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [%s] /Count %d >>"
        % (b" ".join(b"%d 0 R" % (4 + 2 * i) for i in range(len(contents))), len(contents)),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    for content in contents:
        data = zlib.compress(content, 9) if compress else content
        head = b"/Filter /FlateDecode " if compress else b""
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents %d 0 R "
            b"/Resources << /Font << /F1 3 0 R >> >> >>" % (len(objects) + 2)
        )
        objects.append(b"<< %s/Length %d >>\nstream\n" % (head, len(data)) + data + b"\nendstream")
    return _assemble(objects)


def one_page_pdf(text: str) -> bytes:
    return pdf_with_pages(text_page(text))


def pdf_bomb(decompressed_bytes: int = 3_000_000) -> bytes:
    """A few KB of PDF whose one page is ``decompressed_bytes`` of text operators."""
    return pdf_with_pages(BOMB_OPERATOR * (decompressed_bytes // len(BOMB_OPERATOR)), compress=True)


def _assemble(objects: list[bytes]) -> bytes:
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)
