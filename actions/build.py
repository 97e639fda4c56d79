"""Assembles the deployable action folders under build/actions/ (wskdeploy zips each folder).

An action is a folder with `__main__.py` (the runtime's entry point) next to the packages it
imports: `actions`, the shared `messaging_lib` and the feed (`feed`). Every folder gets all three
(the public actions import `actions.common`, which needs `feed.errors`). The libraries reach the
actions through this step, never through copies in the source tree. `python -m actions.build` prints the folders.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
BUILD_DIR = REPO_ROOT / "build" / "actions"
PACKAGES = ("actions", "feed", "messaging_lib")

# deployable folder -> the module whose main() it runs
ACTIONS = {
    "produce": "actions.forward",
    "token": "actions.forward",
    "web-produce": "actions.web.produce",
    "web-token": "actions.web.token",
    "kafkaFeed": "actions.forward",
    "web-kafkaFeed": "actions.web.feed",
    "kafka-produce": "actions.kafka_produce",
}


def build(out: Path = BUILD_DIR) -> dict[str, Path]:
    built = {}
    for name, module in ACTIONS.items():
        folder = out / name
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        for package in PACKAGES:
            shutil.copytree(REPO_ROOT / package, folder / package,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "build.py"))
        (folder / "__main__.py").write_text(f'"""Entry point of the {name} action."""\nfrom {module} import main\n\n'
                                            f'__all__ = ["main"]\n')
        built[name] = folder
    return built


if __name__ == "__main__":
    for name, folder in build().items():
        print(f"{name}\t{folder}")
    sys.exit(0)
