/* editor.js: the planner's boundary editor on leaflet-geoman (its call: Editor in
 * maps/planner.py). geogrid.editor(map, grids, drawn, dock, api, options):
 * - click a grid: its STORED boundary (full precision, with its ETag) goes into ``drawn``,
 *   editable vertex by vertex (Polygon or MultiPolygon, holes kept), snapping to the
 *   neighbours within options.snapPx pixels; every vertex drag is kept as a move
 *   {from, to}, sent as ``moves`` (neighbours follow) while "move shared edges" is ticked;
 * - split: draw a line across the selected grid; merge: pick two or more grids; new: draw
 *   a polygon;
 * - every save runs the same call with ?dry_run=true first: the impact (areas before and
 *   after, gaps and overlaps created or removed, households and population moved, open
 *   incidents) in a panel and on the map, a dialog of the page when it needs confirming,
 *   then the real call with the versions the dry run returned; the grids it touched are
 *   fetched again.
 * Dispatches 'geogrid-impact' {status, body} after a dry run and 'geogrid-saved'
 * {status, body} after a save (status 304: nothing to save) on document. */
(function(g) {
    function el(tag, text, attrs) {
        var node = document.createElement(tag);
        if (text != null) node.textContent = text;
        Object.keys(attrs || {}).forEach(function(k) { node.setAttribute(k, attrs[k]); });
        return node;
    }
    function fmt(v, t) { return v == null ? '—' : Math.round(v).toLocaleString(t.lang === 'en' ? 'en-US' : 'zh-CN'); }
    function pct(v) { return v == null ? '—' : (v > 0 ? '+' : '') + (Math.round(v * 10) / 10) + ' %'; }
    function same(a, b) { return Math.abs(a.lat - b.lat) < 1e-12 && Math.abs(a.lng - b.lng) < 1e-12; }

    g.editor = function(map, grids, drawn, dock, api, o) {
        var t = o.t;
        var state = {code: null, etag: null, layer: null, moves: [], from: null, line: null, polygon: null,
                     picked: {}, assignTo: 0, original: null};
        var impactLayer = L.featureGroup().addTo(map);
        // The toolbar's tools too snap within the configured distance.
        map.pm.setGlobalOptions({snappable: true, snapDistance: o.snapPx, allowSelfIntersection: false});
        var SELECTED = {color: '#0033cc', weight: 3, dashArray: '8 4', fillOpacity: 0.1, fillColor: '#0033cc'};
        var PICKED = {color: '#0033cc', weight: 4, fillOpacity: 0.3, fillColor: '#0033cc'};

        // ------------------------------------------------------------------ the panel
        var panel = el('div');
        panel.id = 'geogrid-editor';
        if (api.standalone) { var login = el('div'); login.id = 'geogrid-login'; panel.appendChild(login); api.loginForm(login); }
        var selectedLine = el('div', t.selected + ': ');
        var selected = el('b', t.none); selected.id = 'geogrid-selected'; selectedLine.appendChild(selected);
        panel.appendChild(selectedLine);
        var modes = el('div'); modes.id = 'geogrid-modes';
        var MODES = ['reshape', 'split', 'merge', 'new'];
        MODES.forEach(function(m) {
            var label = el('label'); label.style.marginRight = '6px';
            var radio = el('input', null, {type: 'radio', name: 'geogrid-mode', value: m});
            if (m === 'reshape') radio.checked = true;
            radio.onchange = function() { setMode(m); };
            label.appendChild(radio); label.appendChild(document.createTextNode(' ' + t['mode_' + m]));
            modes.appendChild(label);
        });
        panel.appendChild(modes);
        var shared = el('label'); var sharedBox = el('input', null, {type: 'checkbox', id: 'geogrid-move-shared'});
        sharedBox.checked = true; shared.appendChild(sharedBox); shared.appendChild(document.createTextNode(' ' + t.move_shared));
        panel.appendChild(shared);
        var hint = el('div', t.hint_reshape); hint.id = 'geogrid-hint'; hint.style.color = '#555';
        panel.appendChild(hint);
        var extra = el('div'); extra.id = 'geogrid-extra'; panel.appendChild(extra);
        var nameInput = el('input', null, {id: 'geogrid-name', placeholder: t.name});
        var parentInput = el('input', null, {id: 'geogrid-parent', placeholder: t.parent, value: o.parent});
        nameInput.style.width = parentInput.style.width = '110px';
        var buttons = el('div'); buttons.style.margin = '4px 0';
        var preview = el('button', t.preview, {type: 'button', id: 'geogrid-preview-btn'});
        var save = el('button', t.save, {type: 'button', id: 'geogrid-save-btn'});
        var cancel = el('button', t.cancel, {type: 'button', id: 'geogrid-cancel-btn'});
        [preview, save, cancel].forEach(function(b) { b.style.marginRight = '4px'; buttons.appendChild(b); });
        panel.appendChild(buttons);
        var status = el('div'); status.id = 'geogrid-status'; status.setAttribute('role', 'status');
        status.style.cssText = 'white-space:pre-wrap;max-height:140px;overflow:auto';
        panel.appendChild(status);
        var impactBox = el('div'); impactBox.id = 'geogrid-impact';
        dock.add('editor', t.editor, panel);
        dock.add('impact', t.impact, impactBox);

        function mode() { return document.querySelector('input[name="geogrid-mode"]:checked').value; }
        function say(headline, detail) {
            status.textContent = '';
            status.appendChild(el('b', headline));
            if (detail) status.appendChild(el('div', detail));
            dock.fit();
        }
        function setMode(m) {
            impactLayer.clearLayers();
            hint.textContent = t['hint_' + m];
            extra.textContent = '';
            shared.style.display = m === 'reshape' ? '' : 'none';
            if (m === 'new') { extra.appendChild(parentInput); extra.appendChild(nameInput); }
            if (m === 'merge') { extra.appendChild(nameInput); state.picked = {}; restyle(); showPicked(); }
            if (m !== 'merge') { state.picked = {}; restyle(); }
            if (m === 'split' && state.code) map.pm.enableDraw('Line', {snappable: true, snapDistance: o.snapPx});
            if (m === 'new') map.pm.enableDraw('Polygon', {snappable: true, snapDistance: o.snapPx});
            if (m !== 'split' && m !== 'new') map.pm.disableDraw();
            if (state.line) { drawn.removeLayer(state.line); state.line = null; }
            if (state.polygon) { drawn.removeLayer(state.polygon); state.polygon = null; }
            dock.fit();
        }

        // ------------------------------------------------------------------ selecting a grid
        // The selected grid's own outline on display is no place to snap to: its vertices
        // would pull every small drag back to where it started.
        function snapToShown(code, yes) {
            grids.eachLayer(function(l) { if (l.feature.properties.code === code) l.options.snapIgnore = !yes; });
        }
        function clear() {
            if (state.code) snapToShown(state.code, true);
            if (state.layer) { state.layer.pm.disable(); drawn.removeLayer(state.layer); }
            state.layer = null; state.moves = []; state.code = null; state.etag = null; state.original = null;
            selected.textContent = t.none;
        }
        function select(code) {
            clear();
            state.code = code;
            snapToShown(code, false);
            selected.textContent = code + ' …';  // until its stored boundary is here
            return api.call('GET', '/api/grids/' + encodeURIComponent(code) + '?lang=' + t.lang).then(function(r) {
                if (state.code !== code) return;
                if (!r.ok) { selected.textContent = code; explain(r, code); return; }
                state.etag = r.headers.get('ETag');
                var feature = r.body;
                L.geoJSON(feature, {style: function() { return SELECTED; }}).eachLayer(function(l) {
                    drawn.addLayer(l);
                    state.layer = l;
                    state.original = JSON.stringify(l.toGeoJSON(false).geometry);
                    l.pm.enable({snappable: true, snapDistance: o.snapPx, allowSelfIntersection: false,
                                 preventMarkerRemoval: false});
                    l.on('pm:markerdragstart', function(e) { state.from = L.latLng(e.markerEvent.target.getLatLng()); });
                    l.on('pm:markerdragend', function(e) {
                        var to = e.markerEvent.target.getLatLng();
                        if (!state.from || e.intersectionReset) { state.from = null; return; }
                        record(state.from, L.latLng(to)); state.from = null;
                    });
                });
                selected.textContent = feature.properties.code + ' ' + feature.properties.name;
                if (mode() === 'split') map.pm.enableDraw('Line', {snappable: true, snapDistance: o.snapPx});
            });
        }
        // A vertex dragged twice is one move, from where it was stored to where it is now.
        function record(from, to) {
            var earlier = state.moves.filter(function(m) { return same(m.to, from); })[0];
            if (earlier) earlier.to = to; else state.moves.push({from: from, to: to});
            state.moves = state.moves.filter(function(m) { return !same(m.from, m.to); });
        }
        function restyle() {
            grids.eachLayer(function(l) {
                grids.resetStyle(l);
                if (state.picked[l.feature.properties.code]) l.setStyle(PICKED);
            });
        }
        function showPicked() {
            var codes = Object.keys(state.picked);
            selected.textContent = codes.length ? codes.join('、') : t.none;
        }
        grids.on('click', function(e) {
            var code = e.layer.feature.properties.code;
            if (mode() === 'merge') {
                if (state.picked[code]) delete state.picked[code];
                else {
                    state.picked[code] = {version: null};
                    api.call('GET', '/api/grids/' + encodeURIComponent(code)).then(function(r) {
                        if (r.ok && state.picked[code]) state.picked[code].version = Number(r.body.properties.version);
                    });
                }
                restyle(); showPicked();
                return;
            }
            // While a line or an outline is being drawn, a click is its next vertex.
            if (mode() === 'new' || map.pm.globalDrawModeEnabled()) return;
            select(code);
        });
        map.on('pm:create', function(e) {
            if (e.shape === 'Line') {
                if (state.line) drawn.removeLayer(state.line);
                state.line = e.layer; drawn.addLayer(e.layer);
                e.layer.setStyle({color: '#000', weight: 3, dashArray: '4 4'});
            } else if (e.shape === 'Polygon') {
                if (state.polygon) drawn.removeLayer(state.polygon);
                state.polygon = e.layer; drawn.addLayer(e.layer);
                e.layer.pm.enable({snappable: true, snapDistance: o.snapPx, allowSelfIntersection: false});
            }
        });

        // ------------------------------------------------------------------ the operations
        function ll(p) { return [p.lng, p.lat]; }
        function operation() {
            var m = mode(), note = t.note, lang = '?lang=' + t.lang;
            if (m === 'reshape') {
                if (!state.layer) return {error: t.none_selected};
                var geometry = state.layer.toGeoJSON(false).geometry;  // full precision
                if (JSON.stringify(geometry) === state.original) return {unchanged: true};
                var body = {geometry: geometry, properties: {}, note: note};
                if (sharedBox.checked && state.moves.length) {
                    body.moves = state.moves.map(function(mv) { return {from: ll(mv.from), to: ll(mv.to)}; });
                }
                return {method: 'PATCH', path: '/api/grids/' + encodeURIComponent(state.code) + lang, body: body,
                        code: state.code, ifMatch: state.etag};
            }
            if (m === 'split') {
                if (!state.layer) return {error: t.none_selected};
                if (!state.line) return {error: t.draw_line};
                return {method: 'POST', path: '/api/grids/' + encodeURIComponent(state.code) + '/split' + lang,
                        body: {line: state.line.toGeoJSON(false).geometry, assign_to: state.assignTo, note: note},
                        code: state.code, ifMatch: state.etag};
            }
            if (m === 'merge') {
                var codes = Object.keys(state.picked);
                if (codes.length < 2) return {error: t.pick_two};
                var versions = {};
                codes.forEach(function(c) { if (state.picked[c].version != null) versions[c] = state.picked[c].version; });
                var mb = {codes: codes, note: note, versions: versions};
                if (nameInput.value) mb.name = nameInput.value;
                return {method: 'POST', path: '/api/grids/merge' + lang, body: mb, code: codes[0]};
            }
            if (!state.polygon) return {error: t.draw_polygon};
            return {method: 'POST', path: '/api/grids', code: null, body: {  // it takes no lang
                type: 'Feature', geometry: state.polygon.toGeoJSON(false).geometry,
                properties: {name: nameInput.value || t.new_grid_name, parent: parentInput.value, layer: o.layer}}};
        }
        function send(op, dry) {
            var headers = {};
            if (op.ifMatch) headers['If-Match'] = op.ifMatch;
            var sep = op.path.indexOf('?') < 0 ? '?' : '&';
            return api.call(op.method, op.path + sep + 'dry_run=' + (dry ? 'true' : 'false'), op.body, headers);
        }
        // The versions the dry run read, for every other grid the operation touches.
        function withVersions(op, impact) {
            if (!impact || !impact.grids) return op;
            var versions = Object.assign({}, op.body.versions || {});
            impact.grids.forEach(function(gr) {
                if (gr.status !== 'new' && gr.code !== op.code && gr.version != null && !(gr.code in versions)) {
                    versions[gr.code] = gr.version;
                }
            });
            if (Object.keys(versions).length) op.body.versions = versions;
            return op;
        }
        function fire(name, r) {
            document.dispatchEvent(new CustomEvent(name, {detail: {status: r.status, body: r.body}}));
        }
        function run(dryOnly) {
            var op = operation();
            if (op.error) { say(op.error); return Promise.resolve(); }
            if (op.unchanged) {
                say(t.unchanged);
                fire('geogrid-saved', {status: 304, body: {}});
                return Promise.resolve();
            }
            say(t.checking_impact);
            return send(op, true).then(function(r) {
                fire('geogrid-impact', r);
                if (!r.ok) { explain(r, op.code); if (!dryOnly) fire('geogrid-saved', r); return; }
                showImpact(r.body);
                if (dryOnly) { say(t.preview_done); return; }
                var impact = r.body.impact;
                var ask = impact && impact.needs_confirmation ? geogrid.confirmDialog('geogrid-confirm', t.confirm_title, impact.reasons || [], t.confirm_yes, t.confirm_no) : Promise.resolve(true);
                return ask.then(function(yes) {
                    if (!yes) { say(t.not_saved); fire('geogrid-saved', {status: 0, body: {cancelled: true}}); return; }
                    say(t.saving);
                    return send(withVersions(op, impact), false).then(function(s) {
                        if (!s.ok) { explain(s, op.code); fire('geogrid-saved', s); return; }
                        map.pm.disableDraw();
                        return refresh(s.body, op).then(function() {
                            // A reshaped grid stays selected, with its new boundary and version.
                            return op.method === 'PATCH' ? select(op.code) : null;
                        }).then(function() {
                            dock.open('editor');
                            say(t.saved + savedWhat(s.body, op));
                            fire('geogrid-saved', s);
                        });
                    });
                });
            });
        }
        function savedWhat(body, op) {
            if (body.created) return ' ' + body.created.map(function(f) { return f.properties.code; }).join('、');
            if (body.codes) return ' ' + body.codes.join('、');
            if (body.properties) return ' ' + body.properties.code + ' v' + body.properties.boundary_version;
            return '';
        }
        preview.onclick = function() { run(true); };
        save.onclick = function() { run(false); };
        cancel.onclick = function() {
            clear(); impactLayer.clearLayers(); impactBox.textContent = ''; state.picked = {}; restyle();
            setMode(mode()); say('');
        };

        // ------------------------------------------------------------------ answers
        function explain(r, code) {
            var b = r.body || {}, detail = b.detail || '';
            var named = code || ((detail.match(/\b\d{12,18}\b/) || [])[0]) || '';
            var headline;
            if (r.status === 412) {
                headline = t.stale.replace('{code}', named).replace('{version}', b.current_version != null ? b.current_version : '?');
            } else if (r.status === 403) headline = t.forbidden;
            else if (r.status === 428) headline = t.versions_needed;
            else if (r.status === 422 || r.status === 400) headline = t.invalid;
            else if (r.status === 401) headline = t.unauthorized;
            else if (r.status === 409) headline = t.conflict;
            else if (r.status === 0) headline = t.offline;
            else headline = t.failed + ' (' + r.status + ')';
            var lines = [detail];
            (b.problems || []).forEach(function(p) {
                lines.push('- ' + (p.code ? p.code + ' ' : '') + (p.field ? p.field + ': ' : '') + (p.message || p.reason || '') +
                           (p.location ? ' @ ' + p.location.join(', ') : ''));
            });
            (b.grids || []).forEach(function(gr) { lines.push('- ' + gr.code + (gr.version != null ? ' v' + gr.version : '')); });
            say(r.status ? headline + ' [' + r.status + ']' : headline, lines.filter(Boolean).join('\n'));
            dock.open('editor');
        }
        function cell(row, text, cls) { var c = el('td', text); if (cls) c.className = cls; row.appendChild(c); return c; }
        function showImpact(body) {
            impactLayer.clearLayers();
            impactBox.textContent = '';
            var impact = body.impact;
            (body.created || []).forEach(function(f, i) {
                L.geoJSON(f, {style: function() { return o.impactStyles.new_grid; }, pmIgnore: true, snapIgnore: true})
                    .bindTooltip(String(i + 1), {permanent: true, direction: 'center'}).addTo(impactLayer);
            });
            if (body.created && body.created.length > 1 && mode() === 'split') {
                var choose = el('div', t.assign_to + ': ');
                choose.id = 'geogrid-assign';
                body.created.forEach(function(f, i) {
                    var lab = el('label'); lab.style.marginRight = '6px';
                    var radio = el('input', null, {type: 'radio', name: 'geogrid-assign', value: String(i)});
                    radio.checked = i === state.assignTo;
                    radio.onchange = function() { state.assignTo = i; };
                    lab.appendChild(radio);
                    lab.appendChild(document.createTextNode(' ' + (i + 1) + ' ' + (f.properties.code || '')));
                    choose.appendChild(lab);
                });
                impactBox.appendChild(choose);
            }
            if (!impact) { impactBox.appendChild(el('div', t.no_impact)); dock.open('impact'); return; }
            if (impact.needs_confirmation) {
                var warn = el('div'); warn.style.color = '#b00020';
                (impact.reasons || []).forEach(function(x) { warn.appendChild(el('div', '⚠ ' + x)); });
                impactBox.appendChild(warn);
            }
            var table = el('table'); table.id = 'geogrid-impact-grids'; table.style.borderCollapse = 'collapse';
            var head = el('tr');
            [t.code, t.name, t.state, t.area_before, t.area_after, t.change].forEach(function(h) { head.appendChild(el('th', h)); });
            table.appendChild(head);
            (impact.grids || []).forEach(function(gr) {
                var row = el('tr');
                row.setAttribute('data-code', gr.code);
                cell(row, gr.code); cell(row, gr.name); cell(row, t.statuses[gr.status] || gr.status);
                cell(row, fmt(gr.area_before_m2, t)); cell(row, fmt(gr.area_after_m2, t)); cell(row, pct(gr.area_change_pct));
                table.appendChild(row);
            });
            impactBox.appendChild(table);
            [['created', t.created_problems, o.impactStyles.created], ['removed', t.removed_problems, o.impactStyles.removed]]
                .forEach(function(spec) {
                    var found = impact[spec[0]] || [];
                    impactBox.appendChild(el('b', spec[1] + ' (' + found.length + ')'));
                    var list = el('ul'); list.className = 'geogrid-impact-' + spec[0];
                    found.forEach(function(p) {
                        list.appendChild(el('li', g.problemLine(p, o.problemText) +
                                                  (p.width_m != null ? ' · ' + t.width + ' ' + (Math.round(p.width_m * 10) / 10) + ' m' : '')));
                        if (p.geometry) {
                            L.geoJSON(p.geometry, {style: function() { return spec[2]; }, pmIgnore: true, snapIgnore: true})
                                .bindPopup(function() { return g.problemCard(p, o.problemText); }).addTo(impactLayer);
                        }
                    });
                    impactBox.appendChild(list);
                });
            var moved = el('div');
            moved.appendChild(el('div', t.households_moved + ': ' + fmt(impact.households_moved, t)));
            moved.appendChild(el('div', t.population_moved + ': ' + fmt(impact.population_moved, t)));
            impactBox.appendChild(moved);
            if ((impact.incidents || []).length) {
                impactBox.appendChild(el('b', t.incidents_moved + ' (' + impact.incidents.length + ')'));
                var inc = el('ul');
                impact.incidents.forEach(function(i) {
                    inc.appendChild(el('li', (i.number || i.id) + ' · ' + (t.states[i.state] || i.state) + ' · ' +
                                             i.grid + ' → ' + (i.grid_after || '—')));
                });
                impactBox.appendChild(inc);
                impactBox.appendChild(el('div', t.incidents_keep_route));
            }
            (impact.notes || []).forEach(function(n) { impactBox.appendChild(el('div', n)); });
            if (!body.dry_run) { dock.open('impact'); return; }
            // Save from here too, or go back to the drawing.
            var again = el('div'); again.style.margin = '6px 0';
            var saveHere = el('button', t.save, {type: 'button', id: 'geogrid-impact-save'});
            var back = el('button', t.back, {type: 'button'}); back.style.marginLeft = '6px';
            saveHere.onclick = function() { run(false); };
            back.onclick = function() { dock.open('editor'); };
            again.appendChild(saveHere); again.appendChild(back); impactBox.appendChild(again);
            dock.open('impact');
        }

        // ------------------------------------------------------------------ after a save
        function colourFor(bounds) {
            var used = {};
            grids.eachLayer(function(l) { if (l.getBounds().intersects(bounds)) used[l.feature.properties.colour] = 1; });
            return o.palette.filter(function(c) { return !used[c]; })[0] || o.palette[0];
        }
        function refresh(body, op) {
            var codes = {};
            ((body.impact && body.impact.grids) || []).forEach(function(gr) { codes[gr.code] = gr.status; });
            (body.created || []).forEach(function(f) { codes[f.properties.code] = 'new'; });
            (body.retired || []).forEach(function(c) { codes[c] = 'retired'; });
            (body.changed || []).forEach(function(c) { codes[c] = codes[c] || 'changed'; });
            (body.codes || []).forEach(function(c) { codes[c] = 'new'; });
            if (op.code && op.method === 'PATCH') codes[op.code] = 'changed';
            var fresh = [];
            grids.eachLayer(function(l) {
                var c = l.feature.properties.code;
                if (c in codes) {
                    if (codes[c] !== 'retired') fresh.push([c, l.feature.properties.colour]);
                    grids.removeLayer(l);
                }
            });
            Object.keys(codes).forEach(function(c) {
                if (codes[c] !== 'retired' && !fresh.some(function(f) { return f[0] === c; })) fresh.push([c, null]);
            });
            clear(); impactLayer.clearLayers();
            if (state.line) { drawn.removeLayer(state.line); state.line = null; }
            if (state.polygon) { drawn.removeLayer(state.polygon); state.polygon = null; }
            state.picked = {};
            return Promise.all(fresh.map(function(f) {
                return api.call('GET', '/api/grids/' + encodeURIComponent(f[0]) + '?lang=' + t.lang).then(function(r) {
                    if (!r.ok) return;
                    var p = r.body.properties;
                    p.search = p.code + ' ' + p.name; p.layer = o.layer;
                    p.colour = f[1] || colourFor(L.geoJSON(r.body).getBounds());
                    var before = {};
                    grids.eachLayer(function(l) { before[L.stamp(l)] = 1; });
                    grids.addData(r.body);
                    var added = L.featureGroup();
                    grids.eachLayer(function(l) { if (!before[L.stamp(l)]) added.addLayer(l); });
                    if (grids.geogridDescribe) g.describe.apply(null, [added].concat(grids.geogridDescribe));
                });
            })).then(function() { restyle(); showPicked(); document.dispatchEvent(new CustomEvent('geogrid-refreshed')); });
        }
        setMode('reshape');
        dock.startOpen('editor');
        return {select: select, state: state, run: run};
    };
})(window.geogrid = window.geogrid || {});
