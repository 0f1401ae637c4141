"""Static files from node_modules: only the browser client's JavaScript, nothing else npm installed.

The packages' dist folders also hold type declarations, source maps and
bundles the playground never loads (43 MB that collectstatic would copy and
the server would expose). This finder serves settings.NPM_STATIC_DIRS the way
STATICFILES_DIRS is served, but only their ``.js`` and ``.mjs`` files.

Those files end with a ``//# sourceMappingURL=x.js.map`` comment. The manifest
storage that collects them for production rewrites every such reference to the
hashed name of its target, and aborts when the target is missing, so the
finder hands collectstatic each file without that comment: serving the maps
instead would add about 9.6 MB of them (more once compressed copies are made)
for debugging minified vendor code nobody debugs in production, and browsers'
developer tools would otherwise still ask for maps that are not there.
"""

from __future__ import annotations

import re

from django.conf import settings
from django.contrib.staticfiles.finders import BaseFinder, FileSystemFinder
from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage

SUFFIXES = (".js", ".mjs")
# A line comment that names the file's source map (`//#`, or the older `//@`), as the spec writes it.
SOURCE_MAP_COMMENT = re.compile(rb"^//[#@] sourceMappingURL=[^\r\n]*(?:\r?\n)?", re.MULTILINE)


class SourceMapFreeStorage(FileSystemStorage):
    """Reads JavaScript files without their source-map comments (collectstatic copies what this opens)."""

    def open(self, name, mode="rb"):
        handle = super().open(name, mode)
        if not name.endswith(SUFFIXES) or "b" not in mode:
            return handle
        with handle:
            content = SOURCE_MAP_COMMENT.sub(b"", handle.read())
        return ContentFile(content, name=name)


class NpmModulesFinder(FileSystemFinder):
    def __init__(self, app_names=None, *args, **kwargs):
        # Not FileSystemFinder.__init__: that one reads STATICFILES_DIRS.
        self.locations = [(prefix, str(path)) for prefix, path in settings.NPM_STATIC_DIRS]
        self.storages = {}
        for prefix, root in self.locations:
            storage = SourceMapFreeStorage(location=root)
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
