"""The errors the inference package raises: to the node manager (start) and to chat callers (requests)."""


class InferenceStartError(RuntimeError):
    """The backend the config asks for could not start; the message is the ack's error text."""


class InferenceCallError(RuntimeError):
    """A chat request the node's backend could not answer; ``status`` is the HTTP status to report
    (502 the backend failed, 503 no backend or overloaded, 504 too slow), ``code`` a stable reason."""

    def __init__(self, status: int, message: str, code: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
