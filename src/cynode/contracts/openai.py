"""The OpenAI-compatible chat wire format (gateway ``/v1/models``, ``/v1/chat/completions``, the
Worker API inference route, and the chat thread routes).

Requests ignore unknown fields, in the request and inside each message (upstream's forward
compatibility rule); message ``content`` may be a string or a list of typed parts, of which the
text parts count. Responses follow the OpenAI Chat Completions shapes; errors on the two OpenAI
routes use :class:`OpenAIError`, never a problem document.
"""

from __future__ import annotations

from typing import Annotated, Final, Literal

import msgspec

from cynode.contracts.codec import Timestamp

DEFAULT_CHAT_MODEL: Final = "cynodeai.pm"
"""The stable model id of the PM chat surface; what a request with no (or an empty) ``model`` means."""

MaxTokens = Annotated[int, msgspec.Meta(ge=1)]


class ContentPart(msgspec.Struct, kw_only=True):
    type: str
    text: str | None = None


class ChatMessage(msgspec.Struct, kw_only=True, omit_defaults=True):
    role: str
    content: str | list[ContentPart] | None = None

    def text(self) -> str:
        """The message's text: the string content, or its text parts joined by newlines."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "\n".join(part.text for part in self.content if part.type == "text" and part.text)


class StreamOptions(msgspec.Struct, kw_only=True, omit_defaults=True):
    include_usage: bool = False


class ChatCompletionRequest(msgspec.Struct, kw_only=True, omit_defaults=True):
    messages: list[ChatMessage]
    model: str | None = None
    stream: bool = False
    max_tokens: MaxTokens | None = None
    max_completion_tokens: MaxTokens | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    stream_options: StreamOptions | None = None

    @property
    def token_limit(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens


class AssistantMessage(msgspec.Struct, kw_only=True):
    role: Literal["assistant"] = "assistant"
    content: str = ""


class Usage(msgspec.Struct, kw_only=True):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class Choice(msgspec.Struct, kw_only=True):
    index: int = 0
    message: AssistantMessage
    finish_reason: str | None = "stop"


class ChatCompletion(msgspec.Struct, kw_only=True):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage = msgspec.field(default_factory=Usage)

    @property
    def content(self) -> str:
        return self.choices[0].message.content if self.choices else ""


class Delta(msgspec.Struct, kw_only=True, omit_defaults=True):
    role: str | None = None
    content: str | None = None


class ChunkChoice(msgspec.Struct, kw_only=True):
    index: int = 0
    delta: Delta = msgspec.field(default_factory=Delta)
    finish_reason: str | None = None


class ChatCompletionChunk(msgspec.Struct, kw_only=True):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice] = []
    usage: Usage | None = None

    @property
    def content(self) -> str:
        return "".join(choice.delta.content or "" for choice in self.choices)


class Model(msgspec.Struct, kw_only=True):
    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str = "cynode"


class ModelList(msgspec.Struct, kw_only=True):
    object: Literal["list"] = "list"
    data: list[Model]


class ErrorBody(msgspec.Struct, kw_only=True):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class OpenAIError(msgspec.Struct, kw_only=True):
    error: ErrorBody


class WarmRequest(msgspec.Struct, kw_only=True):
    model: str | None = None


class WarmResponse(msgspec.Struct, kw_only=True):
    status: Literal["warming", "warm", "unavailable"]
    model: str


class ChatThread(msgspec.Struct, kw_only=True):
    id: str
    project_id: str | None
    title: str | None
    created_at: Timestamp
    updated_at: Timestamp


class ChatThreadPage(msgspec.Struct, kw_only=True):
    threads: list[ChatThread]
    next_cursor: str | None = None


class StoredChatMessage(msgspec.Struct, kw_only=True):
    id: str
    thread_id: str
    role: str
    content: str
    created_at: Timestamp
    model: str | None = None


class ChatMessagePage(msgspec.Struct, kw_only=True):
    messages: list[StoredChatMessage]
    next_cursor: str | None = None
