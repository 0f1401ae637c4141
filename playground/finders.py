"""Static files from node_modules: only the browser client's JavaScript, nothing else npm installed.

The packages' dist folders also hold type declarations, source maps and
bundles the playground never loads (43 MB that collectstatic would copy and
the server would expose). This finder serves settings.NPM_STATIC_DIRS the way
STATICFILES_DIRS is served, but only their ``.js`` and ``.mjs`` files.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.staticfiles.finders import BaseFinder, FileSystemFinder
from django.core.files.storage import FileSystemStorage

SUFFIXES = (".js", ".mjs")


class NpmModulesFinder(FileSystemFinder):
    def __init__(self, app_names=None, *args, **kwargs):
        # Not FileSystemFinder.__init__: that one reads STATICFILES_DIRS.
        self.locations = [(prefix, str(path)) for prefix, path in settings.NPM_STATIC_DIRS]
        self.storages = {}
        for prefix, root in self.locations:
            storage = FileSystemStorage(location=root)
            storage.prefix = prefix
            self.storages[root] = storage
        BaseFinder.__init__(self, *args, **kwargs)

    def check(self, **kwargs):
        return []  # a missing node_modules is reported by the playground itself ("was npm ci run?")

    def find_location(self, root, path, prefix=None):
        return super().find_location(root, path, prefix) if path.endswith(SUFFIXES) else None

    def list(self, ignore_patterns):
        for path, storage in super().list(ignore_patterns):
            if path.endswith(SUFFIXES):
                yield path, storage
