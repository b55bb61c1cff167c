"""The Hydra plugin: discovered by Hydra, appends our configs, never imports solo by itself."""

from __future__ import annotations

import subprocess
import sys


def test_hydra_discovers_plugin_and_search_path():
    code = (
        "from hydra.core.plugins import Plugins\n"
        "from hydra.plugins.search_path_plugin import SearchPathPlugin\n"
        "names = [p.__name__ for p in Plugins.instance().discover(SearchPathPlugin)]\n"
        "assert 'SoloOffDiagSearchPathPlugin' in names, names\n"
        "from hydra.core.config_search_path import ConfigSearchPath\n"
        "from hydra._internal.config_search_path_impl import ConfigSearchPathImpl\n"
        "from hydra_plugins.solo_offdiag_plugin import SoloOffDiagSearchPathPlugin\n"
        "sp = ConfigSearchPathImpl(); SoloOffDiagSearchPathPlugin().manipulate_search_path(sp)\n"
        "paths = [e.path for e in sp.get_path()]\n"
        "assert any('solo_offdiag_configs' in p or p.endswith('/configs') for p in paths), paths\n"
        "import sys; assert 'solo' not in sys.modules, 'plugin imported solo'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_hydra_app_without_config_path_finds_byol_offdiag(tmp_path):
    """What `python main_pretrain.py --config-name byol_offdiag` relies on, minus solo."""
    app = tmp_path / "app.py"
    app.write_text(
        "import hydra\n"
        "@hydra.main(version_base='1.2')\n"
        "def main(cfg):\n"
        "    print('METHOD', cfg.method, cfg.accelerator)\n"
        "main()\n"
    )
    result = subprocess.run(
        [sys.executable, str(app), "--config-name", "byol_offdiag", "hardware=cpu"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "METHOD byol_offdiag cpu" in result.stdout


def test_registration_without_solo_is_silent():
    code = (
        "import sys, warnings\n"
        "warnings.simplefilter('error')\n"
        "import hydra_plugins.solo_offdiag_plugin as p\n"
        "assert p.register_if_solo_loaded() is False\n"
        "assert 'solo' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
