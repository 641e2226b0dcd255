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
    DocumentTooLarge,
    DocumentUnreadable,
    ExtractionTimeout,
    ImageTooLarge,
    InvalidFileName,
    UnsupportedFileType,
)
from app.files.sandbox import ExtractionPool, ExtractJob
from tests.files import samples

MAX_PIXELS = 40_000_000


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
                io.BytesIO(samples.image(fmt, (33, 21))),
                name="x",
                file_type=file_type,
                max_pixels=MAX_PIXELS,
            )
            assert (info.width, info.height) == (33, 21)

    def test_a_bomb_is_refused_before_decoding(self):
        with pytest.raises(ImageTooLarge) as caught:
            images.inspect_image(
                io.BytesIO(samples.png_bomb()), name="b.png", file_type=PNG, max_pixels=MAX_PIXELS
            )
        assert "10000x10000" in caught.value.message

    def test_the_pixel_cap_is_a_setting(self):
        # 9400 x 9400 all-zero pixels: 88 megapixels, under Pillow's own limit (89.5).
        bomb = samples.png_bomb(9400, 9400)
        with pytest.raises(ImageTooLarge) as caught:
            images.inspect_image(
                io.BytesIO(bomb), name="b.png", file_type=PNG, max_pixels=MAX_PIXELS
            )
        assert "9400x9400" in caught.value.message and "40000000" in caught.value.message
        with pytest.raises(ImageTooLarge):
            images.prepare_image(
                io.BytesIO(bomb), name="b.png", max_side=2048, max_pixels=MAX_PIXELS
            )
        small = io.BytesIO(samples.image("PNG", (100, 100)))
        with pytest.raises(ImageTooLarge):
            images.inspect_image(small, name="s.png", file_type=PNG, max_pixels=9_999)

    def test_content_of_another_type(self):
        with pytest.raises(CorruptFile):
            images.inspect_image(
                io.BytesIO(samples.image("GIF")), name="x.png", file_type=PNG, max_pixels=MAX_PIXELS
            )


class TestPrepareImage:
    def test_strips_metadata_and_applies_the_orientation(self):
        original = samples.jpeg_with_gps((600, 400))
        assert Image.open(io.BytesIO(original)).getexif().get_ifd(ExifTags.IFD.GPSInfo)
        prepared = images.prepare_image(
            io.BytesIO(original), name="trip.jpg", max_side=2048, max_pixels=MAX_PIXELS
        )
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
            io.BytesIO(samples.image("PNG", (3000, 1200))),
            name="wide.png",
            max_side=1000,
            max_pixels=MAX_PIXELS,
        )
        assert (prepared.width, prepared.height) == (1000, 400)
        assert Image.open(io.BytesIO(prepared.data)).size == (1000, 400)

    def test_small_images_keep_their_size(self):
        prepared = images.prepare_image(
            io.BytesIO(samples.image("WEBP", (100, 50))),
            name="s.webp",
            max_side=2048,
            max_pixels=MAX_PIXELS,
        )
        assert (prepared.media_type, prepared.width, prepared.height) == ("image/webp", 100, 50)

    def test_a_large_palette_image_is_scaled_smoothly(self):
        picture = Image.new("P", (5000, 3000), 0)
        picture.putpalette([0, 0, 0, 255, 255, 255] + [0] * 762)
        for x in range(0, 5000, 2):  # one-pixel stripes: a smooth scale turns them grey
            picture.paste(1, (x, 0, x + 1, 3000))
        buffer = io.BytesIO()
        picture.save(buffer, "PNG")
        prepared = images.prepare_image(buffer, name="p.png", max_side=500, max_pixels=MAX_PIXELS)
        result = Image.open(io.BytesIO(prepared.data)).convert("L")
        assert result.size == (500, 300)
        grey = result.getpixel((250, 150))
        assert isinstance(grey, int) and 64 < grey < 192

    def test_transparency_survives_and_gif_becomes_png(self):
        picture = Image.new("RGBA", (40, 40), (0, 0, 0, 0))
        buffer = io.BytesIO()
        picture.save(buffer, "PNG")
        prepared = images.prepare_image(buffer, name="t.png", max_side=2048, max_pixels=MAX_PIXELS)
        assert Image.open(io.BytesIO(prepared.data)).mode == "RGBA"
        gif = images.prepare_image(
            io.BytesIO(samples.image("GIF")), name="a.gif", max_side=64, max_pixels=MAX_PIXELS
        )
        assert gif.media_type == "image/png"

    def test_bombs_and_damage(self):
        with pytest.raises(ImageTooLarge):
            images.prepare_image(
                io.BytesIO(samples.png_bomb()), name="b.png", max_side=2048, max_pixels=MAX_PIXELS
            )
        truncated = samples.image("JPEG", (300, 300))[:-400]
        with pytest.raises(CorruptFile) as caught:
            images.prepare_image(
                io.BytesIO(truncated), name="cut.jpg", max_side=2048, max_pixels=MAX_PIXELS
            )
        assert "cut.jpg" in caught.value.message
        with pytest.raises(CorruptFile):
            images.prepare_image(
                io.BytesIO(b"not an image"), name="x", max_side=2048, max_pixels=MAX_PIXELS
            )

    async def test_runs_in_a_worker_thread(self):
        prepared = await images.prepare_image_in_thread(
            io.BytesIO(samples.image("PNG")),
            name="p.png",
            max_side=32,
            max_pixels=MAX_PIXELS,
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

    def test_word_text_is_read_from_the_main_part_alone(self):
        body = (
            "<w:p><w:pPr><w:tabs><w:tab w:val='left' w:pos='720'/></w:tabs></w:pPr>"
            "<w:r><w:t>Name</w:t><w:tab/><w:t xml:space='preserve'>Ada </w:t></w:r>"
            "<w:r><w:br/><w:t>Lovelace</w:t></w:r></w:p>"
            "<w:tbl><w:tr><w:tc><w:p><w:r><w:t>x</w:t></w:r></w:p></w:tc>"
            "<w:tc><w:p><w:r><w:t>1</w:t></w:r></w:p></w:tc></w:tr>"
            "<w:tr><w:tc><w:p/></w:tc><w:tc><w:p/></w:tc></w:tr></w:tbl>"
            "<w:p><w:r><w:instrText>PAGE</w:instrText><w:delText>gone</w:delText></w:r></w:p>"
            "<w:p><w:r><w:t>The end.</w:t></w:r></w:p>"
        )
        content = samples.zip_of(samples.word_parts(samples.document_xml(body)))
        assert _text(content, DOCX.media_type).text == "Name\tAda \nLovelace\nx | 1\nThe end."
        capped = _text(content, DOCX.media_type, max_chars=12)
        assert (capped.text, capped.truncated) == ("Name\tAda \nLo", True)

    @pytest.mark.parametrize(
        ("part", "size"),
        [
            ("word/media/image1.png", 1000 * 2**20),  # issue 24: 1 MB upload, 1000 MiB inflated
            ("word/styles.xml", 300 * 2**20),
            ("word/document.xml", 200 * 2**20),
        ],
    )
    def test_a_zip_bomb_in_any_part_is_refused_unread(self, part, size):
        bomb = samples.docx_bomb(part, size)
        assert len(bomb) < 1.1 * 2**20
        with pytest.raises(DocumentTooLarge) as caught:
            extract.check_docx(io.BytesIO(bomb), name="bomb.docx")
        assert caught.value.code == "document_too_large" and "bomb.docx" in caught.value.message
        with pytest.raises(DocumentTooLarge):
            _text(bomb, DOCX.media_type)

    def test_many_parts_that_inflate_too_much_together(self):
        # Each at the ratio check's floor (1 MiB), 300 MiB together.
        parts = {f"word/media/image{n}.png": 2**20 for n in range(300)}
        bomb = samples.zip_of({**samples.word_parts(), **parts})
        with pytest.raises(DocumentTooLarge) as caught:
            extract.check_docx(io.BytesIO(bomb), name="many.docx")
        assert "MiB unpacked" in caught.value.message

    @pytest.mark.parametrize(
        "prolog",
        [
            # billion laughs
            '<!DOCTYPE w:document [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;">'
            '<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;">]>',
            # XXE
            '<!DOCTYPE w:document [<!ENTITY x SYSTEM "file:///etc/passwd">]>',
        ],
    )
    def test_entities_are_refused(self, prolog):
        entity = "&c;" if "ENTITY c" in prolog else "&x;"
        xml = samples.document_xml(f"<w:p><w:r><w:t>{entity}</w:t></w:r></w:p>", prolog=prolog)
        with pytest.raises(DocumentUnreadable) as caught:
            _text(samples.zip_of(samples.word_parts(xml)), DOCX.media_type)
        assert "root:" not in caught.value.message

    def test_text_as_it_is(self):
        result = _text("\ufeffline one\nline two ✓".encode(), "text/markdown", max_chars=12)
        assert (result.text, result.truncated) == ("line one\nlin", True)

    async def test_runs_in_a_worker_process(self, tmp_path: Path):
        pool = ExtractionPool(workers=1, max_seconds=30)
        job = ExtractJob("text", PDF.media_type, "t.pdf", max_pages=5, max_chars=100)
        try:
            path = tmp_path / "t.pdf"
            path.write_bytes(samples.pdf(["processed"]))
            with path.open("rb") as handle:
                result = await pool.run(handle, job)
            assert "processed" in result.text
            # Errors come back as the same AppError, naming the file.
            path.write_bytes(samples.encrypted_pdf(["secret"]))
            with path.open("rb") as handle, pytest.raises(DocumentEncrypted) as caught:
                await pool.run(handle, job)
            assert caught.value.code == "document_encrypted" and "t.pdf" in caught.value.message
        finally:
            await pool.close()

    async def test_a_document_over_its_time_budget_is_stopped(self, tmp_path: Path):
        # 25 pages of 100,000 empty text operators: tens of seconds of CPU, and no text.
        path = tmp_path / "slow.pdf"
        path.write_bytes(samples.slow_pdf())
        pool = ExtractionPool(workers=1, max_seconds=3)
        job = ExtractJob("pages", PDF.media_type, "slow.pdf", max_pages=100, max_chars=10_000)
        try:
            with path.open("rb") as handle, pytest.raises(ExtractionTimeout) as caught:
                await pool.run(handle, job)
            assert caught.value.code == "extraction_timeout"
            assert "slow.pdf" in caught.value.message and "3 seconds" in caught.value.message
            # The stopped worker is replaced: the next document is read as usual.
            path.write_bytes(samples.pdf(["after"]))
            with path.open("rb") as handle:
                assert (await pool.run(handle, job)).pages[0].text == "after"
        finally:
            await pool.close()


class TestUploadChecks:
    def test_page_count(self):
        assert extract.count_pdf_pages(io.BytesIO(samples.pdf(["a", "b"])), name="p") == 2
        assert extract.count_pdf_pages(io.BytesIO(samples.encrypted_pdf(["a"])), name="p") is None

    def test_a_zip_must_be_a_word_document(self):
        extract.check_docx(io.BytesIO(samples.word(["x"])), name="ok.docx")
        with pytest.raises(UnsupportedFileType):
            extract.check_docx(io.BytesIO(samples.zip_archive()), name="a.zip")
