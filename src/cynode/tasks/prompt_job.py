"""The sandbox job that answers a prompt-mode task with the node's model (CONTRACT.md section 6).

A prompt is never run as shell. Its job runs a fixed Python program (standard library only, so
any image with ``python3`` works) that sends the prompt, taken from env ``CYNODE_PROMPT``, to the
OpenAI-compatible ``/v1/chat/completions`` behind ``INFERENCE_PROXY_URL`` (an
``http+unix://<percent-encoded socket path>`` URL the node sets for ``use_inference`` jobs) and
prints the answer. The prompt never becomes part of the program text, so no prompt can change
what runs. The node frames the prompt for a model without a chat template and asks again when the
model answers nothing; an answer that is still empty fails the job with that reason in stderr, never
a blank success.
"""

from __future__ import annotations

from typing import Final

from cynode.contracts.worker import SandboxSpec

PROMPT_ENV: Final = "CYNODE_PROMPT"
INFERENCE_URL_ENV: Final = "INFERENCE_PROXY_URL"
REQUEST_TIMEOUT_SECONDS: Final = 120

PROMPT_SCRIPT: Final = f"""\
import http.client, json, os, socket, sys
from urllib.parse import unquote, urlsplit

def fail(message):
    sys.stderr.write("cynode prompt job: " + message + "\\n")
    sys.exit(1)

class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, socket_path):
        super().__init__("localhost", timeout={REQUEST_TIMEOUT_SECONDS})
        self.socket_path = socket_path

    def connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.socket_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock

url = os.environ.get("{INFERENCE_URL_ENV}", "")
parts = urlsplit(url)
if parts.scheme != "http+unix" or not parts.netloc:
    fail("{INFERENCE_URL_ENV} must be an http+unix:// URL, got " + repr(url))
body = json.dumps({{"messages": [{{"role": "user", "content": os.environ.get("{PROMPT_ENV}", "")}}]}})
connection = UnixHTTPConnection(unquote(parts.netloc))
try:
    headers = {{"Content-Type": "application/json"}}
    connection.request("POST", "/v1/chat/completions", body=body.encode(), headers=headers)
    response = connection.getresponse()
    raw = response.read()
except (OSError, http.client.HTTPException) as exc:
    fail("inference request failed: " + (str(exc) or type(exc).__name__))
finally:
    connection.close()
if response.status != 200:
    fail("inference answered HTTP " + str(response.status) + ": " + raw[:500].decode("utf-8", "replace"))
try:
    answer = json.loads(raw)["choices"][0]["message"]["content"]
except (ValueError, LookupError, TypeError):
    fail("inference answer is not a chat completion: " + raw[:500].decode("utf-8", "replace"))
if not isinstance(answer, str) or not answer.strip():
    fail("the model returned an empty answer")
sys.stdout.write(answer if answer.endswith("\\n") else answer + "\\n")
"""


def prompt_sandbox(prompt: str, image: str) -> SandboxSpec:
    """The job for a prompt-mode task: the fixed program, the prompt in its environment, inference on."""
    return SandboxSpec(
        image=image,
        command=["python3", "-c", PROMPT_SCRIPT],
        env={PROMPT_ENV: prompt},
        use_inference=True,
    )


def shell_sandbox(script: str, image: str, *, use_inference: bool) -> SandboxSpec:
    """The job for a ``script`` or ``commands`` task: the text run by ``sh -c`` as the user wrote it."""
    return SandboxSpec(image=image, command=["sh", "-c", script], use_inference=use_inference)
