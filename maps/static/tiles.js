/* tiles.js: the public map's layers drawn from the service's vector tiles, for an area too
 * large to carry its grids in the page (maps/public.py, settings.tiles_above).
 *
 * geogrid.tiledLayer(options) returns a Leaflet.VectorGrid layer (canvas) of
 * /tiles/{layer}/{z}/{x}/{y}.mvt that draws only the areas below options.area (a tile also
 * holds its neighbours'), styled as the page's GeoJSON layers: grids blue outlined, light
 * green; administrative areas outlined only. The page holds no grid: what board.js,
 * places.js and report.js asked of the GeoJSON layer, the service answers.
 * - layer.eachLayer(): nothing (no feature lives in the page).
 * - layer.geogridTiles.at(lat, lng): Promise of {entry, inside} from /api/locate: the board
 *   of the grid holding the point (public fields only, as /api/locate gives them) shaped
 *   like a GeoJSON layer's feature layer ({feature: {properties: {code, name, v, p}}}), and
 *   whether the point is in the area at all.
 * - .find(lat, lng): the same entry with its extent (getBounds, from /api/public/places).
 * - .openGrid(code, zoom, address): fit the grid (its extent from /api/public/places), find
 *   a point inside it in the drawn tiles, and open its board (geogrid.publicPage.open).
 * - .highlight(code): the chosen grid's outline (VectorGrid's setFeatureStyle); null: none.
 * - .drawn(): the codes drawn in the tiles of the current zoom (tests, diagnostics).
 * A tap on the map (not while the report form pins a point, nor with the layer unticked)
 * opens the board of the grid there. Below the layer's first zoom a hint asks to zoom in;
 * the outlines stay.
 * window.geogridTiles is true once a grid layer is drawn from tiles.
 * Needs geogrid.js, Leaflet.VectorGrid; board.js for the boards. */
(function(g) {
    // Leaflet.VectorGrid 1.3.0 stops a tap on a feature with L.DomEvent.fakeStop, which
    // Leaflet 1.8 removed: without it every tap on a grid would throw. VectorGrid hands the
    // tap to the map itself, so the DOM event may stop there.
    if (window.L && L.DomEvent && !L.DomEvent.fakeStop) L.DomEvent.fakeStop = L.DomEvent.stopPropagation;

    var GRID = {color: '#2b83ba', weight: 1, opacity: 1, fill: true, fillColor: '#abdda4', fillOpacity: 0.25};
    var CHOSEN = {color: '#d95f02', weight: 4, opacity: 1, fill: true, fillColor: '#abdda4', fillOpacity: 0.45};
    var MAX_POINTS = 3;  // points inside a grid tried with /api/locate before giving up

    function getJSON(url) {
        return fetch(url, {credentials: 'omit', headers: {Accept: 'application/json'}}).then(function(r) {
            return r.ok ? r.json() : null;
        }, function() { return null; });
    }
    function safeUrl(v) { return /^https?:\/\//i.test(v || '') ? v : ''; }
    function hintBox(map, text) {
        var box = document.createElement('div');
        box.className = 'geogrid-zoom-hint';
        box.id = 'geogrid-zoom-hint';
        box.setAttribute('role', 'status');
        box.textContent = text;
        box.hidden = true;
        map.getContainer().appendChild(box);
        return box;
    }

    // A point inside a feature part drawn in one tile: the middle of the widest span that a
    // horizontal line at y crosses inside it (even-odd over every ring: holes stay out).
    function span(parts, y) {
        var xs = [];
        parts.forEach(function(ring) {
            for (var i = 0, j = ring.length - 1; i < ring.length; j = i++) {
                var a = ring[i], b = ring[j];
                if ((a.y > y) !== (b.y > y)) xs.push(a.x + (y - a.y) * (b.x - a.x) / (b.y - a.y));
            }
        });
        xs.sort(function(a, b) { return a - b; });
        var best = null;
        for (var k = 0; k + 1 < xs.length; k += 2) {
            if (!best || xs[k + 1] - xs[k] > best.width) best = {x: (xs[k] + xs[k + 1]) / 2, y: y, width: xs[k + 1] - xs[k]};
        }
        return best;
    }

    g.tiledLayer = function(o) {
        function within(code) { return String(code || '').indexOf(o.area) === 0; }
        var styles = {};
        styles[o.layer] = function(p) {
            if (!within(p.code)) return [];  // a neighbour's area: not on this page
            if (!o.admin) return GRID;
            return {color: '#333', weight: p.code === o.area ? 3 : 2.5, opacity: 1, fill: false};
        };
        var layer = L.vectorGrid.protobuf(o.url, {
            rendererFactory: L.canvas.tile,
            vectorTileLayerStyles: styles,
            interactive: !o.admin,
            getFeatureId: function(f) { return f.properties.code; },
            minZoom: o.minzoom,
            // Above the base map; outlines under the grids, as the page's GeoJSON layers lie.
            zIndex: o.admin ? 2 : 3,
            fetchOptions: {credentials: 'omit'}
        });
        layer.eachLayer = function() { return layer; };
        if (o.admin) return layer;

        var chosen = null, asked = 0, hint = null;
        function words() { return (g.publicPage && g.publicPage.words) || {}; }
        function lang() { return o.lang === 'en' ? 'en' : 'zh'; }
        function inArea(lat, lng) {
            var b = g.publicPage && g.publicPage.config && g.publicPage.config.bounds;
            return !b || L.latLngBounds(b).contains([lat, lng]);
        }
        // The board of the grid at a point, as /api/locate tells it (a point far outside the
        // area is not asked: no grid of this page is there).
        function at(lat, lng) {
            if (!inArea(lat, lng)) return Promise.resolve({entry: null, inside: false});
            var url = '/api/locate?' + new URLSearchParams({lon: lng.toFixed(7), lat: lat.toFixed(7), lang: lang()});
            return getJSON(url).then(function(answer) {
                if (!answer) return {entry: null, inside: false, failed: true};
                var results = answer.results || [];
                var grid = results.filter(function(r) { return r.layer === o.layer && r.primary && within(r.code); })[0];
                var inside = results.some(function(r) { return r.code === o.area; });
                if (!grid) return {entry: null, inside: inside};
                var names = g.publicPage && g.publicPage.villageNames;
                results.forEach(function(r) { if (names && r.code === grid.parent) names[r.code] = r.name; });
                var props = {code: grid.code, name: grid.name, v: grid.parent || '',
                             p: (grid.persons || []).map(function(q) {
                                 return [q.role_name || '', q.name || '', q.phone || '', safeUrl(q.photo_url), q.duties || ''];
                             })};
                return {entry: {feature: {type: 'Feature', properties: props, geometry: null}, tiled: true},
                        inside: true};
            });
        }
        // The grid's extent and name from the place search (exact code: the first answer).
        function extent(code) {
            var url = '/api/public/places?' + new URLSearchParams({q: code, area: o.area, layer: o.layer, limit: '5'});
            return getJSON(url).then(function(answer) {
                var r = answer && (answer.results || []).filter(function(r) {
                    return r.kind === 'grid' && r.code === code;
                })[0];
                return r ? {bounds: L.latLngBounds([r.bbox[1], r.bbox[0]], [r.bbox[3], r.bbox[2]]), name: r.name} : null;
            });
        }
        function bounded(entry) {
            if (!entry) return Promise.resolve(null);
            return extent(entry.feature.properties.code).then(function(found) {
                if (found) entry.getBounds = function() { return found.bounds; };
                return entry;
            });
        }
        function find(lat, lng) {
            return at(lat, lng).then(function(found) { return bounded(found.entry); });
        }
        // Tiles of the current zoom holding the grid, best candidate points first.
        function pointsInside(code) {
            var map = layer._map, z = layer._tileZoom, size = layer.getTileSize(), out = [];
            Object.keys(layer._vectorTiles || {}).forEach(function(key) {
                var tile = layer._vectorTiles[key], held = tile._features && tile._features[code];
                if (!held || tile.getCoord().z !== z) return;
                var f = held.feature, b = f._pxBounds;
                if (!b || !f._parts || !f._parts.length) return;
                [0.5, 0.3, 0.7].forEach(function(share) {
                    var s = span(f._parts, b.min.y + (b.max.y - b.min.y) * share + 0.01);
                    if (!s || !s.width) return;
                    var c = tile.getCoord();
                    var px = L.point(c.x * size.x + s.x, c.y * size.y + s.y);
                    out.push({latlng: map.unproject(px, z), width: s.width});
                });
            });
            return out.sort(function(a, b) { return b.width - a.width; }).slice(0, MAX_POINTS);
        }
        function loaded() {
            return new Promise(function(resolve) {
                var map = layer._map;
                function check() {
                    if (map._animatingZoom || layer.isLoading()) setTimeout(check, 100);
                    else setTimeout(resolve, 50);  // VectorGrid fills a tile on the next frame
                }
                setTimeout(check, 50);
            });
        }
        function openGrid(code, zoom, address) {
            var mine = ++asked, W = words(), map = layer._map;
            extent(code).then(function(found) {
                if (mine !== asked) return;
                if (!found) { g.notice(String(W.grid_missing || '').replace('{code}', code), 'error'); return; }
                var b = found.bounds, wait = document.createElement('p');
                wait.className = 'geogrid-loading';
                wait.textContent = W.loading || '';
                // The sheet first: the map fits the grid once, beside it (the board then fills it).
                if (zoom) g.sheet.show(found.name, wait);
                g.fitArea(map, b);
                loaded().then(function() {
                    var tries = pointsInside(code);
                    if (!tries.length) tries = [{latlng: b.getCenter()}];
                    (function next(i) {
                        if (mine !== asked) return;
                        if (i >= tries.length) { g.sheet.hide(); g.notice(W.board_failed, 'error'); return; }
                        at(tries[i].latlng.lat, tries[i].latlng.lng).then(function(found) {
                            if (mine !== asked) return;
                            var e = found.entry;
                            if (!e || e.feature.properties.code !== code) { next(i + 1); return; }
                            e.getBounds = function() { return b; };
                            g.publicPage.open(e, zoom, address);
                        });
                    })(0);
                });
            });
            return true;
        }
        function highlight(code) {
            if (chosen !== null) layer.resetFeatureStyle(chosen);
            chosen = code || null;
            if (chosen !== null) layer.setFeatureStyle(chosen, CHOSEN);
        }
        function drawn() {
            var z = layer._tileZoom, seen = {};
            Object.keys(layer._vectorTiles || {}).forEach(function(key) {
                var tile = layer._vectorTiles[key];
                if (tile.getCoord().z === z) Object.keys(tile._features || {}).forEach(function(c) { seen[c] = true; });
            });
            return Object.keys(seen).sort();
        }
        layer.geogridTiles = {at: at, find: find, openGrid: openGrid, highlight: highlight, drawn: drawn};

        // A tap opens the board of the grid there (taps while zoomed out too far to see the
        // grids, or while the report form pins its point, do not). VectorGrid and the map
        // may both pass on one tap: one answer per DOM event.
        // A closed sheet drops the board still being asked for.
        document.addEventListener('geogrid-sheet', function(e) { if (e.detail === 'hide') asked++; });
        var lastTap = null;
        layer.on('remove', function() { if (hint) hint.hidden = true; });
        layer.on('add', function() {
            var map = layer._map;
            if (hint) { hint.hidden = map.getZoom() >= o.minzoom; return; }  // ticked again: bound already
            hint = hintBox(map, o.hint || '');
            function zoomed() {
                // Under the title bar, between the top corners' controls (the bottom ones hold the
                // report buttons and, on a phone, the sheet).
                var head = document.getElementById('geogrid-public-head');
                hint.style.top = ((head ? head.offsetHeight : 0) + 12) + 'px';
                hint.hidden = !layer._map || map.getZoom() >= o.minzoom;
            }
            map.on('zoomend moveend', zoomed);
            zoomed();
            map.on('click', function(e) {
                if (window.geogridPicking || !g.publicPage || !layer._map || map.getZoom() < o.minzoom) return;
                if (e.originalEvent && e.originalEvent === lastTap) return;
                lastTap = e.originalEvent;
                var mine = ++asked;
                at(e.latlng.lat, e.latlng.lng).then(function(found) {
                    if (mine !== asked || window.geogridPicking) return;
                    if (found.entry) g.publicPage.open(found.entry, false);
                    else if (found.failed) g.notice(words().board_failed, 'error');
                });
            });
        });
        window.geogridTiles = true;
        g.tiled = layer.geogridTiles;
        return layer;
    };
})(window.geogrid = window.geogrid || {});
