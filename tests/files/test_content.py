"""The content modules: type detection, names, images for vision models, document text."""

import io
import zipfile
from pathlib import Path

import anyio
import pytest
from PIL import ExifTags, Image

from app.files import extract, images
from app.files.detect import (
    DOCX,
    GIF,
    JPEG,
    PDF,
    PNG,
    WEBP,
    TextCheck,
    describe_binary,
    sanitize_name,
    sniff_binary,
    text_type,
)
from app.files.errors import (
    CorruptFile,
    DocumentEncrypted,
    DocumentHasNoText,
    DocumentUnreadable,
    ImageTooLarge,
    InvalidFileName,
    UnsupportedFileType,
)
from tests.files import samples


class TestDetection:
    @pytest.mark.parametrize(
        ("content", "expected"),
        [
            (samples.image("PNG"), PNG),
            (samples.image("JPEG"), JPEG),
            (samples.image("WEBP"), WEBP),
            (samples.image("GIF"), GIF),
            (samples.pdf(["x"]), PDF),
            (samples.word(["x"]), DOCX),
            (b"plain text", None),
            (samples.pe_executable(), None),
        ],
    )
    def test_signatures(self, content, expected):
        assert sniff_binary(content[:64]) == expected

    def test_disallowed_content_is_named(self):
        assert describe_binary(samples.pe_executable()) == "a Windows executable (PE)"
        assert describe_binary(samples.elf_executable()) == "a Linux executable (ELF)"
        assert describe_binary(b"\x00\x01\x02") == "binary data (not UTF-8 text)"

    def test_text_check_across_chunks(self):
        encoded = "naïve café ✓".encode()
        check = TextCheck()
        # Split inside multi-byte sequences: still text.
        assert all(check.feed(encoded[i : i + 1]) for i in range(len(encoded)))
        assert check.feed(b"", final=True)
        cut = TextCheck()
        assert cut.feed("✓".encode()[:2])
        assert not cut.feed(b"", final=True)
        assert not TextCheck().feed(b"abc\x00def")
        assert not TextCheck().feed(b"\xff\xfeh\x00i\x00")

    def test_text_formats_by_extension(self):
        assert text_type("a.MD").media_type == "text/markdown"
        assert text_type("a.tar.gz").media_type == "text/plain"
        assert text_type("drawing.svg").kind == "document"


class TestSanitizeName:
    @pytest.mark.parametrize(
        ("raw", "expected"),
        [
            ("report.pdf", "report.pdf"),
            ("/etc/passwd", "passwd"),
            ("C:\\Windows\\notes.txt", "notes.txt"),
            ("  spaced   out  .txt ", "spaced out .txt"),
            ("bell\x07\x1b[31mred.txt", "bell[31mred.txt"),
            ("zero\u200bwidth.txt", "zerowidth.txt"),
            ("...", "file"),
            ("", "file"),
            ("e\u0301.txt", "é.txt"),  # NFC
            ("a" * 300, "a" * 255),
            ("b" * 300 + ".markdown", "b" * 246 + ".markdown"),
        ],
    )
    def test_cleaned(self, raw, expected):
        assert sanitize_name(raw) == expected

    @pytest.mark.parametrize("raw", ["../x.txt", "a/../../b", "..\\x", "x\x00.png", " .. "])
    def test_refused(self, raw):
        with pytest.raises(InvalidFileName):
            sanitize_name(raw)


class TestInspectImage:
    def test_dimensions(self):
        for file_type, fmt in [(PNG, "PNG"), (JPEG, "JPEG"), (WEBP, "WEBP"), (GIF, "GIF")]:
            info = images.inspect_image(
                io.BytesIO(samples.image(fmt, (33, 21))), name="x", file_type=file_type
            )
            assert (info.width, info.height) == (33, 21)

    def test_a_bomb_is_refused_before_decoding(self):
        with pytest.raises(ImageTooLarge) as caught:
            images.inspect_image(io.BytesIO(samples.png_bomb()), name="b.png", file_type=PNG)
        assert "10000x10000" in caught.value.message

    def test_content_of_another_type(self):
        with pytest.raises(CorruptFile):
            images.inspect_image(io.BytesIO(samples.image("GIF")), name="x.png", file_type=PNG)


class TestPrepareImage:
    def test_strips_metadata_and_applies_the_orientation(self):
        original = samples.jpeg_with_gps((600, 400))
        assert Image.open(io.BytesIO(original)).getexif().get_ifd(ExifTags.IFD.GPSInfo)
        prepared = images.prepare_image(io.BytesIO(original), name="trip.jpg", max_side=2048)
        assert prepared.media_type == "image/jpeg"
        result = Image.open(io.BytesIO(prepared.data))
        assert result.format == "JPEG"
        assert (prepared.width, prepared.height) == (400, 600) == result.size  # turned upright
        exif = result.getexif()
        assert len(exif) == 0 and not exif.get_ifd(ExifTags.IFD.GPSInfo)
        assert b"Parley Test Camera" not in prepared.data
        assert "icc_profile" not in result.info and "exif" not in result.info

    def test_scales_the_longest_side(self):
        prepared = images.prepare_image(
            io.BytesIO(samples.image("PNG", (3000, 1200))), name="wide.png", max_side=1000
        )
        assert (prepared.width, prepared.height) == (1000, 400)
        assert Image.open(io.BytesIO(prepared.data)).size == (1000, 400)

    def test_small_images_keep_their_size(self):
        prepared = images.prepare_image(
            io.BytesIO(samples.image("WEBP", (100, 50))), name="s.webp", max_side=2048
        )
        assert (prepared.media_type, prepared.width, prepared.height) == ("image/webp", 100, 50)

    def test_transparency_survives_and_gif_becomes_png(self):
        picture = Image.new("RGBA", (40, 40), (0, 0, 0, 0))
        buffer = io.BytesIO()
        picture.save(buffer, "PNG")
        prepared = images.prepare_image(buffer, name="t.png", max_side=2048)
        assert Image.open(io.BytesIO(prepared.data)).mode == "RGBA"
        gif = images.prepare_image(io.BytesIO(samples.image("GIF")), name="a.gif", max_side=64)
        assert gif.media_type == "image/png"

    def test_bombs_and_damage(self):
        with pytest.raises(ImageTooLarge):
            images.prepare_image(io.BytesIO(samples.png_bomb()), name="b.png", max_side=2048)
        truncated = samples.image("JPEG", (300, 300))[:-400]
        with pytest.raises(CorruptFile) as caught:
            images.prepare_image(io.BytesIO(truncated), name="cut.jpg", max_side=2048)
        assert "cut.jpg" in caught.value.message
        with pytest.raises(CorruptFile):
            images.prepare_image(io.BytesIO(b"not an image"), name="x", max_side=2048)

    async def test_runs_in_a_worker_thread(self):
        prepared = await images.prepare_image_in_thread(
            io.BytesIO(samples.image("PNG")),
            name="p.png",
            max_side=32,
            limiter=anyio.CapacityLimiter(1),
        )
        assert max(prepared.width, prepared.height) == 32


def _text(content: bytes, media_type: str, **caps: int) -> extract.ExtractedText:
    limits = {"max_pages": 100, "max_chars": 100_000, **caps}
    return extract.extract_text(io.BytesIO(content), media_type=media_type, name="doc", **limits)


class TestExtractText:
    def test_pdf(self):
        result = _text(samples.pdf(["First page", "Second page"]), PDF.media_type)
        assert "First page" in result.text and "Second page" in result.text
        assert (result.page_count, result.truncated) == (2, False)

    def test_pdf_page_cap(self):
        result = _text(samples.pdf(["one", "two", "three"]), PDF.media_type, max_pages=2)
        assert "two" in result.text and "three" not in result.text
        assert (result.page_count, result.truncated) == (3, True)

    def test_character_cap(self):
        result = _text(samples.pdf(["a" * 50, "b" * 50]), PDF.media_type, max_chars=60)
        assert len(result.text) == 60 and result.truncated

    @pytest.mark.parametrize(
        ("content", "error"),
        [
            (samples.encrypted_pdf(["secret"]), DocumentEncrypted),
            (b"%PDF-1.4\ngarbage", DocumentUnreadable),
            (samples.pdf(["", ""]), DocumentHasNoText),
        ],
    )
    def test_pdfs_without_readable_text_name_the_file(self, content, error):
        with pytest.raises(error) as caught:
            extract.extract_text(
                io.BytesIO(content),
                media_type=PDF.media_type,
                name="scan.pdf",
                max_pages=10,
                max_chars=1000,
            )
        assert "scan.pdf" in caught.value.message
        assert caught.value.status_code == 422

    def test_word_paragraphs_and_tables_in_order(self, tmp_path: Path):
        content = samples.word(["Dear Ada,", "The numbers:"], table=[["a", "1"], ["b", "2"]])
        path = tmp_path / "letter.docx"
        path.write_bytes(content)
        result = extract.extract_text(
            path, media_type=DOCX.media_type, name="letter.docx", max_pages=1, max_chars=1000
        )
        assert result.text == "Dear Ada,\nThe numbers:\na | 1\nb | 2"

    def test_word_documents_that_cannot_be_read(self):
        with pytest.raises(DocumentHasNoText):
            _text(samples.word([]), DOCX.media_type)
        with pytest.raises(DocumentUnreadable):
            _text(samples.zip_archive(), DOCX.media_type)

    def test_a_word_zip_bomb_is_not_inflated(self):
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("[Content_Types].xml", "<Types/>")
            with archive.open("word/document.xml", "w") as member:
                for _ in range(extract.DOCX_MAX_XML_BYTES // (1024 * 1024) + 1):
                    member.write(b" " * 1024 * 1024)
        assert len(buffer.getvalue()) < 1024 * 1024
        with pytest.raises(DocumentUnreadable):
            _text(buffer.getvalue(), DOCX.media_type)

    def test_text_as_it_is(self):
        result = _text("\ufeffline one\nline two ✓".encode(), "text/markdown", max_chars=12)
        assert (result.text, result.truncated) == ("line one\nlin", True)

    async def test_runs_in_a_worker_thread(self):
        result = await extract.extract_text_in_thread(
            io.BytesIO(samples.pdf(["threaded"])),
            media_type=PDF.media_type,
            name="t.pdf",
            max_pages=5,
            max_chars=100,
            limiter=anyio.CapacityLimiter(1),
        )
        assert "threaded" in result.text


class TestUploadChecks:
    def test_page_count(self):
        assert extract.count_pdf_pages(io.BytesIO(samples.pdf(["a", "b"])), name="p") == 2
        assert extract.count_pdf_pages(io.BytesIO(samples.encrypted_pdf(["a"])), name="p") is None

    def test_a_zip_must_be_a_word_document(self):
        extract.check_docx(io.BytesIO(samples.word(["x"])), name="ok.docx")
        with pytest.raises(UnsupportedFileType):
            extract.check_docx(io.BytesIO(samples.zip_archive()), name="a.zip")
