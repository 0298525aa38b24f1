"""Leaflet and its plugins served from this machine, not from CDNs.

Folium's pages load Leaflet, its plugins, jQuery, Bootstrap and Font Awesome from public
CDNs. A government intranet, the test machines and a page saved to a USB stick have no
such access, so geogrid fetches the same releases once from the npm registry
(``npm pack``, into ``<state_dir>/assets``) and rewrites every CDN address in a page:
either to ``/maps/assets/...`` on the service, or inline (``<script>`` and ``<style>``
with images and fonts as data URIs) for a standalone file. geogrid's own scripts
(``maps/static/*.js``) travel the same way, from ``/maps/assets/geogrid/``.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import mimetypes
import re
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

import folium

from geogrid.core.errors import GeogridError
from geogrid.core.settings import Settings

# CDN address folium writes -> (npm package@version, file inside the package). None: not
# needed (cosmetic CSS whose absence changes nothing in geogrid's maps).
CDN = {
    "https://cdn.jsdelivr.net/npm/leaflet@1.9.3/dist/leaflet.js": ("leaflet@1.9.3", "dist/leaflet.js"),
    "https://cdn.jsdelivr.net/npm/leaflet@1.9.3/dist/leaflet.css": ("leaflet@1.9.3", "dist/leaflet.css"),
    "https://code.jquery.com/jquery-3.7.1.min.js": ("jquery@3.7.1", "dist/jquery.min.js"),
    "https://cdn.jsdelivr.net/npm/bootstrap@5.2.2/dist/js/bootstrap.bundle.min.js":
        ("bootstrap@5.2.2", "dist/js/bootstrap.bundle.min.js"),
    "https://cdn.jsdelivr.net/npm/bootstrap@5.2.2/dist/css/bootstrap.min.css": ("bootstrap@5.2.2", "dist/css/bootstrap.min.css"),
    "https://cdn.jsdelivr.net/npm/@fortawesome/fontawesome-free@6.2.0/css/all.min.css":
        ("@fortawesome/fontawesome-free@6.2.0", "css/all.min.css"),
    "https://cdnjs.cloudflare.com/ajax/libs/Leaflet.awesome-markers/2.0.2/leaflet.awesome-markers.js":
        ("leaflet.awesome-markers@2.0.5", "dist/leaflet.awesome-markers.js"),
    "https://cdnjs.cloudflare.com/ajax/libs/Leaflet.awesome-markers/2.0.2/leaflet.awesome-markers.css":
        ("leaflet.awesome-markers@2.0.5", "dist/leaflet.awesome-markers.css"),
    "https://cdnjs.cloudflare.com/ajax/libs/leaflet.markercluster/1.1.0/leaflet.markercluster.js":
        ("leaflet.markercluster@1.1.0", "dist/leaflet.markercluster.js"),
    "https://cdnjs.cloudflare.com/ajax/libs/leaflet.markercluster/1.1.0/MarkerCluster.css":
        ("leaflet.markercluster@1.1.0", "dist/MarkerCluster.css"),
    "https://cdnjs.cloudflare.com/ajax/libs/leaflet.markercluster/1.1.0/MarkerCluster.Default.css":
        ("leaflet.markercluster@1.1.0", "dist/MarkerCluster.Default.css"),
    # folium's GeoMan points at @latest: pinned here, like every other library.
    "https://unpkg.com/@geoman-io/leaflet-geoman-free@latest/dist/leaflet-geoman.js":
        ("@geoman-io/leaflet-geoman-free@2.20.2", "dist/leaflet-geoman.min.js"),
    "https://unpkg.com/@geoman-io/leaflet-geoman-free@latest/dist/leaflet-geoman.css":
        ("@geoman-io/leaflet-geoman-free@2.20.2", "dist/leaflet-geoman.css"),
    # folium's VectorGridProtobuf points at @latest too: the public map's vector tiles (maps/public.py).
    "https://unpkg.com/leaflet.vectorgrid@latest/dist/Leaflet.VectorGrid.bundled.js":
        ("leaflet.vectorgrid@1.3.0", "dist/Leaflet.VectorGrid.bundled.js"),
    "https://cdn.jsdelivr.net/npm/leaflet.fullscreen@3.0.0/Control.FullScreen.min.js":
        ("leaflet.fullscreen@3.0.0", "Control.FullScreen.js"),
    "https://cdn.jsdelivr.net/npm/leaflet.fullscreen@3.0.0/Control.FullScreen.css":
        ("leaflet.fullscreen@3.0.0", "Control.FullScreen.css"),
    "https://cdnjs.cloudflare.com/ajax/libs/leaflet-minimap/3.6.1/Control.MiniMap.js":
        ("leaflet-minimap@3.6.1", "dist/Control.MiniMap.min.js"),
    "https://cdnjs.cloudflare.com/ajax/libs/leaflet-minimap/3.6.1/Control.MiniMap.css":
        ("leaflet-minimap@3.6.1", "dist/Control.MiniMap.min.css"),
    "https://cdnjs.cloudflare.com/ajax/libs/leaflet-locatecontrol/0.66.2/L.Control.Locate.min.js":
        ("leaflet.locatecontrol@0.66.2", "dist/L.Control.Locate.min.js"),
    "https://cdnjs.cloudflare.com/ajax/libs/leaflet-locatecontrol/0.66.2/L.Control.Locate.min.css":
        ("leaflet.locatecontrol@0.66.2", "dist/L.Control.Locate.min.css"),
    "https://cdn.jsdelivr.net/npm/leaflet-search@2.9.7/dist/leaflet-search.min.js":
        ("leaflet-search@2.9.7", "dist/leaflet-search.min.js"),
    "https://cdn.jsdelivr.net/npm/leaflet-search@2.9.7/dist/leaflet-search.min.css":
        ("leaflet-search@2.9.7", "dist/leaflet-search.min.css"),
    "https://cdn.jsdelivr.net/gh/python-visualization/folium@main/folium/templates/leaflet_heat.min.js":
        ("folium", "templates/leaflet_heat.min.js"),
    "https://cdnjs.cloudflare.com/ajax/libs/d3/3.5.5/d3.min.js": ("d3@3.5.5", "d3.min.js"),
    # ECharts for the assessment dashboard (maps/dashboard.py): the common build (line, bar, pie).
    "https://cdn.jsdelivr.net/npm/echarts@6.1.0/dist/echarts.common.min.js":
        ("echarts@6.1.0", "dist/echarts.common.min.js"),
    # Swagger UI for /docs (fastapi's get_swagger_ui_html writes these addresses). 5.32.15:
    # from 5.33.0 on (5.35.0 still) it stops after its first two tags once a spec has about
    # 135 operations (this one has 140), silently; tests/security/test_xss.py counts them.
    "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui-bundle.js": ("swagger-ui-dist@5.32.15", "swagger-ui-bundle.js"),
    "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui.css": ("swagger-ui-dist@5.32.15", "swagger-ui.css"),
    "https://cdn.jsdelivr.net/gh/python-visualization/folium/folium/templates/leaflet.awesome.rotate.min.css": None,
    "https://netdna.bootstrapcdn.com/bootstrap/3.0.0/css/bootstrap-glyphicons.css": None,
}
_TAG = re.compile(r"""<script[^>]*\bsrc="(?P<js>https?://[^"]+)"[^>]*>\s*</script>|"""
                  r"""<link[^>]*\bhref="(?P<css>https?://[^"]+\.css)"[^>]*/?>""")
_CSS_URL = re.compile(r"""url\((['"]?)(?!data:|#|https?:)([^'")]+)\1\)""")
INLINE_KINDS = (".png", ".svg", ".woff2", ".gif")
# geogrid's own scripts (maps/static/*.js): served as /maps/assets/geogrid/<name>?v=<digest>,
# inlined in standalone files like the libraries.
STATIC = Path(__file__).with_name("static")
STATIC_DIR = "geogrid"  # never an npm package's folder: those are <name>@<version>
_STATIC_TAG = re.compile(r"""<script src="/maps/assets/geogrid/(?P<name>[A-Za-z0-9_-]+\.js)(?:\?v=[0-9a-f]+)?"></script>""")


def assets_dir(settings: Settings) -> Path:
    return Path(settings.state_dir) / "assets"


def _package_dir(root: Path, spec: str) -> Path:
    return root / spec.replace("/", "__")


def local_file(settings: Settings, spec: str, path: str) -> Path:
    if spec == "folium":
        return Path(folium.__file__).parent / path
    return _package_dir(assets_dir(settings), spec) / path


def ensure_assets(settings: Settings) -> Path:
    """Fetch the npm packages the maps need (once); returns the assets directory."""
    root = assets_dir(settings)
    missing = sorted({spec for spec, _ in filter(None, CDN.values())
                      if spec != "folium" and not _package_dir(root, spec).exists()})
    if not missing:
        return root
    npm = shutil.which("npm")
    if npm is None:
        raise GeogridError("the maps need Leaflet's files from the npm registry, and npm is not installed: "
                           "apt-get install npm (./dev does it), or copy a filled assets folder to " + str(root),
                           status=503)
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for spec in missing:
            done = subprocess.run([npm, "pack", "--silent", spec], cwd=tmp, capture_output=True, text=True, timeout=300,
                                  check=False)
            if done.returncode != 0:
                raise GeogridError(f"npm pack {spec} failed: {done.stderr.strip()[-300:]}", status=503)
            tarball = Path(tmp) / done.stdout.strip().splitlines()[-1]
            target = _package_dir(root, spec)
            staging = Path(tmp) / "x"
            with tarfile.open(tarball) as tar:
                _extract(tar, staging, spec)
            shutil.move(str(staging / "package"), target)
            shutil.rmtree(staging, ignore_errors=True)
    return root


def _extract(tar: tarfile.TarFile, target: Path, spec: str) -> None:
    """Unpack an npm tarball: regular files and folders inside ``target`` only."""
    if hasattr(tarfile, "data_filter"):
        tar.extractall(target, filter="data")
        return
    # Python before 3.11.4 (Debian 12 ships 3.11.2) has no extraction filters: refuse
    # what the "data" filter would refuse, then unpack.
    for member in tar.getmembers():
        parts = Path(member.name).parts
        if not (member.isfile() or member.isdir()) or member.name.startswith("/") or ".." in parts:
            raise GeogridError(f"npm package {spec} holds an unsafe entry {member.name!r}", status=503)
    tar.extractall(target)


def _data_uri(path: Path) -> str:
    kind = mimetypes.guess_type(path.name)[0] or ("font/woff2" if path.suffix == ".woff2" else "application/octet-stream")
    return f"data:{kind};base64,{base64.b64encode(path.read_bytes()).decode()}"


def _inline_css(css: str, css_path: Path) -> str:
    def repl(m: re.Match) -> str:
        target = (css_path.parent / m.group(2).split("?")[0].split("#")[0]).resolve()
        if target.suffix in INLINE_KINDS and target.exists():
            return f"url({_data_uri(target)})"
        return m.group(0)

    return _CSS_URL.sub(repl, css)


@functools.lru_cache(maxsize=32)
def _static_digest(name: str, mtime_ns: int) -> str:
    return hashlib.sha256((STATIC / name).read_bytes()).hexdigest()[:12]


def static_url(name: str) -> str:
    """The address of ``maps/static/<name>`` on the service; the digest of its content makes
    a browser fetch it again when it changes (assets are cached for a day)."""
    path = STATIC / name
    return f"/maps/assets/{STATIC_DIR}/{name}?v={_static_digest(name, path.stat().st_mtime_ns)}"


def localize(html: str, settings: Settings, *, inline: bool, base_url: str = "/maps/assets") -> str:
    """Point every known CDN address in ``html`` at the local copies (or inline them).
    An address geogrid does not know is left as it is and listed by :func:`unknown_urls`."""
    ensure_assets(settings)

    def repl(m: re.Match) -> str:
        url = m.group("js") or m.group("css")
        if url not in CDN:
            return m.group(0)
        entry = CDN[url]
        if entry is None:
            return ""
        spec, path = entry
        if not inline:
            tag = "script" if m.group("js") else "link"
            href = f"{base_url}/{spec.replace('/', '__')}/{path}"
            return f'<script src="{href}"></script>' if tag == "script" else f'<link rel="stylesheet" href="{href}"/>'
        file = local_file(settings, spec, path)
        if m.group("js"):
            return "<script>" + file.read_text(encoding="utf-8").replace("</script", "<\\/script") + "</script>"
        return "<style>" + _inline_css(file.read_text(encoding="utf-8"), file) + "</style>"

    def static(m: re.Match) -> str:
        if not inline:
            return m.group(0).replace('src="/maps/assets/', f'src="{base_url}/', 1)
        body = (STATIC / m.group("name")).read_text(encoding="utf-8")
        return "<script>" + body.replace("</script", "<\\/script") + "</script>"

    return _STATIC_TAG.sub(static, _TAG.sub(repl, html))


def unknown_urls(html: str) -> list[str]:
    return [m.group("js") or m.group("css") for m in _TAG.finditer(html) if (m.group("js") or m.group("css")) not in CDN]


def serve_path(settings: Settings, relative: str) -> Path:
    """The file behind ``/maps/assets/<relative>``, refusing anything outside the assets."""
    root = ensure_assets(settings).resolve()
    spec_dir, _, rest = relative.partition("/")
    if spec_dir == "folium":
        base = Path(folium.__file__).parent.resolve()
    elif spec_dir == STATIC_DIR:
        base = STATIC.resolve()
    else:
        base = (root / spec_dir).resolve()
    target = (base / rest).resolve()
    if not target.is_file() or base not in target.parents or (spec_dir not in ("folium", STATIC_DIR)
                                                                and root not in base.parents):
        raise GeogridError(f"no asset {relative}", status=404)
    return target
