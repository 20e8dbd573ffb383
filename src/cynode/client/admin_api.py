"""The admin calls of the gateway's user API (``/v1/users``, ``/v1/nodes``, ``/v1/settings``,
``/v1/credentials``, ``/v1/status``), as a :class:`GatewayClient` that also speaks them."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote
from uuid import UUID

from cynode.client.api import GatewayClient
from cynode.contracts.admin import (
    AddCredentialRequest,
    AdminStateChange,
    CredentialListResponse,
    CredentialResponse,
    NodeListResponse,
    NodeResponse,
    RotateCredentialRequest,
    SetSettingRequest,
    SettingListResponse,
    SettingResponse,
    SystemStatusResponse,
    UserListResponse,
)
from cynode.contracts.identity import CreateUserRequest, ResetPasswordRequest, UserResponse

__all__ = ["AdminClient"]


def _segment(value: str) -> str:
    return quote(value, safe="")


class AdminClient(GatewayClient):
    # -- users --------------------------------------------------------------------------------------

    def create_user(self, request: CreateUserRequest) -> UserResponse:
        return self._decoded(self._signed_in("POST", "/v1/users", body=request), UserResponse)

    def list_users(self, *, limit: int | None = None, cursor: str | None = None) -> UserListResponse:
        params = {name: str(value) for name, value in (("limit", limit), ("cursor", cursor)) if value is not None}
        return self._decoded(self._signed_in("GET", "/v1/users", params=params), UserListResponse)

    def get_user(self, user_id: UUID) -> UserResponse:
        return self._decoded(self._signed_in("GET", f"/v1/users/{user_id}"), UserResponse)

    def set_user_active(self, user_id: UUID, active: bool) -> UserResponse:
        action = "enable" if active else "disable"
        return self._decoded(self._signed_in("POST", f"/v1/users/{user_id}/{action}"), UserResponse)

    def reset_password(self, user_id: UUID, password: str) -> None:
        request = ResetPasswordRequest(password=password)
        self._checked(self._signed_in("POST", f"/v1/users/{user_id}/reset_password", body=request))

    # -- nodes --------------------------------------------------------------------------------------

    def list_nodes(self) -> NodeListResponse:
        return self._decoded(self._signed_in("GET", "/v1/nodes"), NodeListResponse)

    def get_node(self, node: str) -> NodeResponse:
        return self._decoded(self._signed_in("GET", f"/v1/nodes/{_segment(node)}"), NodeResponse)

    def change_node(self, node: str, action: str) -> AdminStateChange:
        """``action`` is ``enable``, ``disable`` or ``drain``."""
        return self._decoded(self._signed_in("POST", f"/v1/nodes/{_segment(node)}/{action}"), AdminStateChange)

    # -- settings -----------------------------------------------------------------------------------

    def list_settings(self) -> SettingListResponse:
        return self._decoded(self._signed_in("GET", "/v1/settings"), SettingListResponse)

    def get_setting(self, key: str) -> SettingResponse:
        return self._decoded(self._signed_in("GET", f"/v1/settings/{_segment(key)}"), SettingResponse)

    def set_setting(self, key: str, value: Any) -> SettingResponse:
        response = self._signed_in("PUT", f"/v1/settings/{_segment(key)}", body=SetSettingRequest(value=value))
        return self._decoded(response, SettingResponse)

    # -- credentials --------------------------------------------------------------------------------

    def list_credentials(self) -> CredentialListResponse:
        return self._decoded(self._signed_in("GET", "/v1/credentials"), CredentialListResponse)

    def add_credential(self, request: AddCredentialRequest) -> CredentialResponse:
        return self._decoded(self._signed_in("POST", "/v1/credentials", body=request), CredentialResponse)

    def rotate_credential(self, credential_id: UUID, secret: str) -> CredentialResponse:
        request = RotateCredentialRequest(secret=secret)
        response = self._signed_in("POST", f"/v1/credentials/{credential_id}/rotate", body=request)
        return self._decoded(response, CredentialResponse)

    def disable_credential(self, credential_id: UUID) -> CredentialResponse:
        return self._decoded(self._signed_in("POST", f"/v1/credentials/{credential_id}/disable"), CredentialResponse)

    # -- status -------------------------------------------------------------------------------------

    def system_status(self) -> SystemStatusResponse:
        return self._decoded(self._signed_in("GET", "/v1/status"), SystemStatusResponse)
