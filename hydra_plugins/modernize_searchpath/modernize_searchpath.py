"""Appends the folders of $MODERNIZE_CONFIG_PATH to Hydra's config search path, in every process that composes.

    MODERNIZE_CONFIG_PATH=~/my-deltas python run.py +step=separate_downsampling "+delta=[silu]"

is the same as passing hydra.searchpath=[file://$HOME/my-deltas]; folders are separated like PATH's. Hydra finds this
module by scanning the hydra_plugins namespace package (modernize installs it next to its own package).
"""

import os

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin

SEARCH_PATH_ENV = "MODERNIZE_CONFIG_PATH"  # modernize.config.SEARCH_PATH_ENV; a plugin must not import the package


class ModernizeSearchPathPlugin(SearchPathPlugin):
    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        for folder in os.environ.get(SEARCH_PATH_ENV, "").split(os.pathsep):
            if folder.strip():
                search_path.append(provider=SEARCH_PATH_ENV,
                                   path=f"file://{os.path.abspath(os.path.expanduser(folder.strip()))}")
