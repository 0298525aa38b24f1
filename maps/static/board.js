/* board.js: the public map's grid boards (网格公示), laid out for a phone first.
 * geogrid.board(map, grids, strings, words, config) gives each grid of ``grids`` its board,
 * built from compact properties {code, name, v: village code, p: [[post, name, phone,
 * photo, duties], ...]} where post and duties index ``strings`` (repeated texts travel
 * once). Every text goes into the page with textContent: names are data, never HTML.
 *
 * What other scripts of the page use (maps/static/report.js, places.js):
 * - geogrid.sheet.show(titleText, node) / .hide(): one bottom sheet (phone) or side panel
 *   (desktop) above the map's controls, which move out of its way (the corners' offsets);
 *   it dispatches the document event 'geogrid-sheet' (detail 'show' or 'hide').
 * - geogrid.notice(text, kind): a dismissable banner at the top ('info' or 'error').
 * - geogrid.locateMe(map, done): the browser's location, done(latlng) on success; a denied
 *   permission or no position is a notice in the page's language, never an alert.
 * - geogrid.openGrid(code, zoom, address): the grid's board (and the map fitted to it).
 * - geogrid.fitArea(map, bounds): fit bounds in the part of the map nothing covers.
 * - window.geogridFindGrid(lat, lng): the board of the grid there (point in polygon on the
 *   page, no request), its code or null. window.geogridPicking: while true a tap on a
 *   grid opens no board (the report form is pinning a point).
 * - geogrid.publicPage.open(layer, zoom, address): show a grid's board (tiles.js).
 * Grids drawn from vector tiles (``grids.geogridTiles``, tiles.js): the page holds none, so
 * the grid at a point and a grid by code are asked of the service (geogridFindGrid then
 * gives a promise of the code) and the chosen grid is outlined by the tile layer.
 * Needs geogrid.js. */
(function(g) {
    var NARROW = 700;  // px: below this the board is a bottom sheet, else a side panel
    var SVG = 'http://www.w3.org/2000/svg';
    // A person without a photo, or whose photo does not load (inline: no request).
    var SILHOUETTE = 'data:image/svg+xml,' + encodeURIComponent(
        '<svg xmlns="http://www.w3.org/2000/svg" width="64" height="80" viewBox="0 0 64 80">' +
        '<rect width="64" height="80" fill="#e8edf2"/><circle cx="32" cy="30" r="13" fill="#a7b4c2"/>' +
        '<path d="M8 80c0-17 11-27 24-27s24 10 24 27z" fill="#a7b4c2"/></svg>');
    // Until geogrid.board gives the page's texts (another script may ask for a location first).
    var W = {denied: '位置权限被拒绝', unavailable: '无法获取位置', close: '关闭', dismiss: '关闭提示', locating: ''};

    function node(tag, cls, value) {
        var el = document.createElement(tag);
        if (cls) el.className = cls;
        if (value != null) el.textContent = String(value);
        return el;
    }
    function narrow() { return window.innerWidth < NARROW; }
    function head() { return document.getElementById('geogrid-public-head'); }
    function headHeight() { var h = head(); return h ? h.offsetHeight : 0; }

    // ------------------------------------------------------------------ notices
    var noticeTimer = null;
    g.notice = function(text, kind) {
        var box = document.getElementById('geogrid-notice');
        if (!box) {
            box = node('div', 'geogrid-notice');
            box.id = 'geogrid-notice';
            box.setAttribute('role', 'alert');
            box.appendChild(node('span', 'geogrid-notice-text'));
            var close = box.appendChild(node('button', null, '×'));
            close.type = 'button';
            close.setAttribute('aria-label', W.dismiss);
            close.title = W.dismiss;
            close.addEventListener('click', function() { box.hidden = true; });
            document.body.appendChild(box);
        }
        box.querySelector('.geogrid-notice-text').textContent = text;
        box.className = 'geogrid-notice' + (kind === 'error' ? ' error' : '');
        box.hidden = false;
        clearTimeout(noticeTimer);
        if (kind !== 'error') noticeTimer = setTimeout(function() { box.hidden = true; }, 12000);
    };
    g.noticeHide = function() { var box = document.getElementById('geogrid-notice'); if (box) box.hidden = true; };

    // ------------------------------------------------------------------ the sheet
    var maps = [];  // the maps whose controls and views make room for the sheet
    function makeSheet() {
        var root = node('div', 'geogrid-sheet');
        root.id = 'geogrid-sheet';
        root.setAttribute('role', 'dialog');
        root.setAttribute('aria-labelledby', 'geogrid-sheet-title');
        root.hidden = true;
        // The class of a Leaflet popup's content: the board used to be a popup, and what
        // reads it (tests, assistive scripts) still finds it there.
        var content = root.appendChild(node('div', 'leaflet-popup-content'));
        var bar = content.appendChild(node('div', 'geogrid-sheet-head'));
        var title = bar.appendChild(node('h2'));
        title.id = 'geogrid-sheet-title';
        var close = bar.appendChild(node('button', 'geogrid-sheet-close', '×'));
        close.type = 'button';
        close.id = 'geogrid-sheet-close';
        close.setAttribute('aria-label', W.close);
        close.title = W.close;
        var body = content.appendChild(node('div', 'geogrid-sheet-body'));
        document.body.appendChild(root);
        var sheet = {el: root, title: title, body: body, close: close};
        function announce(what) { document.dispatchEvent(new CustomEvent('geogrid-sheet', {detail: what})); }
        sheet.show = function(text, content) {
            title.textContent = text == null ? '' : String(text);
            body.textContent = '';
            if (content) body.appendChild(content);
            root.hidden = false;
            root.scrollTop = 0;
            layout();
            announce('show');
        };
        sheet.hide = function() {
            if (root.hidden) return;
            root.hidden = true;
            body.textContent = '';
            layout();
            announce('hide');
        };
        sheet.isOpen = function() { return !root.hidden; };
        close.addEventListener('click', function() { sheet.hide(); });
        root.addEventListener('keydown', function(e) { if (e.key === 'Escape') sheet.hide(); });
        return sheet;
    }
    // Made when first needed: this file loads in the page's head, before its body exists.
    var real = null;
    function sheetNow() { if (!real) real = makeSheet(); return real; }
    g.sheet = {
        show: function(text, content) { sheetNow().show(text, content); },
        hide: function() { if (real) real.hide(); },
        isOpen: function() { return !!real && real.isOpen(); },
        element: function() { return sheetNow().el; }
    };
    // The title bar pushes the map's top controls down; an open sheet pushes the bottom
    // ones up (phone) or the right-hand ones left (desktop): no control ever lies over it.
    function layout() {
        var top = headHeight(), sheet = real, open = sheet && sheet.isOpen(), wide = !narrow();
        if (sheet) {
            sheet.el.classList.toggle('narrow', !wide);
            sheet.el.classList.toggle('wide', wide);
            sheet.el.style.top = wide ? (top + 10) + 'px' : '';
            sheet.el.style.maxHeight = wide ? 'calc(100vh - ' + (top + 20) + 'px)' : '';
        }
        var right = open && wide ? sheet.el.offsetWidth + 20 : 0;
        var bottom = open && !wide ? sheet.el.offsetHeight : 0;
        maps.forEach(function(map) {
            var c = map.getContainer();
            c.querySelectorAll('.leaflet-top').forEach(function(el) { el.style.top = top + 'px'; });
            c.querySelectorAll('.leaflet-right').forEach(function(el) { el.style.right = right + 'px'; });
            c.querySelectorAll('.leaflet-bottom').forEach(function(el) { el.style.bottom = bottom + 'px'; });
        });
    }
    window.addEventListener('resize', layout);

    // Fit bounds into the part of the map left free by the title bar and the sheet.
    g.fitArea = function(map, bounds, maxZoom) {
        var top = headHeight() + 10, sheet = real, open = !!sheet && sheet.isOpen(), wide = !narrow();
        map.fitBounds(bounds, {
            paddingTopLeft: [10, top],
            paddingBottomRight: [open && wide ? sheet.el.offsetWidth + 30 : 10, open && !wide ? sheet.el.offsetHeight + 10 : 10],
            maxZoom: maxZoom || 17
        });
    };

    // ------------------------------------------------------------------ location
    g.locateMe = function(map, done) {
        if (!navigator.geolocation) { g.notice(W.unavailable, 'error'); return; }
        if (W.locating) g.notice(W.locating, 'info');
        navigator.geolocation.getCurrentPosition(function(position) {
            g.noticeHide();
            done(L.latLng(position.coords.latitude, position.coords.longitude));
        }, function(error) {
            g.notice(error && error.code === 1 ? W.denied : W.unavailable, 'error');
        }, {enableHighAccuracy: true, timeout: 15000, maximumAge: 0});
    };
    function icon() {
        var svg = document.createElementNS(SVG, 'svg');
        svg.setAttribute('width', '20'); svg.setAttribute('height', '20'); svg.setAttribute('viewBox', '0 0 20 20');
        svg.setAttribute('aria-hidden', 'true');
        [['circle', {cx: 10, cy: 10, r: 6, fill: 'none', stroke: '#174a7c', 'stroke-width': 2}],
         ['circle', {cx: 10, cy: 10, r: 2.5, fill: '#174a7c'}],
         ['path', {d: 'M10 0v4M10 16v4M0 10h4M16 10h4', stroke: '#174a7c', 'stroke-width': 2}]].forEach(function(s) {
            var el = document.createElementNS(SVG, s[0]);
            Object.keys(s[1]).forEach(function(k) { el.setAttribute(k, s[1][k]); });
            svg.appendChild(el);
        });
        return svg;
    }

    // ------------------------------------------------------------------ village labels
    function labels(map, villages) {
        var group = L.layerGroup().addTo(map);
        var items = villages.map(function(v) {
            var text = node('span', 'geogrid-village-label', v[1]);
            return {name: v[1], marker: L.marker([v[3], v[4]], {
                icon: L.divIcon({className: 'geogrid-village-icon', html: text, iconSize: null}),
                interactive: false, keyboard: false})};
        });
        // Largest villages first; a label that would overlap one already placed waits for a
        // closer zoom.
        function place() {
            group.clearLayers();
            if (map.getZoom() < 11) return;
            var size = map.getSize(), taken = [];
            items.forEach(function(item) {
                var at = map.latLngToContainerPoint(item.marker.getLatLng());
                if (at.x < 0 || at.y < 0 || at.x > size.x || at.y > size.y) return;
                var w = item.name.length * 15 + 16, h = 24;
                var box = [at.x - w / 2, at.y - h / 2, at.x + w / 2, at.y + h / 2];
                if (taken.some(function(b) { return b[0] < box[2] && box[0] < b[2] && b[1] < box[3] && box[1] < b[3]; })) return;
                taken.push(box);
                group.addLayer(item.marker);
            });
        }
        map.on('zoomend moveend resize', place);
        place();
    }

    // ------------------------------------------------------------------ the boards
    g.board = function(map, grids, S, words, config) {
        W = words;
        var sheet = sheetNow();
        sheet.close.setAttribute('aria-label', W.close);
        sheet.close.title = W.close;
        maps.push(map);
        var villageNames = {};
        (config.villages || []).forEach(function(v) { villageNames[v[0]] = v[1]; });
        var byCode = {}, selected = null, youAreHere = null;
        // Drawn from vector tiles (tiles.js): the page holds no grid; the service says which.
        var tiled = grids.geogridTiles || null;
        // A post or duties: an index into S (the page's boards), or the text itself (tiles).
        function str(v) { return typeof v === 'number' ? S[v] : v; }
        grids.eachLayer(function(l) { byCode[l.feature.properties.code] = l; });

        function photo(url) {
            var img = document.createElement('img');
            img.alt = url ? W.photo : W.no_photo;
            img.width = 64; img.height = 80;
            img.referrerPolicy = 'no-referrer';
            if (url) {
                // A broken address keeps its src (what was published); the silhouette is
                // shown through srcset, which wins over src once set.
                img.addEventListener('error', function() {
                    img.classList.add('geogrid-photo-missing');
                    img.alt = W.no_photo;
                    img.srcset = SILHOUETTE;
                }, {once: true});
                img.src = url;
            } else {
                img.classList.add('geogrid-photo-missing');
                img.src = SILHOUETTE;
            }
            return img;
        }
        function tel(number, label) {
            var a = node('a', 'geogrid-tel', label + ' ' + number);
            a.href = 'tel:' + String(number).replace(/[^0-9+]/g, '');
            return a;
        }
        function boardNode(p, address) {
            var box = node('div', 'geogrid-board');
            if (address) box.appendChild(node('div', 'geogrid-address', W.address + W.colon + address));
            box.appendChild(node('div', 'geogrid-meta', W.code + W.colon + p.code));
            if (villageNames[p.v]) box.appendChild(node('div', 'geogrid-meta', W.village + W.colon + villageNames[p.v]));
            if (!p.p.length) box.appendChild(node('p', 'geogrid-none', W.no_persons));
            p.p.forEach(function(q) {
                var row = box.appendChild(node('div', 'geogrid-person'));
                row.appendChild(photo(q[3]));
                var info = row.appendChild(node('div'));
                var who = info.appendChild(node('div'));
                who.appendChild(node('span', 'geogrid-post', str(q[0])));
                who.appendChild(document.createTextNode(' '));
                who.appendChild(node('span', 'geogrid-name', q[1]));
                if (q[2]) info.appendChild(tel(q[2], W.call));
                if (str(q[4])) info.appendChild(node('div', 'geogrid-duties', W.duties + W.colon + str(q[4])));
            });
            if (config.hotline) {
                var hot = box.appendChild(node('div', 'geogrid-hotline'));
                hot.appendChild(node('div', null, W.hotline + W.colon + config.hotline));
                hot.appendChild(tel(config.hotline, W.call));
            }
            // The printable board: the service renders it (a saved file has no service).
            var pdf = box.appendChild(node('a', 'geogrid-pdf', W.download));
            pdf.href = config.pdf + '?' + new URLSearchParams({grid: p.code, lang: config.lang});
            pdf.setAttribute('download', '');
            pdf.hidden = !config.api;
            return box;
        }
        function select(l) {
            if (tiled) { tiled.highlight(l ? l.feature.properties.code : null); return; }
            if (selected) map.removeLayer(selected);
            selected = l ? L.geoJSON(l.feature.geometry, {interactive: false,
                style: {color: '#d95f02', weight: 4, fill: false}}).addTo(map) : null;
        }
        function open(l, zoom, address) {
            g.sheet.show(l.feature.properties.name, boardNode(l.feature.properties, address));
            select(l);
            if (zoom && l.getBounds) g.fitArea(map, l.getBounds());
        }
        document.addEventListener('geogrid-sheet', function(e) { if (e.detail === 'hide') select(null); });
        grids.eachLayer(function(l) {
            l.on('click', function() { if (!window.geogridPicking) open(l, false); });
        });
        function gridAt(lat, lng) {
            var found = null;
            grids.eachLayer(function(l) { if (!found && g.covers(l.feature.geometry, lng, lat)) found = l; });
            return found;
        }
        // The grid at a point, to done(layer or null): on the page, or asked (tiles).
        function find(lat, lng, done) {
            if (tiled) tiled.find(lat, lng).then(done); else done(gridAt(lat, lng));
        }
        window.geogridFindGrid = function(lat, lng) {
            function opened(found) {
                if (found) open(found, false);
                return found ? found.feature.properties.code : null;
            }
            // Tiles: a promise of the code (the service answers).
            return tiled ? tiled.find(lat, lng).then(opened) : opened(gridAt(lat, lng));
        };
        g.openGrid = function(code, zoom, address) {
            if (tiled) return tiled.openGrid(code, zoom, address);
            var l = byCode[code];
            if (l) open(l, zoom, address);
            return !!l;
        };
        var town = L.latLngBounds(config.bounds);

        // The locate button: its own control and icon (nothing to load), under the zoom buttons.
        var Locate = L.Control.extend({options: {position: 'topleft'}, onAdd: function() {
            var bar = L.DomUtil.create('div', 'leaflet-bar geogrid-locate');
            var a = L.DomUtil.create('a', '', bar);
            a.href = '#'; a.id = 'geogrid-locate'; a.title = W.locate;
            a.setAttribute('role', 'button'); a.setAttribute('aria-label', W.locate);
            a.appendChild(icon());
            L.DomEvent.disableClickPropagation(bar);
            L.DomEvent.on(a, 'click', function(e) {
                L.DomEvent.preventDefault(e);
                g.locateMe(map, function(latlng) {
                    if (youAreHere) map.removeLayer(youAreHere);
                    youAreHere = null;
                    find(latlng.lat, latlng.lng, function(found) {
                        if (!found) {
                            // Not a zoom onto empty grey: the whole jurisdiction, and why.
                            g.sheet.hide();
                            g.fitArea(map, town);
                            g.notice(W.outside, 'error');
                            return;
                        }
                        youAreHere = L.circleMarker(latlng, {radius: 8, color: '#fff', weight: 3, fillColor: '#1a73e8',
                                                             fillOpacity: 1, interactive: false}).addTo(map);
                        open(found, true);
                    });
                });
            });
            return bar;
        }});
        new Locate().addTo(map);
        labels(map, config.villages || []);
        g.publicPage = {map: map, grids: grids, words: W, config: config, villageNames: villageNames, open: open};
        layout();
        // The whole area in the part of the map the title bar leaves free.
        g.fitArea(map, town);
        if (config.grid && !g.openGrid(config.grid, true)) g.notice(W.grid_missing.replace('{code}', config.grid), 'error');
    };
})(window.geogrid = window.geogrid || {});
