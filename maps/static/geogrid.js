/* geogrid.js: the page's one way of showing user text, loaded first on every map.
 * geogrid.card builds popups and tooltips as DOM nodes with textContent; geogrid.covers is
 * point in (Multi)Polygon on the page (find my grid, the report form); geogrid.esc
 * escapes what must be an HTML string (the public board); geogrid.describe gives a GeoJSON
 * layer's features their cards; geogrid.search is leaflet-search with text suggestions;
 * geogrid.confirmDialog is the pages' one confirm dialog (the editor's, the publish panel's).
 * User data reaches the page only as JSON written by the Python side (maps/base.py). */
(function(g) {
    function esc(s) { return String(s == null ? '' : s).replace(/[&<>"'`]/g, function(c) {
        return {'&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;', '`': '&#96;'}[c]; }); }
    function text(tag, value, cls) {
        var el = document.createElement(tag);
        if (cls) el.className = cls;
        el.textContent = value == null ? '' : (typeof value === 'object' ? JSON.stringify(value) : String(value));
        return el;
    }
    function blank(v) { return v == null || v === '' || (Array.isArray(v) && !v.length); }
    // [title, [label, value, colour], ...] -> a node; a list value becomes a list.
    function card(spec) {
        var box = document.createElement('div');
        box.className = 'geogrid-card';
        if (!blank(spec[0])) box.appendChild(text('b', spec[0]));
        spec.slice(1).forEach(function(row) {
            if (blank(row[1])) return;
            var line = document.createElement('div');
            if (!blank(row[0])) line.appendChild(text('b', row[0] + ': '));
            if (Array.isArray(row[1])) {
                var list = document.createElement('ul');
                list.style.margin = '0'; list.style.paddingLeft = '16px';
                row[1].forEach(function(v) { list.appendChild(text('li', v)); });
                line.appendChild(list);
            } else {
                var value = line.appendChild(text('span', row[1]));
                if (row[2]) { value.style.color = row[2]; value.style.fontWeight = 'bold'; }
            }
            box.appendChild(line);
        });
        return box;
    }
    // Tooltip or popup of each feature of a GeoJSON layer: the named fields, or every
    // property but the excluded ones.
    function describe(layer, how, fields, aliases, exclude, options) {
        // Kept, so that features added later (the editor's refreshed grids) get the same cards.
        layer.geogridDescribe = [how, fields, aliases, exclude, options];
        layer.eachLayer(function(l) {
            l[how](function() {
                var p = l.feature.properties, keys = fields || Object.keys(p).filter(function(k) {
                    return exclude.indexOf(k) < 0; });
                return card([null].concat(keys.map(function(k, i) {
                    return [aliases ? aliases[i] : k, p[k]]; })));
            }, options);
        });
    }
    function searchTip(value) { return text('li', value); }
    // leaflet-search on ``layer`` (its own suggestions are written with innerHTML: these are
    // text), flying to the grid found and opening its popup; added to ``map``.
    function search(map, layer, options) {
        var control = new L.Control.Search({
            layer: layer,
            propertyName: options.propertyName,
            collapsed: options.collapsed,
            textPlaceholder: options.textPlaceholder,
            textErr: options.textErr || 'Location not found',
            textCancel: options.textCancel || 'Cancel',
            position: options.position,
            buildTip: searchTip,
            marker: false,
            moveToLocation: function(latlng, title, map) {
                map.flyTo(latlng, map.getBoundsZoom(latlng.layer.getBounds()));
            }
        });
        control.on('search:locationfound', function(e) { if (e.layer._popup) e.layer.openPopup(); });
        map.addControl(control);
        return control;
    }
    // An element of the page as a Leaflet control in a corner of the map: Leaflet stacks
    // a corner's controls, so it never lies over another one.
    function control(map, id, position) {
        var node = document.getElementById(id), c = L.control({position: position});
        c.onAdd = function() { L.DomEvent.disableClickPropagation(node); return node; };
        return c.addTo(map);
    }
    function zoomTitles(map, titles) {
        if (!map.zoomControl) return;
        map.zoomControl._zoomInButton.title = titles[0];
        map.zoomControl._zoomOutButton.title = titles[1];
    }
    // Whether a GeoJSON (Multi)Polygon covers lon/lat x, y: the even-odd rule on each
    // ring, holes excluded; what "find my grid" and the report form ask, with no request.
    function inRing(x, y, ring) {
        var inside = false;
        for (var i = 0, j = ring.length - 1; i < ring.length; j = i++) {
            var xi = ring[i][0], yi = ring[i][1], xj = ring[j][0], yj = ring[j][1];
            if (((yi > y) !== (yj > y)) && (x < (xj - xi) * (y - yi) / (yj - yi) + xi)) inside = !inside;
        }
        return inside;
    }
    function covers(geom, x, y) {
        if (!geom || (geom.type !== 'Polygon' && geom.type !== 'MultiPolygon')) return false;
        var polys = geom.type === 'Polygon' ? [geom.coordinates] : geom.coordinates;
        return polys.some(function(rings) {
            return inRing(x, y, rings[0]) && !rings.slice(1).some(function(h) { return inRing(x, y, h); });
        });
    }
    // A confirm dialog of the page (window.confirm cannot be styled, translated or tested):
    // ``id`` names the dialog, its buttons are id-yes and id-no; resolves true or false.
    function confirmDialog(id, title, lines, yesText, noText) {
        return new Promise(function(resolve) {
            var shade = document.createElement('div'); shade.id = id;
            shade.setAttribute('role', 'dialog'); shade.setAttribute('aria-modal', 'true');
            shade.style.cssText = 'position:fixed;inset:0;background:rgba(0,0,0,.35);z-index:3000;display:flex;' +
                                  'align-items:center;justify-content:center';
            var box = document.createElement('div');
            box.style.cssText = 'background:#fff;padding:14px;border-radius:6px;max-width:min(90vw,420px);' +
                                'font:13px sans-serif;max-height:80vh;overflow:auto';
            box.appendChild(text('b', title));
            var list = document.createElement('ul');
            lines.forEach(function(x) { list.appendChild(text('li', x)); });
            box.appendChild(list);
            var yes = text('button', yesText), no = text('button', noText);
            yes.type = no.type = 'button'; yes.id = id + '-yes'; no.id = id + '-no';
            no.style.marginLeft = '8px';
            box.appendChild(yes); box.appendChild(no); shade.appendChild(box);
            document.body.appendChild(shade);
            function done(v) { shade.remove(); resolve(v); }
            yes.onclick = function() { done(true); };
            no.onclick = function() { done(false); };
            yes.focus();
        });
    }
    g.confirmDialog = confirmDialog;
    g.control = control; g.zoomTitles = zoomTitles; g.covers = covers;
    g.esc = esc; g.card = card; g.describe = describe; g.searchTip = searchTip; g.search = search;
    g.popup = function(spec) { return function() { return card(spec); }; };
})(window.geogrid = window.geogrid || {});
