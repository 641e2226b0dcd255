"""Exports of other chat products, built in their real formats, for import tests and the
benchmark (bench/import_export.py): ChatGPT's conversations.json (a `mapping` tree), Claude's
(`chat_messages`), and Open WebUI's (`chat.history.messages` with `parentId`)."""

import io
import json
import uuid
import zipfile
from typing import Any

T0 = 1_733_000_000.0  # 2024-11-30, in epoch seconds


class ChatGPTConversation:
    """A ChatGPT conversation built node by node, as its export has it: a root node with no
    message, each node naming its parent and children, `current_node` the branch shown last."""

    def __init__(self, title: str, *, conversation_id: str | None = None, t0: float = T0) -> None:
        self.title = title
        self.id = conversation_id or str(uuid.uuid4())
        self.t = t0
        self.t0 = t0
        self.root = "client-created-root"
        self.mapping: dict[str, dict[str, Any]] = {
            self.root: {"id": self.root, "message": None, "parent": None, "children": []}
        }
        self.current = self.root

    def add(
        self,
        role: str,
        parts: list[Any] | None = None,
        *,
        parent: str | None = None,
        content_type: str = "text",
        metadata: dict[str, Any] | None = None,
        recipient: str = "all",
        create_time: float | bool | None = True,
        node_id: str | None = None,
    ) -> str:
        """Adds a message below `parent` (default: the last one added); its node id."""
        node_id = node_id or str(uuid.uuid4())
        parent = parent or self.current
        self.t += 7
        message: dict[str, Any] = {
            "id": node_id,
            "author": {"role": role, "name": None, "metadata": {}},
            "create_time": self.t if create_time is True else create_time,
            "update_time": None,
            "content": {"content_type": content_type, "parts": parts if parts is not None else []},
            "status": "finished_successfully",
            "end_turn": True,
            "weight": 1.0,
            "metadata": metadata or {},
            "recipient": recipient,
        }
        self.mapping[node_id] = {
            "id": node_id,
            "message": message,
            "parent": parent,
            "children": [],
        }
        self.mapping[parent]["children"].append(node_id)
        self.current = node_id
        return node_id

    def export(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "create_time": self.t0,
            "update_time": self.t,
            "mapping": self.mapping,
            "moderation_results": [],
            "current_node": self.current,
            "plugin_ids": None,
            "conversation_id": self.id,
            "conversation_template_id": None,
            "gizmo_id": None,
            "is_archived": False,
            "safe_urls": [],
            "default_model_slug": "gpt-4o",
            "id": self.id,
        }


def chatgpt_trip(title: str = "Lisbon trip") -> tuple[dict[str, Any], dict[str, str]]:
    """A realistic ChatGPT conversation: a hidden system node under the null root, a question,
    an answer regenerated once (two sibling answers), a follow-up with an image and a file
    (multimodal_text), a code-interpreter call and its tool output, and the final answer. Also
    the node ids by name."""
    chat = ChatGPTConversation(title)
    nodes: dict[str, str] = {}
    nodes["system"] = chat.add(
        "system",
        [""],
        metadata={"is_visually_hidden_from_conversation": True},
        create_time=None,
    )
    nodes["question"] = chat.add("user", ["What should I see in Lisbon?"])
    nodes["first_answer"] = chat.add(
        "assistant", ["Belém Tower and the Alfama."], metadata={"model_slug": "gpt-4"}
    )
    nodes["second_answer"] = chat.add(
        "assistant",
        ["Try the Alfama, Belém and a tram ride."],
        parent=nodes["question"],
        metadata={"model_slug": "gpt-4o"},
    )
    nodes["photo"] = chat.add(
        "user",
        [
            {
                "content_type": "image_asset_pointer",
                "asset_pointer": "file-service://file-Photo123",
                "size_bytes": 123456,
                "width": 800,
                "height": 600,
            },
            "What is this building?",
        ],
        content_type="multimodal_text",
        metadata={
            "attachments": [
                {"id": "file-Photo123", "name": "tower.jpg", "mime_type": "image/jpeg"},
                {"id": "file-Plan456", "name": "itinerary.pdf", "mime_type": "application/pdf"},
            ]
        },
    )
    nodes["tool_call"] = chat.add(
        "assistant",
        ["print('look up the photo')"],
        content_type="code",
        recipient="python",
    )
    nodes["tool_output"] = chat.add(
        "tool", [], content_type="execution_output", metadata={"aggregate_result": {}}
    )
    nodes["answer"] = chat.add(
        "assistant", ["That is the Belém Tower."], metadata={"model_slug": "gpt-4o"}
    )
    return chat.export(), nodes


def claude_conversation(title: str = "Rust lifetimes") -> dict[str, Any]:
    """A Claude export's conversation: chat_messages in order, one with an attachment whose text
    is included and a file that is not."""
    conversation_id = str(uuid.uuid4())
    first, second, third, fourth = (str(uuid.uuid4()) for _ in range(4))
    return {
        "uuid": conversation_id,
        "name": title,
        "created_at": "2024-11-02T10:00:00.000000Z",
        "updated_at": "2024-11-02T10:05:00.000000Z",
        "account": {"uuid": str(uuid.uuid4())},
        "chat_messages": [
            {
                "uuid": first,
                "text": "Why does this not compile?",
                "content": [{"type": "text", "text": "Why does this not compile?"}],
                "sender": "human",
                "created_at": "2024-11-02T10:00:00.000000Z",
                "updated_at": "2024-11-02T10:00:00.000000Z",
                "attachments": [
                    {
                        "file_name": "main.rs",
                        "file_size": 42,
                        "file_type": "text/x-rust",
                        "extracted_content": "fn longest(a: &str, b: &str) -> &str { a }",
                    }
                ],
                "files": [{"file_name": "screenshot.png"}],
            },
            {
                "uuid": second,
                "text": "It needs a lifetime parameter.",
                "content": [
                    {"type": "text", "text": "It needs a lifetime parameter."},
                    {"type": "tool_use", "name": "search", "input": {}},
                ],
                "sender": "assistant",
                "created_at": "2024-11-02T10:00:10.000000Z",
                "updated_at": "2024-11-02T10:00:10.000000Z",
                "attachments": [],
                "files": [],
            },
            {
                "uuid": third,
                "text": "Show me.",
                "content": [{"type": "text", "text": "Show me."}],
                "sender": "human",
                "created_at": "2024-11-02T10:01:00.000000Z",
                "updated_at": "2024-11-02T10:01:00.000000Z",
                "attachments": [],
                "files": [],
            },
            {
                "uuid": fourth,
                "text": "fn longest<'a>(a: &'a str, b: &'a str) -> &'a str",
                "content": [
                    {"type": "text", "text": "fn longest<'a>(a: &'a str, b: &'a str) -> &'a str"}
                ],
                "sender": "assistant",
                "created_at": "2024-11-02T10:01:10.000000Z",
                "updated_at": "2024-11-02T10:01:10.000000Z",
                "attachments": [],
                "files": [],
            },
        ],
    }


def openwebui_chat(title: str = "Soup recipes") -> dict[str, Any]:
    """An Open WebUI chat export: history.messages by id with parentId and childrenIds, an
    answer regenerated (two children of the question), currentId on the second."""
    ids = {name: str(uuid.uuid4()) for name in ("q", "a1", "a2", "q2", "a3")}

    def message(
        key: str, parent: str | None, role: str, content: str, ts: int, **more: Any
    ) -> dict[str, Any]:
        return {
            "id": ids[key],
            "parentId": ids[parent] if parent else None,
            "childrenIds": [],
            "role": role,
            "content": content,
            "timestamp": ts,
            **more,
        }

    messages = {
        ids["q"]: message(
            "q",
            None,
            "user",
            "A soup for a cold day?",
            1_730_000_000,
            files=[{"type": "file", "name": "pantry.txt", "url": "/api/v1/files/abc"}],
            models=["llama3:8b"],
        ),
        ids["a1"]: message("a1", "q", "assistant", "Minestrone.", 1_730_000_010, model="llama3:8b"),
        ids["a2"]: message(
            "a2", "q", "assistant", "Caldo verde.", 1_730_000_020, model="llama3:8b"
        ),
        ids["q2"]: message("q2", "a2", "user", "How long does it take?", 1_730_000_030),
        ids["a3"]: message(
            "a3", "q2", "assistant", "About forty minutes.", 1_730_000_040, model="llama3:8b"
        ),
    }
    messages[ids["q"]]["childrenIds"] = [ids["a1"], ids["a2"]]
    messages[ids["a2"]]["childrenIds"] = [ids["q2"]]
    messages[ids["q2"]]["childrenIds"] = [ids["a3"]]
    return {
        "id": str(uuid.uuid4()),
        "user_id": str(uuid.uuid4()),
        "title": title,
        "chat": {
            "id": "",
            "title": title,
            "models": ["llama3:8b"],
            "params": {},
            "history": {"messages": messages, "currentId": ids["a3"]},
            "messages": [messages[ids[key]] for key in ("q", "a2", "q2", "a3")],
            "tags": [],
            "timestamp": 1_730_000_000_000,
        },
        "updated_at": 1_730_000_040,
        "created_at": 1_730_000_000,
        "share_id": None,
        "archived": False,
        "pinned": False,
        "meta": {},
        "folder_id": None,
    }


def to_json(conversations: Any) -> bytes:
    return json.dumps(conversations).encode()


def zipped(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()
