"""The file store's API on both storage backends: uploads, reads, listing, deletion, and every
bad input refused with nothing stored."""

import asyncio
import hashlib
import uuid
from urllib.parse import quote

import pytest

from tests.files import samples
from tests.files.conftest import (
    BACKENDS,
    BOUNDARY,
    FORM_TYPE,
    StorageProbe,
    form,
    purged,
    rows,
    upload,
    uploaded,
)
from tests.support.api import assert_error, register
from tests.support.app import serving
from tests.support.settings import make_settings

pytestmark = pytest.mark.parametrize("storage_backend", BACKENDS, indirect=True)


async def assert_nothing_stored(stored: StorageProbe, engine) -> None:
    assert stored.objects() == set()
    assert stored.spool() == []
    assert await rows(engine) == (0, 0)


class TestUpload:
    async def test_an_image_is_stored_with_what_was_detected(self, client, user, stored, clean_db):
        png = samples.image("PNG", (64, 48))
        file = await uploaded(client, user, "cat.png", png)
        assert file["name"] == "cat.png"
        assert (file["media_type"], file["kind"]) == ("image/png", "image")
        assert file["size_bytes"] == len(png)
        assert file["sha256"] == hashlib.sha256(png).hexdigest()
        assert (file["width"], file["height"], file["page_count"]) == (64, 48, None)
        uuid.UUID(file["id"])
        # The bytes are in storage, once; nothing is left half-way.
        assert len(stored.objects()) == 1
        assert stored.spool() == []
        assert await rows(clean_db) == (1, 0)

    @pytest.mark.parametrize(
        ("fmt", "media_type"),
        [("JPEG", "image/jpeg"), ("WEBP", "image/webp"), ("GIF", "image/gif")],
    )
    async def test_other_image_types(self, client, user, fmt, media_type):
        file = await uploaded(client, user, f"picture.{fmt.lower()}", samples.image(fmt, (30, 20)))
        assert (file["media_type"], file["kind"], file["width"], file["height"]) == (
            media_type,
            "image",
            30,
            20,
        )

    async def test_a_pdf_records_its_page_count(self, client, user):
        file = await uploaded(client, user, "report.pdf", samples.pdf(["one", "two", "three"]))
        assert (file["media_type"], file["kind"], file["page_count"]) == (
            "application/pdf",
            "document",
            3,
        )
        assert file["width"] is None

    async def test_an_encrypted_pdf_is_stored_without_a_page_count(self, client, user):
        file = await uploaded(client, user, "secret.pdf", samples.encrypted_pdf(["hidden"]))
        assert (file["media_type"], file["page_count"]) == ("application/pdf", None)

    async def test_a_word_document(self, client, user):
        file = await uploaded(client, user, "letter.docx", samples.word(["Dear Ada,"]))
        assert file["media_type"] == (
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
        )
        assert file["kind"] == "document"

    @pytest.mark.parametrize(
        ("name", "media_type"),
        [
            ("notes.txt", "text/plain"),
            ("README.md", "text/markdown"),
            ("table.csv", "text/csv"),
            ("data.json", "application/json"),
            ("page.html", "text/html"),
            ("main.py", "text/x-python"),
            ("Makefile", "text/plain"),
            ("photo.png", "text/plain"),  # text is text, whatever the name says
        ],
    )
    async def test_text_formats_follow_the_extension(self, client, user, name, media_type):
        file = await uploaded(client, user, name, "héllo, wörld ✓\n".encode())
        assert (file["media_type"], file["kind"]) == (media_type, "document")

    async def test_the_clients_content_type_and_extension_are_not_trusted(self, client, user):
        png = samples.image("PNG")
        response = await upload(client, user, "page.html", png, content_type="text/html")
        assert response.status_code == 201, response.text
        assert response.json()["media_type"] == "image/png"

    async def test_a_large_file_goes_up_in_parts_and_comes_back_whole(self, client, user, stored):
        # Larger than S3_PART_BYTES (5 MiB in the tests): an S3 multipart upload of two parts.
        content = (b"0123456789abcdef" * 65_536) * 6 + b"tail\n"
        file = await uploaded(client, user, "big.txt", content)
        assert file["size_bytes"] == len(content)
        assert file["sha256"] == hashlib.sha256(content).hexdigest()
        response = await client.get(f"/api/files/{file['id']}/content", headers=user.headers)
        assert response.status_code == 200
        assert response.content == content
        (key,) = stored.objects()
        assert stored.read(uuid.UUID(key)) == content

    async def test_names_are_sanitised(self, client, user):
        cases = {
            "C:\\Users\\ada\\notes.txt": "notes.txt",
            "folder/sub/notes.txt": "notes.txt",
            "tab\there\nnew.txt": "tab here new.txt",
            "invoice\u202egpj.exe.txt": "invoicegpj.exe.txt",  # no right-to-left override
            "x" * 400 + ".txt": "x" * 251 + ".txt",
            "résumé ✓.txt": "résumé ✓.txt",
        }
        for raw, expected in cases.items():
            response = await client.post(
                "/api/files",
                content=form(raw.encode(), b"text"),
                headers={**user.headers, "Content-Type": FORM_TYPE},
            )
            assert response.status_code == 201, (raw, response.text)
            assert response.json()["name"] == expected

    async def test_other_form_fields_are_ignored(self, client, user):
        response = await client.post(
            "/api/files",
            data={"purpose": "chat"},
            files={"file": ("a.txt", b"text")},
            headers=user.headers,
        )
        assert response.status_code == 201, response.text

    async def test_needs_authentication(self, client, stored, clean_db):
        response = await client.post("/api/files", files={"file": ("a.txt", b"text")})
        assert_error(response, 401, "not_authenticated")
        await assert_nothing_stored(stored, clean_db)


class TestBadInput:
    """Each a clear 4xx in the error shape, and nothing stored anywhere."""

    async def test_empty_file(self, client, user, stored, clean_db):
        error = assert_error(await upload(client, user, "empty.txt", b""), 422, "empty_file")
        assert "empty.txt" in error["message"]
        await assert_nothing_stored(stored, clean_db)

    async def test_a_pe_binary_named_png(self, client, user, stored, clean_db):
        response = await upload(client, user, "cute-cat.png", samples.pe_executable())
        error = assert_error(response, 415, "unsupported_file_type")
        assert "cute-cat.png" in error["message"] and "Windows executable" in error["message"]
        await assert_nothing_stored(stored, clean_db)

    async def test_an_elf_binary_named_jpg(self, client, user, stored, clean_db):
        response = await upload(client, user, "photo.jpg", samples.elf_executable())
        error = assert_error(response, 415, "unsupported_file_type")
        assert "Linux executable" in error["message"]
        await assert_nothing_stored(stored, clean_db)

    @pytest.mark.parametrize(
        ("name", "content"),
        [
            ("archive.docx", samples.zip_archive()),  # a ZIP, but not a Word document
            ("data.bin", bytes(range(256)) * 4),
            ("utf16.txt", "hello".encode("utf-16")),
            ("nul.txt", b"text with a \x00 NUL"),
            ("latin1.txt", "café".encode("latin-1")),
            ("picture.bmp", samples.image("BMP")),
            ("picture.tiff", samples.image("TIFF")),
        ],
    )
    async def test_disallowed_types(self, client, user, stored, clean_db, name, content):
        assert_error(await upload(client, user, name, content), 415, "unsupported_file_type")
        await assert_nothing_stored(stored, clean_db)

    async def test_binary_data_after_a_text_start_is_refused(self, client, user, stored, clean_db):
        # Half a megabyte of text, then a NUL: found while streaming, after the first batches.
        content = b"a" * 600_000 + b"\x00" + b"b" * 1000
        assert_error(await upload(client, user, "log.txt", content), 415, "unsupported_file_type")
        await assert_nothing_stored(stored, clean_db)

    async def test_a_text_file_cut_in_a_utf8_sequence(self, client, user, stored, clean_db):
        content = "ünïcödé".encode()[:-1]
        assert_error(await upload(client, user, "cut.txt", content), 415, "unsupported_file_type")
        await assert_nothing_stored(stored, clean_db)

    @pytest.mark.parametrize(
        ("name", "content"),
        [
            ("truncated.png", samples.image("PNG", (300, 300))[:-200]),
            ("truncated.jpg", samples.image("JPEG", (300, 300))[:-500]),
            ("garbled.gif", samples.image("GIF", (50, 50))[:20] + b"\x13" * 300),
            ("garbled.webp", samples.image("WEBP", (50, 50))[:30] + b"\x00" * 100),
            ("broken.pdf", b"%PDF-1.7\nnot really a pdf at all\n"),
            ("broken.docx", samples.word(["x"])[:300]),
        ],
    )
    async def test_truncated_or_corrupt_files(self, client, user, stored, clean_db, name, content):
        error = assert_error(await upload(client, user, name, content), 422, "corrupt_file")
        assert name in error["message"]
        await assert_nothing_stored(stored, clean_db)

    # 9400: 88 megapixels, under Pillow's own limit (89.5) but over IMAGE_MAX_PIXELS (40).
    @pytest.mark.parametrize("side", [9_400, 10_000, 20_000])
    async def test_a_png_decompression_bomb(self, client, user, stored, clean_db, side):
        bomb = samples.png_bomb(side, side)
        assert len(bomb) < 200_000  # decodes to side * side pixels: 88 to 400 megapixels
        error = assert_error(await upload(client, user, "bomb.png", bomb), 422, "image_too_large")
        assert "bomb.png" in error["message"] and "40 megapixels" in error["message"]
        await assert_nothing_stored(stored, clean_db)

    @pytest.mark.parametrize(
        ("part", "size"),
        [("word/media/image1.png", 1000 * 2**20), ("word/styles.xml", 300 * 2**20)],
    )
    async def test_a_word_document_that_is_a_zip_bomb(
        self, client, user, stored, clean_db, part, size
    ):
        bomb = samples.docx_bomb(part, size)  # about 1 MB
        response = await upload(client, user, "report.docx", bomb)
        error = assert_error(response, 422, "document_too_large")
        assert "report.docx" in error["message"]
        await assert_nothing_stored(stored, clean_db)

    @pytest.mark.parametrize("length", [5_000, 1025, 100_000])
    async def test_a_name_too_long(self, client, user, stored, clean_db, length):
        name = ("n" * (length - 4) + ".txt").encode()
        response = await client.post(
            "/api/files",
            content=form(name, b"text"),
            headers={**user.headers, "Content-Type": FORM_TYPE},
        )
        error = assert_error(response, 422, "file_name_too_long")
        assert "1024 characters" in error["message"]
        await assert_nothing_stored(stored, clean_db)

    async def test_names_at_the_limit_still_work(self, client, user):
        # 1024 characters, three bytes each in UTF-8, and quotes a browser sends as %22.
        for name in ["✓" * 1017 + '"a".txt', "x" * 1020 + ".txt"]:
            assert len(name) == 1024
            encoded = name.encode().replace(b'"', b"%22")
            response = await client.post(
                "/api/files",
                content=form(encoded, b"text"),
                headers={**user.headers, "Content-Type": FORM_TYPE},
            )
            assert response.status_code == 201, response.text
            stored_name = response.json()["name"]
            assert len(stored_name) == 255 and stored_name.endswith(".txt")

    @pytest.mark.parametrize("name", [b"../../etc/passwd", b"..\\..\\boot.ini", b"evil\x00.png"])
    async def test_names_with_traversal_or_nul(self, client, user, stored, clean_db, name):
        response = await client.post(
            "/api/files",
            content=form(name, b"text"),
            headers={**user.headers, "Content-Type": FORM_TYPE},
        )
        assert_error(response, 422, "invalid_file_name")
        await assert_nothing_stored(stored, clean_db)

    async def test_over_the_size_limit_while_streaming(self, database, file_settings, clean_db):
        settings = make_settings(database, file_max_bytes=100_000, **file_settings)
        stored = StorageProbe(settings)
        async with serving(settings) as (app, client):
            user = await register(client)
            sent = 0

            async def body():
                # No Content-Length (chunked): the limit is found while streaming.
                nonlocal sent
                yield form(b"big.txt", b"", close=False)
                for _ in range(50):
                    sent += 1
                    yield b"x" * 10_000

            response = await client.post(
                "/api/files",
                content=body(),
                headers={**user.headers, "Content-Type": FORM_TYPE},
            )
            error = assert_error(response, 413, "file_too_large")
            assert "100000 bytes" in error["message"]
            assert sent < 50  # cut off, not read to the end
            assert stored.objects() == set() and stored.spool() == []
            assert await rows(app.state.runtime.db.engine) == (0, 0)

    async def test_over_the_size_limit_by_content_length(self, database, file_settings, clean_db):
        settings = make_settings(database, file_max_bytes=100_000, **file_settings)
        async with serving(settings) as (_app, client):
            user = await register(client)
            read = 0

            async def body():
                nonlocal read
                for _ in range(20):
                    read += 1
                    yield b"x" * 100_000

            response = await client.post(
                "/api/files",
                content=body(),
                headers={
                    **user.headers,
                    "Content-Type": FORM_TYPE,
                    "Content-Length": str(2_000_000),
                },
            )
            assert_error(response, 413, "file_too_large")
            assert read == 0  # refused before a byte of the body was read

    async def test_over_the_quota(self, database, file_settings, clean_db):
        settings = make_settings(database, storage_quota_bytes=4_000, **file_settings)
        async with serving(settings) as (_app, client):
            user = await register(client)
            first = await uploaded(client, user, "one.txt", b"1" * 1500)
            await uploaded(client, user, "two.txt", b"2" * 1500)
            response = await upload(client, user, "three.txt", b"3" * 1500)
            error = assert_error(response, 413, "storage_quota_exceeded")
            assert "4000" in error["message"]
            # Deleting a file frees its share at once.
            deleted = await client.delete(f"/api/files/{first['id']}", headers=user.headers)
            assert deleted.status_code == 204
            await uploaded(client, user, "three.txt", b"3" * 1500)
            # Another user's quota is their own.
            other = await register(client)
            await uploaded(client, other, "mine.txt", b"4" * 1500)

    async def test_concurrent_uploads_cannot_overrun_the_quota(
        self, database, file_settings, clean_db
    ):
        quota = 6_000
        settings = make_settings(database, storage_quota_bytes=quota, **file_settings)
        async with serving(settings) as (app, client):
            user = await register(client)
            responses = await asyncio.gather(
                *(upload(client, user, f"f{n}.txt", b"z" * 1500) for n in range(8))
            )
            accepted = [r for r in responses if r.status_code == 201]
            refused = [r for r in responses if r.status_code != 201]
            assert accepted, [r.text for r in responses]
            assert sum(r.json()["size_bytes"] for r in accepted) <= quota
            for response in refused:
                assert_error(response, 413, "storage_quota_exceeded")
            assert await rows(app.state.runtime.db.engine) == (len(accepted), 0)

    async def test_no_file_part(self, client, user, stored, clean_db):
        response = await client.post(
            "/api/files",
            data={"note": "no file"},
            files={"other": ("a.txt", b"x")},
            headers=user.headers,
        )
        error = assert_error(response, 422, "file_missing")
        assert error["details"][0]["field"] == "body.file"
        await assert_nothing_stored(stored, clean_db)

    async def test_no_file_chosen(self, client, user, stored, clean_db):
        # What a browser sends for an empty file input.
        response = await client.post(
            "/api/files",
            content=form(b"", b""),
            headers={**user.headers, "Content-Type": FORM_TYPE},
        )
        assert_error(response, 422, "file_missing")
        await assert_nothing_stored(stored, clean_db)

    async def test_not_multipart(self, client, user, stored, clean_db):
        response = await client.post("/api/files", json={"file": "x"}, headers=user.headers)
        assert_error(response, 400, "invalid_upload")
        await assert_nothing_stored(stored, clean_db)

    async def test_a_form_without_its_end(self, client, user, stored, clean_db):
        response = await client.post(
            "/api/files",
            content=form(b"cut.txt", b"some text", close=False),
            headers={**user.headers, "Content-Type": FORM_TYPE},
        )
        assert_error(response, 400, "upload_incomplete")
        await assert_nothing_stored(stored, clean_db)

    async def test_two_files_in_one_request(self, client, user, stored, clean_db):
        response = await client.post(
            "/api/files",
            files=[("file", ("a.txt", b"a")), ("file", ("b.txt", b"b"))],
            headers=user.headers,
        )
        assert_error(response, 400, "invalid_upload")
        await assert_nothing_stored(stored, clean_db)


class TestReadFile:
    async def test_metadata(self, client, user):
        file = await uploaded(client, user, "notes.md", b"# Notes\n")
        response = await client.get(f"/api/files/{file['id']}", headers=user.headers)
        assert response.status_code == 200
        assert response.json() == file

    async def test_another_users_file_is_404_everywhere(self, client, user, other_user, stored):
        file = await uploaded(client, user, "private.txt", b"mine")
        for method, path in [
            ("GET", f"/api/files/{file['id']}"),
            ("GET", f"/api/files/{file['id']}/content"),
            ("DELETE", f"/api/files/{file['id']}"),
        ]:
            response = await client.request(method, path, headers=other_user.headers)
            assert_error(response, 404, "file_not_found")
        listing = await client.get("/api/files", headers=other_user.headers)
        assert listing.json()["items"] == []
        # Still there for its owner.
        assert len(stored.objects()) == 1
        response = await client.get(f"/api/files/{file['id']}/content", headers=user.headers)
        assert response.content == b"mine"

    async def test_unknown_and_malformed_ids(self, client, user):
        assert_error(
            await client.get(f"/api/files/{uuid.uuid4()}", headers=user.headers),
            404,
            "file_not_found",
        )
        assert_error(await client.get("/api/files/not-a-uuid", headers=user.headers), 422)


class TestDownload:
    async def test_an_image_is_shown_inline(self, client, user):
        png = samples.image("PNG")
        file = await uploaded(client, user, "cat.png", png)
        response = await client.get(f"/api/files/{file['id']}/content", headers=user.headers)
        assert response.status_code == 200
        assert response.content == png
        assert response.headers["content-type"] == "image/png"
        assert response.headers["content-disposition"] == (
            "inline; filename=\"cat.png\"; filename*=UTF-8''cat.png"
        )
        assert response.headers["content-length"] == str(len(png))
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["content-security-policy"] == "default-src 'none'; sandbox"

    @pytest.mark.parametrize(
        ("name", "content", "media_type"),
        [
            ("page.html", b"<script>alert(document.cookie)</script>", "text/html"),
            (
                "drawing.svg",
                b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
                "image/svg+xml",
            ),
            ("report.pdf", samples.pdf(["x"]), "application/pdf"),
            ("data.json", b'{"a": 1}', "application/json"),
            ("app.js", b"fetch('/api/users/me', {method: 'DELETE'})", "text/javascript"),
            ("style.css", b"body { background: url(/api/auth/logout) }", "text/css"),
        ],
    )
    async def test_everything_else_downloads_and_can_never_run_a_script(
        self, client, user, name, content, media_type
    ):
        file = await uploaded(client, user, name, content)
        assert file["media_type"] == media_type  # detected, and shown in the metadata
        response = await client.get(f"/api/files/{file['id']}/content", headers=user.headers)
        assert response.content == content
        # Served as opaque bytes: never as a script or stylesheet a page of Parley's could load.
        assert response.headers["content-type"] == "application/octet-stream"
        assert response.headers["content-disposition"].startswith("attachment;")
        assert response.headers["x-content-type-options"] == "nosniff"
        csp = response.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "sandbox" in csp

    async def test_a_name_outside_ascii(self, client, user):
        name = 'résumé ✓ "final".txt'
        file = await uploaded(client, user, name, b"cv")
        response = await client.get(f"/api/files/{file['id']}/content", headers=user.headers)
        disposition = response.headers["content-disposition"]
        assert disposition == (
            f"attachment; filename=\"resume  _final_.txt\"; filename*=UTF-8''{quote(name, safe='')}"
        )


class TestListFiles:
    async def test_pages_newest_first(self, client, user):
        made = [(await uploaded(client, user, f"f{n}.txt", b"x"))["id"] for n in range(5)]
        seen, cursor = [], None
        while True:
            params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
            response = await client.get("/api/files", params=params, headers=user.headers)
            assert response.status_code == 200, response.text
            page = response.json()
            assert len(page["items"]) <= 2
            seen += [item["id"] for item in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == list(reversed(made))

    async def test_filter_by_kind(self, client, user):
        image = await uploaded(client, user, "a.png", samples.image("PNG"))
        document = await uploaded(client, user, "b.txt", b"text")
        for kind, expected in [("image", image), ("document", document)]:
            response = await client.get("/api/files", params={"kind": kind}, headers=user.headers)
            assert [item["id"] for item in response.json()["items"]] == [expected["id"]]
        response = await client.get("/api/files", params={"kind": "video"}, headers=user.headers)
        assert_error(response, 422, "validation_error")

    async def test_a_bad_cursor(self, client, user):
        for cursor in ["garbage", "eyJrIjoiY2hhdHMifQ"]:  # the second is another listing's
            response = await client.get(
                "/api/files", params={"cursor": cursor}, headers=user.headers
            )
            assert_error(response, 400, "invalid_cursor")


class TestDeleteFile:
    async def test_removes_the_row_and_the_bytes(self, app, client, user, stored, clean_db):
        file = await uploaded(client, user, "gone.txt", b"bye")
        keep = await uploaded(client, user, "kept.txt", b"stay")
        response = await client.delete(f"/api/files/{file['id']}", headers=user.headers)
        assert response.status_code == 204
        assert_error(
            await client.get(f"/api/files/{file['id']}", headers=user.headers),
            404,
            "file_not_found",
        )
        await purged(app)
        assert len(stored.objects()) == 1
        assert await rows(clean_db) == (1, 0)
        response = await client.get(f"/api/files/{keep['id']}/content", headers=user.headers)
        assert response.content == b"stay"


class TestDeleteAccount:
    async def test_removes_every_file_of_the_user_and_no_one_elses(
        self, app, client, user, other_user, stored, clean_db
    ):
        for n in range(3):
            await uploaded(client, user, f"mine{n}.png", samples.image("PNG"))
        theirs = await uploaded(client, other_user, "theirs.txt", b"keep me")
        assert len(stored.objects()) == 4
        response = await client.request(
            "DELETE", "/api/users/me", json={"password": user.password}, headers=user.headers
        )
        assert response.status_code == 204, response.text
        await purged(app)
        assert len(stored.objects()) == 1
        assert await rows(clean_db) == (1, 0)
        response = await client.get(
            f"/api/files/{theirs['id']}/content", headers=other_user.headers
        )
        assert response.content == b"keep me"


class TestSlowUpload:
    async def test_holds_no_database_connection_while_the_body_arrives(
        self, database, file_settings, clean_db
    ):
        # One connection in the pool: if the upload kept it, the listing below would wait.
        settings = make_settings(database, db_pool_size=1, db_max_overflow=0, **file_settings)
        async with serving(settings) as (_app, client):
            user = await register(client)
            halfway, finish = asyncio.Event(), asyncio.Event()

            async def body():
                yield form(b"slow.txt", b"first half ", close=False)
                halfway.set()
                await finish.wait()
                yield b"second half\r\n--" + BOUNDARY.encode() + b"--\r\n"

            sending = asyncio.create_task(
                client.post(
                    "/api/files",
                    content=body(),
                    headers={**user.headers, "Content-Type": FORM_TYPE},
                )
            )
            await halfway.wait()
            listing = await asyncio.wait_for(
                client.get("/api/files", headers=user.headers), timeout=10
            )
            assert listing.status_code == 200
            finish.set()
            response = await sending
            assert response.status_code == 201, response.text
            assert response.json()["size_bytes"] == len(b"first half second half")

    async def test_an_upload_that_takes_too_long(self, database, file_settings, clean_db):
        settings = make_settings(database, file_upload_timeout_seconds=0.5, **file_settings)
        stored = StorageProbe(settings)
        async with serving(settings) as (app, client):
            user = await register(client)

            async def body():
                yield form(b"stalled.txt", b"a start", close=False)
                await asyncio.Event().wait()  # the rest never comes

            response = await client.post(
                "/api/files", content=body(), headers={**user.headers, "Content-Type": FORM_TYPE}
            )
            assert_error(response, 408, "upload_timeout")
            assert stored.objects() == set() and stored.spool() == []
            assert await rows(app.state.runtime.db.engine) == (0, 0)
