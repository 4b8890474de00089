"""The booking app serving several tenants (one per studio) from one process."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from examples.booking.api import create_app
from examples.booking.auth import ALGORITHM, ISSUER, AuthError, mint_token, read_token
from tests.booking.conftest import board_of, serving

if TYPE_CHECKING:
    from pathlib import Path

SECRET = "s" * 40


async def roster(c: Any, tenant: str) -> Any:
    return await c.get("/roster", params={"occurrence": "yoga-0900"}, headers=bearer("x", tenant))


def bearer(actor: str, tenant: str | None, *, admin: bool = False) -> dict[str, str]:
    return {"Authorization": "Bearer " + mint_token(SECRET, actor, admin=admin, tenant=tenant)}


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
async def test_one_tenant_never_sees_another_tenants_bookings(kind: str, tmp_path: Path) -> None:
    url = "memory:" if kind == "memory" else f"sqlite:///{tmp_path}/{{tenant}}.db"
    app = create_app(secret=SECRET, tenant_url=url)
    async with serving(app) as c:
        for tenant, actor in (("north", "ann"), ("south", "bob")):
            r = await c.post(
                "/book",
                json={"occurrence": "yoga-0900", "capacity": 2},
                headers=bearer(actor, tenant, admin=True),
            )
            assert r.status_code == 201, r.text
        north = await c.get(
            "/roster", params={"occurrence": "yoga-0900"}, headers=bearer("x", "north")
        )
        south = await c.get(
            "/roster", params={"occurrence": "yoga-0900"}, headers=bearer("x", "south")
        )
        assert north.json()["roster"] == ["ann"]
        assert south.json()["roster"] == ["bob"]
        # Each tenant's seats board (a projection) holds only its own bookings.
        board = await board_of(c, bearer("ann", "north"), lambda b: bool(b["occurrences"]))
        assert [o["booked"] for o in board["occurrences"]] == [1]
        # A tenant that has booked nothing sees no occurrence at all.
        west = await c.get(
            "/roster", params={"occurrence": "yoga-0900"}, headers=bearer("x", "west")
        )
        assert west.status_code == 404
        # A token without a tenant is refused; a forged tenant claim is not a token.
        r = await c.get("/occurrences", headers=bearer("ann", None))
        assert r.status_code == 403
    if kind == "sqlite":
        assert sorted(p.name for p in tmp_path.glob("*.db")) == ["north.db", "south.db", "west.db"]


def test_tenant_claims_are_checked() -> None:
    token = mint_token(SECRET, "ann", tenant="north")
    assert read_token(SECRET, f"Bearer {token}").tenant == "north"
    assert read_token(SECRET, "Bearer " + mint_token(SECRET, "ann")).tenant is None
    import jwt

    claims = {"sub": "ann", "iss": ISSUER, "iat": 1, "exp": 2**40}
    fine = jwt.encode({**claims, "tenant": "north"}, SECRET.encode(), algorithm=ALGORITHM)
    assert read_token(SECRET, f"Bearer {fine}").tenant == "north"
    forged = jwt.encode({**claims, "tenant": "../x"}, SECRET.encode(), algorithm=ALGORITHM)
    with pytest.raises(AuthError):
        read_token(SECRET, f"Bearer {forged}")
