"""``cynode chat`` and ``cynode models``: the gateway's OpenAI-compatible surface from the terminal.

``cynode chat -m "question"`` asks once and prints the answer as it streams in (``--json``: the
whole completion as JSON); without ``-m`` it is interactive: each line is a message, the
conversation so far goes with it, answers stream in, and ``/exit`` (or end of input) quits.
``--model`` picks a model (default ``cynodeai.pm``); ``cynode models`` lists what the gateway offers.
``cynode chat threads`` lists the caller's stored conversations and ``cynode chat show THREAD_ID``
prints one (both with ``--json``, and the operator commands' exit statuses, see
:mod:`cynode.client.exit_codes`: 3 not logged in, 4 no such thread of yours, 6 refused input, 7
gateway unreachable). Calls use the stored session and refresh it once on a 401, like every other
client command.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Final, TypeVar
from urllib.parse import quote

import click
import httpx
import msgspec

from cynode.client.admin_commands import operator_command
from cynode.client.api import ClientError, GatewayClient, LoginRequired
from cynode.client.commands import client_command, echo_json, print_answer, signed_in
from cynode.client.terminal import terminal_safe
from cynode.contracts.codec import PayloadError, decode, encode
from cynode.contracts.openai import (
    DEFAULT_CHAT_MODEL,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatMessage,
    ChatMessagePage,
    ChatThreadPage,
    ModelList,
)
from cynode.inference.sse import DONE

__all__ = ["chat", "models"]

EXIT_COMMAND: Final = "/exit"
PROMPT: Final = "you> "
MESSAGES_PAGE: Final = 200
"""The gateway's largest page; ``chat show`` follows the cursor through longer threads."""
_UNAUTHORIZED = 401
_CHAT_TIMEOUT = httpx.Timeout(300, connect=10)

T = TypeVar("T")


class _ErrorDetail(msgspec.Struct):
    message: str = ""


class _Failure(msgspec.Struct):
    error: _ErrorDetail | None = None
    detail: str | None = None


def _failure(response: httpx.Response, body: bytes) -> ClientError:
    try:
        failure = msgspec.json.decode(body, type=_Failure)
    except msgspec.DecodeError:
        failure = _Failure()
    detail = (failure.error.message if failure.error else None) or failure.detail or response.reason_phrase
    if response.status_code == _UNAUTHORIZED:
        return LoginRequired(detail or "session expired")
    return ClientError(response.status_code, detail or "request failed")


class ChatSession:
    """OpenAI-compatible calls for a signed-in gateway client; ``project`` sets ``OpenAI-Project``."""

    def __init__(self, gateway: GatewayClient, project: str | None = None) -> None:
        self._gateway = gateway
        self._project = project
        self._http = httpx.Client(base_url=gateway.gateway_url, timeout=_CHAT_TIMEOUT)

    def close(self) -> None:
        self._http.close()

    def _headers(self, access_token: str) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {access_token}", "Content-Type": "application/json"}
        if self._project:
            headers["OpenAI-Project"] = self._project
        return headers

    def _with_token(self, call: Callable[[dict[str, str]], T]) -> T:
        """Run ``call`` with the access token's headers; on LoginRequired refresh once and retry."""
        credentials = self._gateway.credentials
        if credentials is None:
            raise LoginRequired()
        try:
            return call(self._headers(credentials.access_token))
        except LoginRequired:
            return call(self._headers(self._gateway.refresh().access_token))

    def _json(self, method: str, path: str, answer_type: type[T], body: bytes | None = None) -> T:
        def call(headers: dict[str, str]) -> T:
            try:
                response = self._http.request(method, path, content=body, headers=headers)
            except httpx.HTTPError as exc:
                raise ClientError(None, f"cannot reach the gateway at {self._gateway.gateway_url}: {exc}") from exc
            if response.is_error:
                raise _failure(response, response.content)
            try:
                return decode(response.content, answer_type)
            except PayloadError as exc:
                raise ClientError(response.status_code, f"unexpected answer from the gateway: {exc}") from exc

        return self._with_token(call)

    def models(self) -> ModelList:
        return self._json("GET", "/v1/models", ModelList)

    def threads(self, limit: int | None) -> ChatThreadPage:
        query = f"?limit={limit}" if limit is not None else ""
        return self._json("GET", f"/v1/chat/threads{query}", ChatThreadPage)

    def messages(self, thread_id: str) -> ChatMessagePage:
        """Every message of the thread, oldest first (all pages)."""
        path = f"/v1/chat/threads/{quote(thread_id, safe='')}/messages?limit={MESSAGES_PAGE}"
        page = self._json("GET", path, ChatMessagePage)
        messages = list(page.messages)
        while page.next_cursor is not None:
            page = self._json("GET", f"{path}&cursor={quote(page.next_cursor, safe='')}", ChatMessagePage)
            messages.extend(page.messages)
        return ChatMessagePage(messages=messages, next_cursor=None)

    def complete(self, request: ChatCompletionRequest) -> ChatCompletion:
        return self._json("POST", "/v1/chat/completions", ChatCompletion, encode(request))

    def stream(self, request: ChatCompletionRequest) -> Iterator[str]:
        """The answer's text pieces as they arrive."""
        body = encode(msgspec.structs.replace(request, stream=True))

        def call(headers: dict[str, str]) -> Iterator[str]:
            # Opened here, so a 401 surfaces before the first piece and the retry can still happen.
            request_ = self._http.build_request("POST", "/v1/chat/completions", content=body, headers=headers)
            try:
                response = self._http.send(request_, stream=True)
            except httpx.HTTPError as exc:
                raise ClientError(None, f"cannot reach the gateway at {self._gateway.gateway_url}: {exc}") from exc
            if response.is_error:
                content = response.read()
                response.close()
                raise _failure(response, content)
            return _pieces(response)

        return self._with_token(call)


def _pieces(response: httpx.Response) -> Iterator[str]:
    try:
        for line in response.iter_lines():
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == DONE:
                return
            try:
                chunk = decode(data.encode(), ChatCompletionChunk)
            except PayloadError:
                raise _failure(response, data.encode()) from None
            if chunk.content:
                yield chunk.content
    finally:
        response.close()


def _say(session: ChatSession, request: ChatCompletionRequest) -> str:
    """Stream the answer to stdout and return it whole."""
    pieces = []
    for piece in session.stream(request):
        pieces.append(piece)
        click.echo(piece, nl=False)
    click.echo()
    return "".join(pieces)


@click.group(invoke_without_command=True)
@click.option("-m", "--message", help="Ask this once and exit (otherwise: an interactive chat).")
@click.option("--model", default=DEFAULT_CHAT_MODEL, show_default=True, help="The model to chat with.")
@click.option("--project", help="Project (id or slug) the conversation belongs to (OpenAI-Project header).")
@click.pass_context
@client_command
def chat(context: click.Context, message: str | None, model: str, project: str | None, as_json: bool) -> None:
    """Chat with the model through the gateway's OpenAI-compatible API.

    'cynode chat threads' lists your stored conversations, 'cynode chat show ID' prints one.
    """
    if context.invoked_subcommand is not None:
        if message is not None or project is not None or as_json:
            raise click.UsageError("-m, --project and --json go after the subcommand, or without one")
        return
    with signed_in() as gateway:
        session = ChatSession(gateway, project)
        try:
            if message is not None:
                request = ChatCompletionRequest(model=model, messages=[ChatMessage(role="user", content=message)])
                if as_json:
                    echo_json(session.complete(request))
                else:
                    _say(session, request)
                return
            _interactive(session, model)
        finally:
            session.close()


def _interactive(session: ChatSession, model: str) -> None:
    history: list[ChatMessage] = []
    click.echo(f"chatting with {model}; {EXIT_COMMAND} to quit", err=True)
    while True:
        try:
            line = click.prompt(PROMPT, prompt_suffix="", default="", show_default=False)
        except click.Abort:
            click.echo()
            return
        text = line.strip()
        if text == EXIT_COMMAND:
            return
        if not text:
            continue
        history.append(ChatMessage(role="user", content=text))
        answer = _say(session, ChatCompletionRequest(model=model, messages=history))
        history.append(ChatMessage(role="assistant", content=answer))


@click.command()
@client_command
def models(as_json: bool) -> None:
    """List the models the gateway offers for chat."""
    with signed_in() as gateway:
        session = ChatSession(gateway)
        try:
            listed = session.models()
        finally:
            session.close()
    if as_json:
        echo_json(listed)
    else:
        for model in listed.data:
            click.echo(model.id)


def _chat_session_call(call: Callable[[ChatSession], T]) -> T:
    with signed_in() as gateway:
        session = ChatSession(gateway)
        try:
            return call(session)
        finally:
            session.close()


@chat.command("threads")
@click.option("--limit", type=click.IntRange(min=1, max=MESSAGES_PAGE), help="At most this many threads.")
@operator_command
def chat_threads(limit: int | None, as_json: bool) -> None:
    """List your chat threads, most recently used first."""
    print_answer(as_json, _chat_session_call(lambda session: session.threads(limit)), _show_threads)


def _show_threads(page: ChatThreadPage) -> None:
    for thread in page.threads:
        click.echo(f"{thread.id}  {thread.updated_at:%Y-%m-%d %H:%M:%S}  {terminal_safe(thread.title or '(untitled)')}")
    if page.next_cursor:
        click.echo("(more threads; raise --limit to see them)", err=True)


@chat.command("show")
@click.argument("thread_id", metavar="THREAD_ID")
@operator_command
def chat_show(thread_id: str, as_json: bool) -> None:
    """Print the messages of one of your chat threads, oldest first."""
    print_answer(as_json, _chat_session_call(lambda session: session.messages(thread_id)), _show_messages)


def _show_messages(page: ChatMessagePage) -> None:
    for message in page.messages:
        click.echo(f"{message.role} ({message.created_at:%Y-%m-%d %H:%M:%S}):")
        click.echo(terminal_safe(message.content))
        click.echo()
