/* problems.js: coverage problems on the planner map. geogrid.problems(map, layerControl,
 * dock, api, options) draws them as one layer per kind (in the layer control), with popups
 * of labels (never keys or lists as code would print them), and a list panel (kind,
 * area, grids, width class) whose rows zoom to their problem. A served page asks the
 * service for the current boundaries' problems (options.url, on load and on the "check
 * again" button); an exported file shows the ones embedded in it (options.data, options.at).
 * geogrid.problemCard(props, t) and geogrid.problemLine(props, t) describe one problem for
 * the editor's impact panel too. Dispatches 'geogrid-problems' on document when drawn. */
(function(g) {
    function number(v, lang) { return v == null ? '—' : Math.round(v).toLocaleString(lang === 'en' ? 'en-US' : 'zh-CN'); }
    function kindName(kind, t) { return (t.kinds && t.kinds[kind]) || t.kinds.other; }
    function codes(p) { return (p.codes || []).join('、'); }
    function problemCard(p, t) {
        var rows = [kindName(p.kind, t)];
        if (p.area_m2 != null) rows.push([t.area, number(p.area_m2, t.lang) + ' ' + t.m2]);
        if (p.width_m != null) rows.push([t.width, number(p.width_m * 10, t.lang) / 10 + ' m']);
        if (p.width_class) rows.push([t.width_class, (t.widths && t.widths[p.width_class]) || p.width_class]);
        if (p.codes && p.codes.length) rows.push([t.grids, codes(p)]);
        if (p.parent) rows.push([t.parent, p.parent]);
        if (p.missing) rows.push([t.missing, p.missing.map(function(m) { return t.posts[m] || m; }).join('、')]);
        if (p.roles) rows.push([t.leaving, p.roles.map(function(m) { return t.posts[m] || m; }).join('、') +
                                (p.ends ? ' · ' + p.ends : '')]);
        if (p.person) rows.push([t.person, p.person + (p.grids ? ' · ' + p.grids : '')]);
        if (p.field) rows.push([t.fields[p.field] || p.field, p.value +
                                (p.expected ? ' (' + p.expected[0] + '–' + p.expected[1] + ')' : '')]);
        if (p.reason) rows.push([t.reason, p.reason]);
        return g.card(rows);
    }
    function problemLine(p, t) {
        var parts = [kindName(p.kind, t)];
        if (p.area_m2 != null) parts.push(number(p.area_m2, t.lang) + ' ' + t.m2);
        if (p.codes && p.codes.length) parts.push(codes(p));
        if (p.width_class) parts.push((t.widths && t.widths[p.width_class]) || p.width_class);
        if (p.field) parts.push((t.fields[p.field] || p.field) + ' ' + p.value);
        return parts.join(' · ');
    }
    g.problemCard = problemCard; g.problemLine = problemLine;

    g.problems = function(map, layerControl, dock, api, o) {
        var t = o.t, groups = [];
        var body = document.createElement('div');
        var head = document.createElement('div'), when = document.createElement('div');
        var list = document.createElement('ol');
        when.id = 'geogrid-problems-at';
        list.id = 'geogrid-problem-list';
        list.style.cssText = 'margin:4px 0;padding-left:18px;max-width:320px';
        head.appendChild(when);
        if (o.url) {
            var again = document.createElement('button');
            again.type = 'button'; again.id = 'geogrid-check-again'; again.textContent = t.check_again;
            again.onclick = function() { load(); };
            head.appendChild(again);
        }
        body.appendChild(head); body.appendChild(list);
        dock.add('problems', t.problems, body);
        // An outline (no fill) takes no clicks: on the canvas it would take every click inside
        // it, and the grid under it could not be picked. Its popup opens from the list.
        function style(f) {
            var s = o.styles[f.properties.kind] || o.styles.other;
            return s.fill === false ? Object.assign({interactive: false}, s) : s;
        }
        function draw(features, at, fresh) {
            groups.forEach(function(gr) { map.removeLayer(gr); layerControl.removeLayer(gr); });
            groups = [];
            list.textContent = '';
            var byLabel = {};
            features.forEach(function(f) {
                if (!f.geometry) return;
                var label = o.groups[f.properties.kind] || kindName(f.properties.kind, t);
                (byLabel[label] = byLabel[label] || []).push(f);
            });
            Object.keys(byLabel).forEach(function(label) {
                var group = L.geoJSON({type: 'FeatureCollection', features: byLabel[label]}, {
                    style: style, snapIgnore: true, pmIgnore: true,
                    pointToLayer: function(f, latlng) {
                        return L.circleMarker(latlng, {radius: 7, color: '#000', fillOpacity: 0.8, snapIgnore: true,
                                                       pmIgnore: true});
                    },
                    onEachFeature: function(f, l) { l.bindPopup(function() { return problemCard(f.properties, t); },
                                                                {maxWidth: 320}); }
                });
                group.addTo(map);
                layerControl.addOverlay(group, g.esc(label));
                groups.push(group);
                group.eachLayer(function(l) {
                    var item = document.createElement('li');
                    var link = document.createElement('a');
                    link.href = '#'; link.textContent = problemLine(l.feature.properties, t);
                    link.className = 'geogrid-problem';
                    link.onclick = function(e) {
                        e.preventDefault();
                        if (l.getBounds) map.fitBounds(l.getBounds(), {maxZoom: 18, animate: false});
                        else map.setView(l.getLatLng(), 18, {animate: false});
                        l.openPopup();
                    };
                    item.appendChild(link); list.appendChild(item);
                });
            });
            // Problems with no place on the map (a person with too many grids): listed only.
            function item(text) { var li = document.createElement('li'); li.textContent = text; list.appendChild(li); }
            features.forEach(function(f) { if (!f.geometry) item(problemLine(f.properties, t)); });
            if (!features.length) item(t.no_problems);
            when.textContent = t.run_at + ': ' + g.localTime(at, t.lang, o.tz) + (fresh ? ' · ' + t.fresh : '');
            document.dispatchEvent(new CustomEvent('geogrid-problems', {detail: {count: features.length, at: at}}));
        }
        function load() {
            when.textContent = t.checking;
            return api.call('GET', o.url).then(function(r) {
                if (!r.ok) { when.textContent = r.status + ' ' + (r.body.detail || ''); return; }
                draw(r.body.problems.features, r.body.at, r.body.fresh);
            });
        }
        dock.startOpen('problems');
        if (o.url) load(); else draw(o.data || [], o.at, false);
        return {reload: load};
    };
})(window.geogrid = window.geogrid || {});
