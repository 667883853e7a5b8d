"""``python -m tools.bench [options]`` runs the benchmark; ``... profile`` profiles our server; ``... guard`` is the regression guard;
``... instructions`` counts instructions per message under callgrind."""

from __future__ import annotations

import sys


def main() -> int:
    if sys.argv[1:2] == ["profile"]:
        from .profile import main as profile_main

        return profile_main(sys.argv[2:])
    if sys.argv[1:2] == ["guard"]:
        from .guard import main as guard_main

        return guard_main(sys.argv[2:])
    if sys.argv[1:2] == ["instructions"]:
        from .instructions import main as instructions_main

        instructions_main(sys.argv[2:])
        return 0
    from .run import main as run_main

    return run_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
