"""Run the qbench CLI with the toy plugin and no installed third-party plugins (for subprocess tests)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import toy_plugin  # noqa: E402

from qbench.cli import main  # noqa: E402
from qbench.plugin import catalog as catalog_mod  # noqa: E402
from qbench.plugin.manager import get_plugin_manager  # noqa: E402

pm = get_plugin_manager(load_entrypoints=False)
pm.register(toy_plugin, name="toy")
catalog_mod._CACHE[True] = catalog_mod.Catalog(pm)
if __name__ == "__main__":  # a spawned worker re-imports this file; it must not rerun the CLI
    main(sys.argv[1:])
