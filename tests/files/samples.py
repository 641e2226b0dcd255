"""Files made in the test: real images, PDFs, Word documents, executables and bombs."""

import io
import os
import struct
import zipfile
import zlib

import docx
from PIL import ExifTags, Image
from pypdf import PdfReader, PdfWriter


def image(fmt: str = "PNG", size: tuple[int, int] = (64, 48), **save: object) -> bytes:
    picture = Image.new("RGB", size, (200, 80, 40))
    for x in range(0, size[0], 4):  # some structure, so that encoders have work to do
        picture.putpixel((x, x % size[1]), (10, 20, 250))
    buffer = io.BytesIO()
    picture.save(buffer, fmt, **save)
    return buffer.getvalue()


def noise_png(size_bytes: int) -> bytes:
    """A PNG of random pixels (incompressible) of about `size_bytes`."""
    side = int((size_bytes / 3) ** 0.5)
    picture = Image.frombytes("RGB", (side, side), os.urandom(side * side * 3))
    buffer = io.BytesIO()
    picture.save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()


def jpeg_with_gps(size: tuple[int, int] = (600, 400)) -> bytes:
    """A JPEG whose EXIF says where it was taken (and that it is rotated)."""
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "Parley Test Camera"
    exif[ExifTags.Base.Orientation] = 6  # rotate 90° clockwise to display
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    gps[ExifTags.GPS.GPSLatitude] = (38.0, 42.0, 59.0)
    gps[ExifTags.GPS.GPSLongitudeRef] = "W"
    gps[ExifTags.GPS.GPSLongitude] = (9.0, 8.0, 21.0)
    return image("JPEG", size, exif=exif, quality=90)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb(width: int = 10_000, height: int = 10_000) -> bytes:
    """A valid 1-bit PNG of `width` x `height` blank pixels: a few kilobytes that would decode
    to width * height bytes."""
    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte + packed pixels
    compressor = zlib.compressobj(9)
    idat = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


def pdf(pages: list[str]) -> bytes:
    """A PDF with one line of text on each page (empty strings: pages with no text)."""
    objects: list[bytes] = []
    page_ids = [4 + 2 * index for index in range(len(pages))]
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    kids = " ".join(f"{pid} 0 R" for pid in page_ids)
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {len(pages)} >>".encode())
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    for index, text in enumerate(pages):
        stream = f"BT /F1 18 Tf 72 700 Td ({text}) Tj ET".encode() if text else b""
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            b"/Resources << /Font << /F1 3 0 R >> >> "
            + f"/Contents {page_ids[index] + 1} 0 R >>".encode()
        )
        objects.append(f"<< /Length {len(stream)} >>\nstream\n".encode() + stream + b"\nendstream")
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for offset in offsets:
        out += f"{offset:010d} 00000 n \n".encode()
    out += (
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    )
    return bytes(out)


def encrypted_pdf(pages: list[str]) -> bytes:
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf(pages))))
    writer.encrypt(user_password="open sesame", owner_password="owner", algorithm="AES-128")
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def word(paragraphs: list[str], table: list[list[str]] | None = None) -> bytes:
    document = docx.Document()
    for text in paragraphs:
        document.add_paragraph(text)
    if table:
        grid = document.add_table(rows=len(table), cols=len(table[0]))
        for r, row in enumerate(table):
            for c, value in enumerate(row):
                grid.cell(r, c).text = value
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def zip_archive() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("notes.txt", "not a Word document")
    return buffer.getvalue()


def pe_executable() -> bytes:
    """The start of a Windows PE: DOS header (e_lfanew at 0x3C), DOS stub, PE header."""
    dos = bytearray(0x80)
    dos[0:2] = b"MZ"
    dos[0x3C:0x40] = struct.pack("<I", 0x80)
    dos[0x40 : 0x40 + 39] = b"This program cannot be run in DOS mode."
    pe = b"PE\x00\x00" + struct.pack("<HH", 0x8664, 1) + b"\x00" * 300
    return bytes(dos) + pe


def elf_executable() -> bytes:
    return b"\x7fELF\x02\x01\x01" + b"\x00" * 9 + struct.pack("<HHI", 2, 0x3E, 1) + b"\x00" * 200


def _zeros_deflated(size: int) -> tuple[bytes, int]:
    """A raw deflate stream of `size` zero bytes, and their CRC-32, without compressing `size`
    bytes: a full-flushed block of 1 MiB of zeros stands on its own, so it can be repeated."""
    mib = 1 << 20
    assert size % mib == 0
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = compressor.compress(b"\x00" * mib) + compressor.flush(zlib.Z_FULL_FLUSH)
    end = zlib.compressobj(9, zlib.DEFLATED, -15).flush(zlib.Z_FINISH)
    crc = 0
    zero_mib = b"\x00" * mib
    for _ in range(size // mib):
        crc = zlib.crc32(zero_mib, crc)
    return block * (size // mib) + end, crc


def zip_of(members: dict[str, bytes | int]) -> bytes:
    """A ZIP archive made by hand: bytes are stored deflated, an int is that many zero bytes
    (deflated cheaply by _zeros_deflated), so bombs of any size take no time to build."""
    out = bytearray()
    central = bytearray()
    for name, content in members.items():
        if isinstance(content, int):
            data, crc = _zeros_deflated(content)
            size = content
        else:
            compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
            data = compressor.compress(content) + compressor.flush()
            crc, size = zlib.crc32(content), len(content)
        encoded = name.encode()
        fields = struct.pack(
            "<HHHHHIIIHH", 20, 0, 8, 0, 0x21, crc, len(data), size, len(encoded), 0
        )
        central += (
            b"PK\x01\x02"
            + struct.pack("<H", 20)
            + fields
            + struct.pack("<HHHII", 0, 0, 0, 0, len(out))
            + encoded
        )
        out += b"PK\x03\x04" + fields + encoded + data
    return bytes(
        out
        + central
        + b"PK\x05\x06"
        + struct.pack("<HHHHIIH", 0, 0, len(members), len(members), len(central), len(out), 0)
    )


def word_parts(document_xml: bytes | None = None) -> dict[str, bytes | int]:
    """The parts of a real one-paragraph Word document (python-docx's), by name."""
    with zipfile.ZipFile(io.BytesIO(word(["Quarterly figures are attached."]))) as archive:
        parts: dict[str, bytes | int] = {name: archive.read(name) for name in archive.namelist()}
    if document_xml is not None:
        parts["word/document.xml"] = document_xml
    return parts


def docx_bomb(part: str, size: int) -> bytes:
    """A real Word document whose `part` (a picture, the styles, ...) inflates to `size` bytes."""
    return zip_of({**word_parts(), part: size})


W_NS = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"


def document_xml(body: str, *, prolog: str = "") -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>{prolog}'
        f'<w:document xmlns:w="{W_NS}"><w:body>{body}</w:body></w:document>'
    ).encode()


def slow_pdf(pages: int = 25, operators: int = 100_000) -> bytes:
    """A few kilobytes of PDF whose pages all share one flate-compressed content stream of
    `operators` empty text-showing operators: it takes pypdf most of a second a page to find
    that there is no text (issue 24)."""
    content = b"BT /F1 12 Tf " + b"() Tj " * operators + b"ET"
    stream = zlib.compress(content, 9)
    page_ids = [5 + index for index in range(pages)]
    kids = " ".join(f"{page_id} 0 R" for page_id in page_ids)
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        f"<< /Type /Pages /Kids [{kids}] /Count {pages} >>".encode(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        f"<< /Length {len(stream)} /Filter /FlateDecode >>\nstream\n".encode()
        + stream
        + b"\nendstream",
    ]
    for _ in page_ids:
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            b"/Resources << /Font << /F1 3 0 R >> >> /Contents 4 0 R >>"
        )
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for offset in offsets:
        out += f"{offset:010d} 00000 n \n".encode()
    out += (
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    )
    return bytes(out)
