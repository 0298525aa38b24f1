/* publish.js: the planner's publish panel (公示发布; its call: Publish in maps/planner.py).
 * geogrid.publish(map, grids, layerControl, dock, api, options) adds a dock panel that:
 * - asks the service what publishing the page's net (options.layer) under its area
 *   (options.area) would change (GET /api/publications/pending) each time it is opened and
 *   after every save of the editor ('geogrid-saved' on document), and shows the counts, the
 *   codes (with the names the page has) and the last publication's time and note;
 * - outlines the added and changed grids on the map (options.styles; an overlay of the
 *   layer control, so it can be hidden), because those are what the public will see change;
 * - publishes after a confirming dialog of the page (POST /api/publications) and shows the
 *   result. Errors are written in the panel in the page's language, never in an alert.
 * Served pages only: an exported file has no session to publish with.
 * Dispatches 'geogrid-pending' {status, body} after each answer about what is pending and
 * 'geogrid-published' {status, body} after a publication (or its refusal) on document. */
(function(g) {
    var LIST_MAX = 8;  // codes shown per kind: the counts say how many more there are
    function el(tag, text, attrs) {
        var node = document.createElement(tag);
        if (text != null) node.textContent = text;
        Object.keys(attrs || {}).forEach(function(k) { node.setAttribute(k, attrs[k]); });
        return node;
    }
    function fill(template, values) {
        return template.replace(/\{(\w+)\}/g, function(m, k) { return k in values ? String(values[k]) : m; });
    }
    function fire(name, r) {
        document.dispatchEvent(new CustomEvent(name, {detail: {status: r.status, body: r.body}}));
    }

    g.publish = function(map, grids, layerControl, dock, api, o) {
        var t = o.t;
        var query = '?area=' + encodeURIComponent(o.area) + '&layer=' + encodeURIComponent(o.layer);
        var highlight = L.featureGroup();
        highlight.addTo(map);
        if (layerControl) layerControl.addOverlay(highlight, g.esc(t.overlay));
        var loading = null, pending = null, asked = false;

        // ------------------------------------------------------------------ the panel
        var panel = el('div'); panel.id = 'geogrid-publish';
        panel.appendChild(el('div', fill(t.scope, {area: o.areaName || o.area, code: o.area, layer: o.layerName || o.layer}),
                             {id: 'geogrid-publish-scope'}));
        var summary = el('div', t.loading, {id: 'geogrid-publish-summary', role: 'status'});
        summary.style.cssText = 'font-weight:bold;margin:4px 0';
        var lists = el('div'); lists.id = 'geogrid-publish-lists';
        var legend = el('div'); legend.id = 'geogrid-publish-legend'; legend.style.margin = '4px 0';
        ['changed', 'added'].forEach(function(kind) {
            var s = o.styles[kind], row = el('div'), swatch = el('span');
            swatch.style.cssText = 'display:inline-block;width:14px;height:14px;margin-right:6px;vertical-align:middle;' +
                                   'box-sizing:border-box;border:3px ' + (s.dashArray.indexOf('2 ') === 0 ? 'dotted' : 'dashed') +
                                   ' ' + s.color;
            row.appendChild(swatch); row.appendChild(document.createTextNode(t['legend_' + kind]));
            legend.appendChild(row);
        });
        var last = el('div'); last.id = 'geogrid-publish-last'; last.style.cssText = 'color:#444;margin:4px 0';
        var noteLabel = el('label', t.note); noteLabel.setAttribute('for', 'geogrid-publish-note');
        noteLabel.style.display = 'block';
        var note = el('textarea', null, {id: 'geogrid-publish-note', maxlength: '2000', rows: '2',
                                         placeholder: t.note_placeholder});
        note.style.cssText = 'width:100%;box-sizing:border-box;font-size:12px';
        var buttons = el('div'); buttons.style.margin = '4px 0';
        var button = el('button', t.publish, {type: 'button', id: 'geogrid-publish-btn'});
        var again = el('button', t.refresh, {type: 'button', id: 'geogrid-publish-refresh'});
        again.style.marginLeft = '6px';
        var nothing = el('div', t.nothing, {id: 'geogrid-publish-nothing'});
        nothing.style.cssText = 'color:#555;display:none';
        buttons.appendChild(button); buttons.appendChild(again);
        var answer = el('div', null, {id: 'geogrid-publish-status', role: 'status'});
        answer.style.cssText = 'white-space:pre-wrap;margin:4px 0';
        [summary, lists, legend, last, noteLabel, note, buttons, nothing, answer].forEach(function(n) { panel.appendChild(n); });
        dock.add('publish', t.title, panel);
        button.disabled = true;

        // ------------------------------------------------------------------ what is pending
        function names() {
            var out = {};
            if (grids) grids.eachLayer(function(l) { out[l.feature.properties.code] = l.feature.properties.name; });
            return out;
        }
        function showLists(body) {
            lists.textContent = '';
            var named = names();
            ['added', 'changed', 'withdrawn'].forEach(function(kind) {
                var codes = body[kind] || [];
                if (!codes.length) return;
                lists.appendChild(el('b', t['list_' + kind] + ' (' + codes.length + ')'));
                var list = el('ul'); list.className = 'geogrid-publish-' + kind;
                list.style.cssText = 'margin:2px 0;padding-left:18px';
                codes.slice(0, LIST_MAX).forEach(function(code) {
                    var item = el('li', code + (named[code] ? ' ' + named[code] : ''));
                    item.setAttribute('data-code', code);
                    list.appendChild(item);
                });
                if (codes.length > LIST_MAX) list.appendChild(el('li', fill(t.more, {n: codes.length - LIST_MAX})));
                lists.appendChild(list);
            });
        }
        // The current boundaries of what would change, as the grid layer holds them now
        // (after an edit the editor has fetched them again).
        function showOnMap(body) {
            highlight.clearLayers();
            if (!grids) return;
            var kinds = {};
            (body.changed || []).forEach(function(c) { kinds[c] = 'changed'; });
            (body.added || []).forEach(function(c) { kinds[c] = 'added'; });
            grids.eachLayer(function(l) {
                var kind = kinds[l.feature.properties.code];
                if (!kind) return;
                // An outline only, taking no clicks: the grid under it stays the one picked.
                // A feature of its own: the grid's (its card's properties) stays as it is.
                var outline = {type: 'Feature', geometry: l.feature.geometry,
                               properties: {code: l.feature.properties.code, kind: kind}};
                L.geoJSON(outline, {style: function() { return Object.assign({interactive: false}, o.styles[kind]); },
                                    pmIgnore: true, snapIgnore: true, interactive: false}).eachLayer(function(x) {
                    highlight.addLayer(x);
                });
            });
            onTop();
        }
        // Over the grids and the problems, which may be drawn (again) after the outlines.
        function onTop() { highlight.eachLayer(function(x) { x.bringToFront(); }); }
        document.addEventListener('geogrid-problems', onTop);
        function showLast(r) {
            last.textContent = '';
            if (!r.ok) return;
            var p = (r.body.items || [])[0];
            if (!p) { last.textContent = t.never; return; }
            last.appendChild(el('div', t.last + t.sep + g.localTime(p.published_at, o.lang, o.tz) +
                                       (p.published_by ? ' · ' + p.published_by : '')));
            if (p.note) last.appendChild(el('div', t.last_note + t.sep + p.note));
        }
        function load() {
            // Asked while an answer is on its way (a save just now): ask again after it.
            if (loading) return loading.then(function() { return load(); });
            asked = true;
            summary.textContent = t.loading;
            var request = Promise.all([
                api.call('GET', '/api/publications/pending' + query),
                api.call('GET', '/api/publications' + query + '&limit=1')
            ]).then(function(answers) {
                var r = answers[0];
                showLast(answers[1]);
                if (!r.ok) {
                    pending = null;
                    summary.textContent = t.unknown;
                    lists.textContent = ''; highlight.clearLayers();
                    button.disabled = true; nothing.style.display = 'none';
                    explain(r);
                } else {
                    pending = r.body;
                    var b = r.body, n = b.added.length + b.changed.length + b.withdrawn.length;
                    summary.textContent = fill(t.summary, {added: b.added.length, changed: b.changed.length,
                                                           withdrawn: b.withdrawn.length, unchanged: b.unchanged});
                    showLists(b); showOnMap(b);
                    button.disabled = n === 0;
                    button.title = n === 0 ? t.nothing : '';
                    nothing.style.display = n === 0 ? '' : 'none';
                }
                dock.fit();
                fire('geogrid-pending', r);
            });
            loading = request;
            request.then(function() { loading = null; }, function() { loading = null; });
            return request;
        }

        // ------------------------------------------------------------------ publishing
        function explain(r) {
            var b = r.body || {}, headline;
            if (r.status === 403) headline = t.forbidden;
            else if (r.status === 401) headline = t.unauthorized;
            else if (r.status === 404) headline = t.not_found;
            else if (r.status === 409) headline = t.conflict;
            else if (r.status === 400 || r.status === 422) headline = t.invalid;
            else if (r.status === 0) headline = t.offline;
            else headline = t.failed;
            answer.textContent = '';
            var head = el('b', headline + (r.status ? ' [' + r.status + ']' : ''));
            head.style.color = '#b00020';
            answer.appendChild(head);
            // The service's own words (English) only where the headline cannot say enough.
            var detail = typeof b.detail === 'string' && r.status !== 401 && r.status !== 403 ? b.detail : '';
            if (detail) { var d = el('div', t.service_said + t.sep + detail); d.style.color = '#555'; answer.appendChild(d); }
            dock.fit();
        }
        function publish() {
            if (!pending) return Promise.resolve();
            var b = pending, text = note.value.trim();
            var lines = [summary.textContent, t.confirm_public];
            if (text) lines.push(t.note + t.sep + text);
            return geogrid.confirmDialog('geogrid-publish-confirm', t.confirm_title, lines, t.confirm_yes, t.confirm_no).then(function(yes) {
                if (!yes) { answer.textContent = t.cancelled; return; }
                button.disabled = true;
                answer.textContent = t.publishing;
                var body = {area: o.area, layer: o.layer};
                if (text) body.note = text;
                return api.call('POST', '/api/publications', body).then(function(r) {
                    if (!r.ok) { explain(r); button.disabled = false; fire('geogrid-published', r); return; }
                    var p = r.body;
                    answer.textContent = '';
                    var done = el('b', fill(t.published, {id: p.id, added: p.added, changed: p.changed,
                                                          withdrawn: p.withdrawn, unchanged: p.unchanged}));
                    done.style.color = '#1a7f37';
                    answer.appendChild(done);
                    note.value = '';
                    return load().then(function() { fire('geogrid-published', r); });
                });
            });
        }
        button.onclick = function() { publish(); };
        again.onclick = function() { answer.textContent = ''; load(); };
        // The dock says nothing when a panel opens: its button is watched (added, not replaced).
        var tab = document.getElementById('geogrid-tab-publish');
        if (tab) tab.addEventListener('click', function() { if (dock.isOpen('publish')) load(); });
        // After a save the map's grids are the new ones: once asked, what is pending is asked
        // again at once, so that the outlines follow the new boundaries even with the panel shut.
        document.addEventListener('geogrid-saved', function(e) {
            if (asked && e.detail && e.detail.status >= 200 && e.detail.status < 300) load();
        });
        return {reload: load, layer: highlight};
    };
})(window.geogrid = window.geogrid || {});
