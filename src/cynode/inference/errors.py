"""The one error the inference package raises to the node manager."""


class InferenceStartError(RuntimeError):
    """The backend the config asks for could not start; the message is the ack's error text."""
