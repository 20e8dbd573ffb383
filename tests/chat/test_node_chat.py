"""The node's side of a chat (``cynode.inference.chat`` and ``framing``): the real embedded Gemma
base model gets a question/answer frame and gives text; an answer with no text is asked for again
and then reported, never returned as a blank success."""

from __future__ import annotations

import struct
from pathlib import Path

import msgspec
import pytest

from cynode.contracts.openai import ChatCompletionRequest, ChatMessage
from cynode.inference.chat import EMPTY_ANSWER_ATTEMPTS, NodeChat
from cynode.inference.errors import InferenceCallError
from cynode.inference.framing import GgufError, has_chat_template, question_answer_prompt
from cynode.inference.node import NodeInference
from cynode.inference.settings import InferenceSettings
from tests.fixtures.inference import FakeUpstream

QUESTION = ChatCompletionRequest(
    messages=[ChatMessage(role="user", content="What is the capital of France?")], max_tokens=12
)


def gguf(path: Path, metadata: dict[str, str]) -> Path:
    """A GGUF file holding only the given string metadata (no tensors)."""
    data = b"GGUF" + struct.pack("<IQQ", 3, 0, len(metadata))
    for key, value in metadata.items():
        data += struct.pack("<Q", len(key)) + key.encode()
        data += struct.pack("<IQ", 8, len(value.encode())) + value.encode()
    path.write_bytes(data)
    return path


def test_the_shipped_base_model_has_no_chat_template(embedded_inference: NodeInference) -> None:
    assert has_chat_template(embedded_inference.settings.embedded_model_path) is False
    upstream = embedded_inference.upstream()
    assert upstream is not None
    assert upstream.chat_template is False


def test_a_model_with_a_template_is_recognised(tmp_path: Path) -> None:
    assert has_chat_template(gguf(tmp_path / "chat.gguf", {"general.name": "x", "tokenizer.chat_template": "{{x}}"}))
    assert not has_chat_template(gguf(tmp_path / "base.gguf", {"general.name": "x"}))


def test_a_file_that_is_not_gguf_is_refused(tmp_path: Path) -> None:
    (tmp_path / "model.bin").write_bytes(b"not a model")
    with pytest.raises(GgufError):
        has_chat_template(tmp_path / "model.bin")


def test_the_frame_reads_as_a_question_and_answer_transcript() -> None:
    messages = [
        ChatMessage(role="system", content="Be brief."),
        ChatMessage(role="user", content="Hi"),
        ChatMessage(role="assistant", content="Hello."),
        ChatMessage(role="user", content=[{"type": "text", "text": "Capital of France?"}, {"type": "image_url"}]),
    ]
    decoded = msgspec.convert([msgspec.to_builtins(m) for m in messages], list[ChatMessage])
    assert question_answer_prompt(decoded) == (
        "Be brief.\nQuestion: Hi\nAnswer: Hello.\nQuestion: Capital of France?\nAnswer:"
    )


async def test_the_base_model_answers_a_framed_chat(embedded_inference: NodeInference) -> None:
    completion = await embedded_inference.chat.complete(QUESTION)
    assert completion.content.strip()
    assert completion.usage.prompt_tokens > 0
    assert completion.usage.completion_tokens > 0


async def test_a_stream_starts_with_text_and_ends_with_usage(embedded_inference: NodeInference) -> None:
    chunks = [chunk async for chunk in embedded_inference.chat.stream(QUESTION)]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[0].content.strip(), "the stream never starts with a blank chunk"
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.prompt_tokens > 0, "the framed prompt is counted"
    assert chunks[-1].usage.completion_tokens >= len(chunks) - 1


async def test_a_finished_stream_hands_its_turn_on_before_its_reader_takes_the_last_chunk(
    fake_upstream: FakeUpstream,
) -> None:
    fake_upstream.reply = b'data: {"choices": [{"delta": {"content": "Paris"}}]}\n\ndata: [DONE]\n\n'
    # One turn at the backend; a chat that cannot get it within the timeout is answered 503.
    chat = NodeChat(lambda: fake_upstream.upstream, InferenceSettings(chat_timeout_seconds=10))
    first = chat.stream(QUESTION)
    second = chat.stream(QUESTION)
    try:
        assert (await anext(first)).content == "Paris"
        last = await anext(first)  # the backend's answer is complete; this chunk waits for its reader
        assert last.choices[0].finish_reason == "stop"
        assert (await anext(second)).content == "Paris", "the second chat got the turn the first one finished with"
    finally:
        await first.aclose()
        await second.aclose()
        await chat.close()
    assert len(fake_upstream.requests) == 2


async def test_an_empty_answer_is_asked_again_then_reported(fake_upstream: FakeUpstream) -> None:
    fake_upstream.reply = b'{"choices": [{"index": 0, "message": {"role": "assistant", "content": " "}}]}'
    chat = NodeChat(lambda: fake_upstream.upstream)
    try:
        with pytest.raises(InferenceCallError) as failure:
            await chat.complete(QUESTION)
    finally:
        await chat.close()
    assert (failure.value.status, failure.value.code) == (502, "empty_completion")
    assert len(fake_upstream.requests) == EMPTY_ANSWER_ATTEMPTS


async def test_no_backend_is_a_503() -> None:
    with pytest.raises(InferenceCallError) as failure:
        await NodeChat(lambda: None).complete(QUESTION)
    assert failure.value.status == 503
