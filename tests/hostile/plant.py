"""Plant distinct secrets in every place a client may put one, in JSONL and HAR logs.

Each secret is a fresh high-entropy string (``planted-<n>-<hex>``, or a JWT of a given size), so a
report that shows any of them, whole or in part, has leaked it (D20). Used by
``tests/test_hostile.py``; ``python tests/hostile/plant.py OUT_DIR`` writes the logs for a look.
"""

from __future__ import annotations

import base64
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

API = "/api/v1"
VOUCHER = f"{API}/vouchers/vch_7299754400"


class Planter:
    """Hands out distinct secrets and remembers every one."""

    def __init__(self, seed: str = "x") -> None:
        self.seed = seed
        self.secrets: list[str] = []

    def __call__(self, prefix: str = "") -> str:
        n = len(self.secrets)
        digest = hashlib.sha256(f"{self.seed}-{n}".encode()).hexdigest()[:20]
        secret = f"{prefix}Pl4nted{n}X{digest}"
        self.secrets.append(secret)
        return secret

    def jwt(self, size: int) -> str:
        n = len(self.secrets)
        head = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT"}').decode().rstrip("=")
        claims = {"userId": f"usr_{n}", "pad": hashlib.sha256(f"{self.seed}{n}".encode()).hexdigest()}
        body = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
        sig = (hashlib.sha256(f"sig{self.seed}{n}".encode()).hexdigest() * (size // 64 + 1))[
            : max(size - 80, 8)
        ]
        token = f"{head}.{body}.{sig}"
        self.secrets.append(token)
        return token


BODY_KEYS = (
    "password",
    "passwd",
    "pwd",
    "secret",
    "token",
    "accessToken",
    "access_token",
    "refresh_token",
    "refreshToken",
    "id_token",
    "idToken",
    "apiKey",
    "api_key",
    "x-api-key",
    "client_secret",
    "clientSecret",
    "privateKey",
    "private_key",
    "sessionToken",
    "credentials",
    "authorization",
    "Authorization",
    "auth",
    "signature",
    "otp",
    "pin",
    "mnemonic",
    "seedPhrase",
)


def records(plant: Planter, jwt_sizes: tuple[int, ...] = (1_000, 100_000)) -> list[dict[str, Any]]:
    """Exchange records, each with secrets in one kind of place; all are routable or near it."""
    out: list[dict[str, Any]] = []

    def rec(method: str, path: str, status: int = 200, **parts: Any) -> None:
        req = {"method": method, "path": path, **parts.get("req", {})}
        resp = {"status": status, **parts.get("resp", {})}
        out.append({"time": f"2026-06-09T12:00:{len(out):02d}.000Z", "request": req, "response": resp})

    for key in BODY_KEYS:  # unknown keys in request and response bodies, flat and nested
        rec(
            "POST",
            f"{VOUCHER}/redeem-voucher",
            req={"body": {key: plant(), "nested": {key: plant()}}},
            resp={"body": {key: plant(), "list": [{key: plant()}]}},
        )
        rec(
            "POST",
            f"{API}/auth/sign-in",
            400,
            req={"body": {"type": "mobile-device", key: plant()}},
            resp={"body": {"code": "validation_failed", "message": "no", key: plant()}},
        )
    rec(
        "POST",
        f"{API}/auth/sign-in",
        req={"body": {"type": "mobile-device", "data": {"installationId": plant(), "password": plant()}}},
        resp={"body": {"authorization": {"token": plant()}}},
    )
    rec(
        "POST",
        f"{API}/auth/sign-in",
        req={"body": {"type": "nope", "data": [plant(), {"x": plant()}]}},
        resp={"body": {"authorization": plant()}},
    )
    # form bodies and raw text
    rec(
        "POST",
        f"{VOUCHER}/redeem-voucher",
        req={"bodyText": f"access_token={plant()}&api_key={plant()}&client_secret={plant()}"},
        resp={"bodyText": f"refresh_token={plant()};session={plant()}"},
    )
    rec(
        "POST",
        f"{VOUCHER}/redeem-voucher",
        req={"bodyText": f"Authorization: Basic {plant()}"},
        resp={"bodyText": f"Authorization: Bearer {plant()}\nX-Api-Key: {plant()}"},
    )
    rec("POST", f"{API}/auth/sign-in", req={"bodyText": f"password={plant()}"}, resp={"bodyText": plant()})
    rec(
        "POST",
        f"{VOUCHER}/redeem-voucher",
        req={"body": f"just a string {plant()}"},
        resp={"body": [plant(), 1, {"k": plant()}]},
    )
    # headers and cookies
    for name, value in (
        ("authorization", f"Bearer {plant()}"),
        ("authorization", f"Basic {plant()}"),
        ("authorization", plant()),
        ("x-api-key", plant()),
        ("cookie", f"session={plant()}; csrftoken={plant()}"),
        ("proxy-authorization", f"Basic {plant()}"),
    ):
        rec(
            "POST",
            f"{VOUCHER}/redeem-voucher",
            req={"headers": {name: value}, "body": {}},
            resp={"headers": {"set-cookie": f"sid={plant()}; HttpOnly"}, "body": {"id": "vch_7299754400"}},
        )
    # query strings, in both places a record may hold them
    for name in ("limit", "offset", "status", "api_key", "token", "access_token", "q"):
        rec("GET", f"{API}/vouchers/query-vouchers", req={"query": {name: plant()}}, resp={"body": []})
        rec("GET", f"{API}/vouchers/query-vouchers?{name}={plant()}", resp={"body": []})
    # path segments: known routes, unknown routes, outside the API
    rec("POST", f"{API}/vouchers/{plant()}/redeem-voucher/{plant()}", resp={"body": {}})
    rec("GET", f"{API}/nowhere/{plant()}/x", 404, resp={"body": {"code": "not_found", "message": plant()}})
    rec("GET", f"/other/{plant()}", resp={"body": {}})
    rec(plant(), f"{VOUCHER}/redeem-voucher", resp={"body": {}})
    # URL userinfo, one with a character urlsplit refuses (a fullwidth number sign)
    rec("GET", f"https://user:{plant()}@api.example{API}/vouchers/query-vouchers", resp={"body": []})
    rec("GET", f"https://user:{plant()}\uff03@api.example{API}/vouchers/query-vouchers", resp={"body": []})
    rec("GET", f"https://[{plant()}]/x", resp={"body": []})
    # values in protocol fields a check quotes
    rec("POST", f"{VOUCHER}/redeem-voucher", 409, resp={"body": {"code": plant(), "message": plant()}})
    rec(
        "POST",
        f"{VOUCHER}/redeem-voucher",
        resp={"body": {"id": "vch_7299754400", "status": plant(), "type": plant(), "currency": plant()}},
    )
    rec(
        "GET",
        f"{API}/finance/currencies",
        resp={"body": [{"symbol": plant(), "network": plant(), "address": plant()}]},
    )
    # the time field
    out.append(
        {
            "time": plant(),
            "request": {"method": "GET", "path": f"{API}/vouchers/query-vouchers"},
            "response": {"status": 200, "body": []},
        }
    )
    # JWTs of growing size, in a header and a body
    for size in jwt_sizes:
        rec(
            "POST",
            f"{VOUCHER}/redeem-voucher",
            req={"headers": {"authorization": f"Bearer {plant.jwt(size)}"}, "body": {"x": plant.jwt(size)}},
            resp={"body": {"y": 1}},
        )
    return out


def har(recs: list[dict[str, Any]], plant: Planter) -> dict[str, Any]:
    """The same records as a HAR, plus HAR's own places for secrets (cookies, form params)."""
    entries = []
    for r in recs:
        req, resp = r["request"], r["response"]
        path = req["path"] if "://" in req["path"] else f"https://api.example{req['path']}"
        query = req.get("query") or {}
        if query:
            path += "?" + "&".join(f"{k}={v}" for k, v in query.items())
        entry: dict[str, Any] = {
            "startedDateTime": r.get("time", ""),
            "request": {
                "method": req["method"],
                "url": path,
                "headers": [{"name": k, "value": v} for k, v in (req.get("headers") or {}).items()],
                "cookies": [{"name": "sid", "value": plant()}],
                "queryString": [{"name": k, "value": v} for k, v in query.items()],
            },
            "response": {
                "status": resp["status"],
                "headers": [{"name": k, "value": v} for k, v in (resp.get("headers") or {}).items()],
                "cookies": [{"name": "sid", "value": plant(), "httpOnly": True}],
                "content": {},
            },
        }
        for side, half, key in (("request", req, "postData"), ("response", resp, "content")):
            text = half.get("bodyText")
            if "body" in half:
                text = json.dumps(half["body"])
            if text is not None:
                entry[side][key] = {"mimeType": "application/json", "text": text}
        entries.append(entry)
    entries.append(
        {
            "startedDateTime": "2026-06-09T12:59:00.000Z",
            "request": {
                "method": "POST",
                "url": f"https://api.example{API}/auth/sign-in",
                "postData": {
                    "mimeType": "application/x-www-form-urlencoded",
                    "params": [{"name": "password", "value": plant()}],
                    "text": f"password={plant()}",
                },
            },
            "response": {
                "status": 200,
                "content": {"mimeType": "application/json", "text": plant(), "encoding": "base64"},
            },
        }
    )
    return {"log": {"version": "1.2", "creator": {"name": "plant", "version": "1"}, "entries": entries}}


def write(folder: Path, seed: str = "x", jwt_sizes: tuple[int, ...] = (1_000, 100_000)) -> list[str]:
    """Write ``planted.jsonl`` and ``planted.har`` into ``folder``; return every secret planted."""
    plant = Planter(seed)
    recs = records(plant, jwt_sizes)
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "planted.jsonl").open("w", encoding="utf-8", errors="surrogatepass") as f:
        for r in recs:
            f.write(json.dumps(r) + "\n")
    (folder / "planted.har").write_text(json.dumps(har(recs, plant)), encoding="utf-8")
    return plant.secrets


if __name__ == "__main__":
    secrets = write(Path(sys.argv[1]))
    print(f"{len(secrets)} secrets planted in {sys.argv[1]}/planted.jsonl and planted.har")
