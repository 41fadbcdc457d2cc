"""Printed by `make run` before the processes start: where to click, and how to log in."""

import json
import os
from pathlib import Path

CREDENTIALS = Path(__file__).resolve().parent.parent / "var" / "demo-credentials.json"


def main() -> None:
    port = os.environ.get("PORT", "8000")
    base = f"http://127.0.0.1:{port}"
    credentials = json.loads(CREDENTIALS.read_text()) if CREDENTIALS.exists() else {}
    key = credentials.get("api_key", "<run manage.py create_storefront NAME>")
    lines = [
        "",
        "=" * 72,
        "  OMS 订单管理系统 is starting (web + worker + beat). Ctrl-C stops all three.",
        f"  Admin (后台):   {base}/admin/",
        f"  Login:          {credentials.get('admin_user', 'admin')} / {credentials.get('admin_password', '?')}",
        f"  API docs:       {base}/api/docs/",
        f"  API key:        {key}",
        "  Try:",
        f"    curl -s -X POST {base}/api/v1/orders/ -H 'Authorization: Api-Key {key}' \\",
        "      -H 'Content-Type: application/json' -d @docs/example-order.json",
        "=" * 72,
        "",
    ]
    print("\n".join(lines), flush=True)


if __name__ == "__main__":
    main()
