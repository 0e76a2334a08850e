# The Python peer's other scenarios, for side-by-side measurement only. The minimal peer
# (../shared/peers/fastapi-min/app.py: health, subscriptions/me, usage/use) is loaded from where it lives
# (PEER_DIR) and these routes are added to it, written the same careful way: one query per route, a pool.
import importlib.util
import os

from fastapi import Header, HTTPException

_spec = importlib.util.spec_from_file_location("peer_min", os.path.join(os.environ["PEER_DIR"], "app.py"))
peer = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(peer)
app = peer.app


@app.get("/v1/auth/me")
async def auth_me(authorization: str | None = Header(None)):
    uid = peer.uid_from(authorization)
    async with peer.pool.acquire() as c:
        row = await c.fetchrow(
            "SELECT id, email, first_name, last_name, role, created_at FROM users WHERE id = $1", uid
        )
    if row is None:
        raise HTTPException(401)
    return {
        "success": True,
        "data": {
            "id": row["id"], "email": row["email"], "first_name": row["first_name"],
            "last_name": row["last_name"], "role": row["role"], "created_at": row["created_at"].isoformat(),
        },
    }


@app.get("/v1/usage/limits")
async def usage_limits(authorization: str | None = Header(None)):
    uid = peer.uid_from(authorization)
    async with peer.pool.acquire() as c:
        rows = await c.fetch(
            "SELECT c.feature, c.used, c.lim, s.plan_id FROM usage_counters c "
            "JOIN subscriptions s ON s.user_id = c.user_id AND s.status IN ('active', 'trial') WHERE c.user_id = $1",
            uid,
        )
    if not rows:
        raise HTTPException(403)
    return {
        "success": True,
        "data": {
            "plan_id": rows[0]["plan_id"],
            "limits": {r["feature"]: {"limit": r["lim"], "used": r["used"], "remaining": r["lim"] - r["used"]} for r in rows},
        },
    }
