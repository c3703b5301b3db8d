"""Auth payloads: sign-in, sign-up, get-challenge (protocol-facts 2.1)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, RootModel, StringConstraints

from fsm.models._base import Model, Timestamp

__all__ = [
    "ChallengeResponse",
    "SignInRequest",
    "SignInResponse",
    "SignUpRequest",
    "SignUpResponse",
]


def _text(lo: int, hi: int, what: str) -> object:
    return Field(description=f"{what} ({lo}-{hi} characters, protocol-facts 2.1).")


InstallationId = Annotated[str, StringConstraints(min_length=32, max_length=128)]
DevicePassword = Annotated[str, StringConstraints(min_length=32, max_length=256)]
Email = Annotated[str, StringConstraints(min_length=3, max_length=128)]
EmailPassword = Annotated[str, StringConstraints(min_length=8, max_length=256)]


class MobileDeviceData(Model):
    """Credentials of the payer's wallet app."""

    installationId: InstallationId = _text(32, 128, "The app installation id")  # type: ignore[assignment]
    password: DevicePassword = _text(32, 256, "The device password")  # type: ignore[assignment]


class ResourceData(Model):
    """A payee signing in with the context code the payer shared."""

    resource: Annotated[
        str,
        StringConstraints(  # not ".": pydantic's engine lets it match "\r", ECMA-262's does not
            min_length=4, max_length=128, pattern=r"^voucher::context::code::[^\n\r\u2028\u2029]+$"
        ),
    ] = Field(description="voucher::context::code::<code> (4-128 characters, protocol-facts 2.1).")


class EmailPasswordData(Model):
    """A registered user's email credentials."""

    email: Email = _text(3, 128, "The email address")  # type: ignore[assignment]
    password: EmailPassword = _text(8, 256, "The password")  # type: ignore[assignment]


class MobileDeviceSignIn(Model):
    """Sign-in with a device (the payer's wallet)."""

    type: Literal["mobile-device"] = Field(description="mobile-device (protocol-facts 2.1).")
    data: MobileDeviceData


class ResourceSignIn(Model):
    """Sign-in with a context code (the payee); the token is scoped to that context."""

    type: Literal["resource"] = Field(description="resource (protocol-facts 2.1).")
    data: ResourceData


class EmailPasswordSignIn(Model):
    """Sign-in with email and password (a registered user)."""

    type: Literal["email-password"] = Field(description="email-password (protocol-facts 2.1).")
    data: EmailPasswordData


class SignInRequest(
    RootModel[
        Annotated[MobileDeviceSignIn | ResourceSignIn | EmailPasswordSignIn, Field(discriminator="type")]
    ]
):
    """POST /auth/sign-in: the data fields depend on the type (protocol-facts 2.1)."""


class Authorization(Model):
    """The issued token."""

    token: Annotated[str, StringConstraints(min_length=1)] = Field(
        description="A JWT, never empty (protocol-facts 2.1; a secret: never shown, D20)."
    )


class SignInResponse(Model):
    """POST /auth/sign-in answer (protocol-facts 2.1)."""

    authorization: Authorization


class MobileDeviceSignUpData(Model):
    """Device attestation for sign-up."""

    installationId: InstallationId = _text(32, 128, "The app installation id")  # type: ignore[assignment]
    password: DevicePassword = _text(32, 256, "The device password")  # type: ignore[assignment]
    platform: Literal["ios", "android"] = Field(description="ios or android (protocol-facts 2.1).")
    challenge: Annotated[str, StringConstraints(min_length=48, max_length=48)] = Field(
        description="The challenge from GET /auth/get-challenge (exactly 48 characters, protocol-facts 2.1)."
    )
    assertionToken: Annotated[str, StringConstraints(min_length=1, max_length=10240)] = Field(
        description="The device attestation assertion (1-10,240 characters, protocol-facts 2.1)."
    )
    assertionKeyId: Annotated[str, StringConstraints(min_length=32, max_length=64)] | None = Field(
        default=None, description="Optional assertion key id (32-64 characters, protocol-facts 2.1)."
    )


class MobileDeviceSignUp(Model):
    """Register a device user."""

    type: Literal["mobile-device"] = Field(description="mobile-device (protocol-facts 2.1).")
    data: MobileDeviceSignUpData


class EmailPasswordSignUp(Model):
    """Register an email user."""

    type: Literal["email-password"] = Field(description="email-password (protocol-facts 2.1).")
    data: EmailPasswordData


class SignUpRequest(
    RootModel[Annotated[MobileDeviceSignUp | EmailPasswordSignUp, Field(discriminator="type")]]
):
    """POST /auth/sign-up (protocol-facts 2.1)."""


class SignUpResponse(Model):
    """POST /auth/sign-up answer (protocol-facts 2.1)."""

    id: str = Field(description="The user id (usr_...).")
    role: str = Field(description="USER, etc.")
    createdAt: Timestamp
    updatedAt: Timestamp


class ChallengeResponse(Model):
    """GET /auth/get-challenge answer (protocol-facts 2.1: no length here; sign-up requires 48)."""

    challenge: str
