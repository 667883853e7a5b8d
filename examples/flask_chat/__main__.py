"""``python -m examples.flask_chat --server wsgiref --host 127.0.0.1 --port 8080``"""

from __future__ import annotations

from examples._servers import framework_main
from examples.flask_chat import create_app


def main(argv: list[str] | None = None) -> None:
    framework_main("flask", create_app, argv)


if __name__ == "__main__":
    main()
