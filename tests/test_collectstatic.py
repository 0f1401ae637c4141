"""collectstatic with the production storage (WhiteNoise's compressed manifest), as `make serve` runs it.

The suite's settings swap in the plain storage for everything else; this is the one place the
manifest storage post-processes every file, which is where the npm client's source-map comments
aborted it.
"""

from __future__ import annotations

import json
import re

import pytest
from django.core.management import call_command
from django.test import override_settings

from playground import views as playground_views
from playground.finders import SourceMapFreeStorage
from voiceagent.settings import NPM_STATIC_DIRS

PRODUCTION_STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
SOURCE_MAP_LINE = re.compile(rb"^//[#@] sourceMappingURL=", re.MULTILINE)
WORKLET = "vendor/elevenlabs-client/platform/web/audioConcatProcessor.generated.js"  # the file that aborted it


@pytest.fixture(scope="module")
def collected(tmp_path_factory):
    """STATIC_ROOT after one production collectstatic, and its manifest."""
    root = tmp_path_factory.mktemp("staticfiles")
    with override_settings(STORAGES=PRODUCTION_STORAGES, STATIC_ROOT=root):
        call_command("collectstatic", "--noinput", verbosity=0)
    return root, json.loads((root / "staticfiles.json").read_text())["paths"]


def test_collectstatic_with_the_production_storage_collects_what_the_pages_name(collected):
    root, manifest = collected

    wanted = [
        playground_views.SDK_MODULE,
        playground_views.LIVEKIT_MODULE,
        *playground_views.WORKLETS.values(),
        WORKLET,
        "playground/playground.css",
        "playground/playground.js",
        "drf_spectacular_sidecar/swagger-ui-dist/swagger-ui.css",
        "drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js",
        "admin/css/base.css",
    ]
    for name in wanted:
        assert name in manifest, name
        assert re.search(r"\.[0-9a-f]{12}\.", manifest[name]), manifest[name]
        assert (root / manifest[name]).is_file()
        assert (root / (manifest[name] + ".gz")).is_file()  # served compressed too


def test_the_npm_client_is_collected_without_source_maps_or_their_comments(collected):
    root, manifest = collected

    vendor = root / "vendor"
    assert not list(vendor.rglob("*.map")), "no source map is collected"
    assert not list(vendor.rglob("*.d.ts")), "only JavaScript is collected"
    scripts = [path for path in vendor.rglob("*") if path.suffix in (".js", ".mjs")]
    assert len(scripts) > 50
    assert [path for path in scripts if SOURCE_MAP_LINE.search(path.read_bytes())] == []
    # The comment went, and nothing else: the file is the package's, less its last line.
    sdk_dist = dict(NPM_STATIC_DIRS)["vendor/elevenlabs-client"]
    original = (sdk_dist / WORKLET.removeprefix("vendor/elevenlabs-client/")).read_bytes()
    collected_text = (root / manifest[WORKLET]).read_bytes()
    assert SOURCE_MAP_LINE.search(original)
    assert collected_text == SOURCE_MAP_LINE.split(original)[0]


def test_the_finder_storage_strips_only_a_whole_source_map_line(tmp_path):
    (tmp_path / "module.js").write_bytes(
        b'const s = "//# sourceMappingURL=inside-a-string.map";\nexport { s };\n//# sourceMappingURL=module.js.map\n'
    )
    (tmp_path / "old.mjs").write_bytes(b"export const a = 1;\r\n//@ sourceMappingURL=old.mjs.map")
    (tmp_path / "readme.txt").write_bytes(b"//# sourceMappingURL=kept.map\n")
    storage = SourceMapFreeStorage(location=tmp_path)

    with storage.open("module.js") as handle:
        assert handle.read() == b'const s = "//# sourceMappingURL=inside-a-string.map";\nexport { s };\n'
    with storage.open("old.mjs") as handle:
        assert handle.read() == b"export const a = 1;\r\n"
    with storage.open("readme.txt") as handle:
        assert handle.read() == b"//# sourceMappingURL=kept.map\n"
