"""ARM-shaped errors: `{"error": {"code", "message", "details": [{code, target, message}]}}`."""

from __future__ import annotations

from dataclasses import dataclass, field

from starlette.responses import JSONResponse


@dataclass
class Detail:
    code: str
    target: str | None
    message: str

    def as_json(self) -> dict:
        return {"code": self.code, "target": self.target, "message": self.message}


@dataclass
class ApiError(Exception):
    """Raise anywhere in a request; the dispatcher turns it into the ARM error response."""

    status: int
    code: str
    message: str
    details: list[Detail] = field(default_factory=list)
    target: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.status} {self.code}: {self.message}"

    def response(self) -> JSONResponse:
        error = {
            "code": self.code,
            "message": self.message,
            "details": [d.as_json() for d in self.details],
        }
        if self.target:
            error["target"] = self.target
        return JSONResponse({"error": error}, status_code=self.status, headers=self.headers)


class ValidationError(ApiError):
    """400 ValidationError naming the offending field; kinds raise it from `validate`."""

    def __init__(
        self, message: str, target: str | None = None, details: list[Detail] | None = None
    ) -> None:
        if details is None:
            details = [Detail("ValidationError", target, message)]
        super().__init__(400, "ValidationError", message, details, target)


def not_found(what: str) -> ApiError:
    return ApiError(404, "ResourceNotFound", f"{what} not found.")
