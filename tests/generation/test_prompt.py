"""Building the prompt: attachments in their messages, the newest first, within the budget."""

import uuid

import pytest

from app.generation.errors import PromptTooLong
from app.generation.prompt import (
    DocumentInput,
    ImageInput,
    Turn,
    build_prompt,
    estimate_tokens,
    image_tokens,
)


def image(name: str = "cat.png", size: tuple[int, int] = (64, 48)) -> ImageInput:
    return ImageInput(uuid.uuid4(), name, "image/png", *size)


def document(name: str = "notes.txt", text: str = "Notes.", **extra) -> DocumentInput:
    return DocumentInput(uuid.uuid4(), name, "text/plain", text, **extra)


class TestImageTokens:
    @pytest.mark.parametrize(
        ("size", "tokens"),
        [
            ((1024, 1024), 765),  # OpenAI's worked example: 4 tiles
            ((2048, 2048), 765),  # scaled to 768x768 first
            ((64, 48), 255),  # one tile
            ((4096, 8192), 1105),  # to 1024x2048, then 768x1536: 6 tiles
            ((0, 0), 765),  # no dimensions known: the default
        ],
    )
    def test_openais_high_detail_formula(self, size, tokens):
        assert image_tokens(*size, max_side=2048) == tokens

    def test_vision_max_side_scales_first(self):
        # 1000x3000 sent at VISION_MAX_SIDE 512: 171x512, already under 768 on its short side.
        assert image_tokens(1000, 3000, max_side=512) == 85 + 170 * 1 * 1


class TestBuildPrompt:
    def test_without_attachments_messages_are_plain_strings(self):
        prompt = build_prompt(
            system_prompt="Be brief.",
            history=[Turn("user", "Hi"), Turn("assistant", "Hello"), Turn("user", "Bye")],
            context_length=4096,
            max_tokens=None,
        )
        assert prompt.messages == [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello"},
            {"role": "user", "content": "Bye"},
        ]
        assert prompt.cuts == [] and prompt.images == []
        assert prompt.tokens == sum(
            estimate_tokens(t) + 4 for t in ("Be brief.", "Hi", "Hello", "Bye")
        )

    def test_images_are_placeholders_until_rendered(self):
        cat = image()
        prompt = build_prompt(
            system_prompt=None,
            history=[Turn("user", "What?", [cat])],
            context_length=4096,
            max_tokens=None,
            vision=True,
        )
        assert prompt.images == [cat]
        rendered = prompt.render({cat.file_id: "data:image/png;base64,AAAA"})
        assert rendered[0]["content"][1] == {
            "type": "image_url",
            "image_url": {"url": "data:image/png;base64,AAAA"},
        }
        # The prompt itself is left as it was (it may be rendered again).
        assert prompt.messages[0]["content"][1]["image_url"]["url"].startswith("parley-image:")
        assert prompt.tokens == 4 + estimate_tokens("What?") + 255 + estimate_tokens(
            "[Attached image “cat.png”]"
        )

    def test_a_text_only_model_gets_a_note_instead_of_an_image(self):
        cat = image()
        message_id = uuid.uuid4()
        prompt = build_prompt(
            system_prompt=None,
            history=[Turn("user", "What?", [cat], message_id)],
            context_length=4096,
            max_tokens=None,
        )
        assert prompt.messages == [
            {
                "role": "user",
                "content": "[Attached image “cat.png” is not included: this model cannot see "
                "images.]\n\nWhat?",
            }
        ]
        assert [(c.file_id, c.message_id, c.cut, c.reason) for c in prompt.cuts] == [
            (cat.file_id, message_id, "left_out", "model_not_vision_capable")
        ]
        assert prompt.images == []

    def test_a_document_cut_when_it_was_read_says_so(self):
        notes = document(text="The beginning", truncated=True)
        prompt = build_prompt(
            system_prompt=None,
            history=[Turn("user", "Go on", [notes])],
            context_length=4096,
            max_tokens=None,
        )
        assert "only its beginning is included" in prompt.messages[0]["content"]
        assert [(c.cut, c.reason) for c in prompt.cuts] == [("truncated", "document_limits")]

    def test_the_newest_text_must_fit(self):
        with pytest.raises(PromptTooLong):
            build_prompt(
                system_prompt=None,
                history=[Turn("user", "word " * 2000, [document()])],
                context_length=1024,
                max_tokens=None,
            )

    def test_attachments_of_newer_messages_win(self):
        old, new = document("old.txt", "o" * 1600), document("new.txt", "n" * 1600)
        prompt = build_prompt(
            system_prompt=None,
            history=[
                Turn("user", "First", [old]),
                Turn("assistant", "Noted"),
                Turn("user", "Second", [new]),
            ],
            context_length=1024,
            max_tokens=None,
        )
        assert [(c.name, c.cut) for c in prompt.cuts] == [("old.txt", "left_out")]
        assert "n" * 1600 in prompt.messages[-1]["content"]
        assert prompt.tokens <= 512
