/* savepanel.js: the planner's save control (its markup: SavePanel in maps/planner.py).
 * geogrid.savePanel(map, drawn, grids, options): log in (token kept in this tab only), pick
 * a grid to reshape or give a parent for a new one, draw, save; shows the service's answer,
 * validation errors included. Saving a reshaped grid sends If-Match, so a boundary someone
 * else changed meanwhile is not overwritten (412). An exported file saves to the service
 * named in <meta name="geogrid-api">. options: layer (the grids' layer key), noneSelected
 * (the message when no grid is selected), defaultName (a new grid's name when none is given).
 * Dispatches 'geogrid-saved' on document with {status, body}. */
(function(g) {
    g.savePanel = function(map, drawn, grids, options) {
        var api = (document.querySelector('meta[name="geogrid-api"]') || {}).content || '';
        var selected = null, version = null, original = null, layerKey = options.layer;
        function status(text) { document.getElementById('geogrid-status').textContent = text; }
        function token() { return sessionStorage.getItem('geogrid-token'); }
        L.DomEvent.disableClickPropagation(document.getElementById('geogrid-save'));
        document.getElementById('geogrid-login-btn').onclick = function() {
            var body = new URLSearchParams({username: document.getElementById('geogrid-user').value,
                                            password: document.getElementById('geogrid-pass').value});
            fetch(api + '/api/token', {method: 'POST', body: body}).then(function(r) {
                return r.json().then(function(j) {
                    if (r.ok) { sessionStorage.setItem('geogrid-token', j.access_token); status('OK'); }
                    else { status(r.status + ' ' + (j.detail || '')); }
                });
            }).catch(function(e) { status(String(e)); });
        };
        grids.on('click', function(e) {
            var f = e.layer.feature; selected = f.properties.code; version = null;
            document.getElementById('geogrid-selected').textContent = selected + ' \u2026';  // until its boundary is here
            drawn.clearLayers();
            // The stored boundary, not the simplified one on display: saving an untouched
            // shape must not move the grid's edges.
            fetch(api + '/api/grids/' + selected).then(function(r) {
                version = r.headers.get('ETag');
                return r.json();
            }).then(function(full) {
                L.geoJSON(full).eachLayer(function(l) {
                    drawn.addLayer(l); original = JSON.stringify(l.toGeoJSON(false).geometry);
                });
                document.getElementById('geogrid-selected').textContent =
                    full.properties.code + ' ' + full.properties.name;
            }).catch(function(err) {
                document.getElementById('geogrid-selected').textContent = selected;
                status(String(err));
            });
        });
        function explain(r, j) {
            var lines = [r.status + ' ' + (j.detail || '')];
            (j.problems || []).forEach(function(p) {
                lines.push('- ' + (p.field ? p.field + ': ' : '') + p.message +
                           (p.location ? ' @ ' + p.location.join(', ') : ''));
            });
            if (j.properties) { lines.push(j.properties.code + ' v' + j.properties.boundary_version); }
            if (j.codes) { lines.push(j.codes.join(', ')); }
            return lines.join('\n');
        }
        document.getElementById('geogrid-save-btn').onclick = function() {
            var layers = drawn.getLayers();
            if (!layers.length) { status('\u270e ?'); return; }
            // Full precision: Leaflet rounds to 6 decimals unless told not to.
            var geometry = layers[layers.length - 1].toGeoJSON(false).geometry;
            var mode = document.querySelector('input[name="geogrid-mode"]:checked').value;
            if (mode === 'reshape' && JSON.stringify(geometry) === original) {
                status('= ' + selected);  // nothing changed: no new boundary version
                document.dispatchEvent(new CustomEvent('geogrid-saved', {detail: {status: 304, body: {}}}));
                return;
            }
            var headers = {'Content-Type': 'application/json', 'Authorization': 'Bearer ' + (token() || '')};
            var url, method, body;
            if (mode === 'reshape') {
                if (!selected) { status(options.noneSelected); return; }
                url = api + '/api/grids/' + selected; method = 'PATCH';
                body = {type: 'Feature', geometry: geometry, properties: {}, note: 'map edit'};
                if (version) headers['If-Match'] = version;
            } else {
                url = api + '/api/grids'; method = 'POST';
                body = {type: 'Feature', geometry: geometry, properties: {
                    name: document.getElementById('geogrid-name').value || options.defaultName,
                    parent: document.getElementById('geogrid-parent').value, layer: layerKey}};
            }
            fetch(url, {method: method, headers: headers, body: JSON.stringify(body)}).then(function(r) {
                return r.json().then(function(j) {
                    status(explain(r, j));
                    if (r.ok && r.headers.get('ETag')) version = r.headers.get('ETag');
                    document.dispatchEvent(new CustomEvent('geogrid-saved', {detail: {status: r.status, body: j}}));
                });
            }).catch(function(e) { status(String(e)); });
        };
    };
})(window.geogrid = window.geogrid || {});
