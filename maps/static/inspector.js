/* inspector.js: the inspector's map page. geogrid.inspector(map, parts, options):
 * parts: {cluster (the incidents' MarkerClusterGroup), heat (Leaflet.heat layer), control
 * (the layer control), choropleth (its group), nets ({key: GeoJSON layer}), api (api.js)};
 * options: the page's texts and data, written by maps/inspector.py.
 * - a dock (panels.js) with the filter bar, the legend, the layers and the cases without a
 *   point; the filters rebuild the cluster (and heat map) from the page's own cases, and
 *   the counts in the layer control and the legend follow;
 * - geogrid.caseCard(marker): a case's popup (state, overdue, time limit, history in the
 *   page's language) and, on a served page, the caller's moves on it: the moves come from
 *   the server's table (options.moves[case.k][state], the workflow's own rule), each sent
 *   to the workflow API with the case's version (If-Match); a 412 reloads the case;
 * - the choropleth shows one net at a time, its colour scale only while it is on.
 * Every user-written text goes into the page with textContent (geogrid.card). */
(function(g) {
    function el(tag, text, css) {
        var node = document.createElement(tag);
        if (text != null) node.textContent = text;
        if (css) node.style.cssText = css;
        return node;
    }
    function fill(template, values) {
        return template.replace(/\{(\w+)\}/g, function(m, k) { return values[k] == null ? '' : values[k]; });
    }

    g.inspector = function(map, parts, o) {
        var t = o.t, cluster = parts.cluster, markers = cluster.getLayers();
        var total = markers.length, shownCount = total;
        var formatter = null;
        try {
            formatter = new Intl.DateTimeFormat('sv-SE', {timeZone: o.tz, year: 'numeric', month: '2-digit',
                day: '2-digit', hour: '2-digit', minute: '2-digit', hour12: false});
        } catch (e) { formatter = null; }
        // An instant of the service (ISO 8601) as "YYYY-MM-DD HH:MM" in the service's time zone.
        function when(iso) {
            if (!iso) return '—';
            var d = new Date(String(iso).replace(/(\.\d{3})\d+/, '$1'));
            if (isNaN(d.getTime()) || !formatter) return String(iso).slice(0, 16).replace('T', ' ');
            return formatter.format(d);
        }
        function stateName(s) { return o.states[s] || s; }
        function moveName(to) { return to === 'escalate' ? t.escalate : stateName(to); }
        function historyLine(e) {
            var shown = e[2] && (e[1] === 'transition' || e[1] === 'import');
            return when(e[0]) + ' ' + (o.actionNames[e[1]] || e[1]) + (shown ? ' → ' + stateName(e[2]) : '');
        }

        // ------------------------------------------------------------------ popups and actions
        function movesOf(c) {
            var moves = ((o.moves[c.k] || {})[c.s] || []).slice();
            if (o.terminal.indexOf(c.s) < 0 && c.up > 0) moves.push('escalate');
            return moves;
        }
        function actionsNode(marker) {
            var c = marker.geogridRow[5];
            var box = el('div', null, 'margin-top:6px;padding-top:6px;border-top:1px solid #ddd');
            box.className = 'geogrid-actions';
            box.appendChild(el('b', t.actions));
            var moves = movesOf(c);
            var buttons = el('div', null, 'display:flex;flex-wrap:wrap;gap:4px;margin:4px 0');
            var form = el('div', null, 'display:none'), note = el('textarea');
            var go = el('button'), cancel = el('button', t.cancel);
            var msg = el('div', marker.geogridMsg ? marker.geogridMsg[0] : '', 'margin-top:4px;font-weight:bold;color:' +
                         (marker.geogridMsg && marker.geogridMsg[1] === 'ok' ? '#1a7f37' : '#b00020'));
            msg.className = 'geogrid-action-msg'; msg.setAttribute('role', 'status');
            note.className = 'geogrid-action-note'; note.rows = 2; note.maxLength = 2000;
            note.style.cssText = 'width:100%;box-sizing:border-box;font-size:13px';
            go.type = 'button'; go.className = 'geogrid-action-go'; cancel.type = 'button';
            [go, cancel].forEach(function(b) { b.style.cssText = 'margin:4px 4px 0 0;padding:4px 10px;font-size:13px'; });
            form.appendChild(note); form.appendChild(go); form.appendChild(cancel);
            var chosen = null;
            if (!moves.length) buttons.appendChild(el('span', t.none_moves, 'color:#666'));
            moves.forEach(function(to) {
                var b = el('button', moveName(to), 'padding:4px 10px;font-size:13px;cursor:pointer;border:1px solid ' +
                           (to === 'escalate' ? '#b15928' : '#1f78b4') + ';border-radius:3px;background:#fff');
                b.type = 'button'; b.className = 'geogrid-move'; b.setAttribute('data-move', to);
                b.onclick = function() {
                    chosen = to;
                    var required = o.noteRequired.indexOf(to) >= 0;
                    note.placeholder = required ? t.note_required : t.note_optional;
                    go.textContent = t.confirm + '：' + moveName(to);
                    form.style.display = '';
                    note.focus();
                };
                buttons.appendChild(b);
            });
            cancel.onclick = function() { chosen = null; form.style.display = 'none'; };
            go.onclick = function() {
                var text = note.value.trim();
                if (!chosen) return;
                if (o.noteRequired.indexOf(chosen) >= 0 && !text) {
                    msg.textContent = t.need_note; msg.style.color = '#b00020'; note.focus();
                    return;
                }
                go.disabled = true; cancel.disabled = true;
                msg.textContent = t.sending; msg.style.color = '#555';
                send(marker, chosen, text);
            };
            box.appendChild(buttons); box.appendChild(form); box.appendChild(msg);
            return box;
        }
        g.caseCard = function(marker) {
            var row = marker.geogridRow, c = row[5], card = row[4];
            var spec = [card[0] + ' · ' + stateName(c.s), [null, c.o ? o.card.overdue : null, '#d7191c'], card[1],
                        [o.card.due, when(c.due)]].concat(card.slice(2), [[o.card.history, c.h.map(historyLine)]]);
            var box = g.card(spec);
            box.setAttribute('data-case', c.id);
            if (o.actions) box.appendChild(actionsNode(marker));
            return box;
        };
        function say(marker, text, kind) {
            marker.geogridMsg = [text, kind];
            if (marker.getPopup()) marker.getPopup().update();
        }
        // The case as the API answered it: state, version, deadline, history, marker and counts.
        function update(marker, body) {
            var row = marker.geogridRow, c = row[5];
            c.up = Math.max(0, c.up - ((body.escalation_level || 0) - (c.e || 0)));
            c.e = body.escalation_level || 0;
            c.s = body.state; c.v = body.version; c.o = body.overdue ? 1 : 0; c.due = body.due_at;
            c.h = (body.history || []).slice(-5).map(function(e) { return [e.at, e.action, e.to_state]; });
            row[2] = o.colours[c.s] || '#000'; row[3] = c.o;
            marker.setStyle(g.caseStyle(row[2], row[3]));
            // An array: refreshClusters takes a lone layer only if it is an L.Marker (ours are circles).
            if (cluster.hasLayer(marker)) cluster.refreshClusters([marker]);
            counts();
        }
        function problem(r, to) {
            var b = r.body || {}, detail = String(b.detail || '');
            if (r.status === 0) return t.offline;
            if (r.status === 401) return t.unauthorized;
            if (r.status === 403) return /lacks the role/.test(detail) ? t.no_role : t.forbidden;
            if (r.status === 409) {
                if (b.state) return fill(t.illegal, {state: stateName(b.state), to: moveName(to)});
                if (/top level/.test(detail)) return t.top;
                return t.conflict;
            }
            if (r.status === 422 || r.status === 400) return t.invalid;
            return fill(t.failed, {status: r.status});
        }
        function reload(marker) {
            var c = marker.geogridRow[5];
            return parts.api.call('GET', '/api/incidents/' + c.id).then(function(r) {
                if (!r.ok) { say(marker, fill(t.reload_failed, {status: r.status}), 'error'); return; }
                var tag = r.headers.get('ETag');
                update(marker, r.body);
                if (tag) marker.geogridRow[5].v = parseInt(tag.replace(/^W\//, '').replace(/"/g, ''), 10);
                say(marker, fill(t.stale, {state: stateName(r.body.state)}), 'error');
            });
        }
        function send(marker, to, note) {
            var c = marker.geogridRow[5];
            var path = '/api/incidents/' + c.id + (to === 'escalate' ? '/escalate' : '/transitions');
            var body = to === 'escalate' ? {note: note || null} : {to: to, note: note || null};
            return parts.api.call('POST', path, body, {'If-Match': '"' + c.v + '"'}).then(function(r) {
                if (r.ok) { update(marker, r.body); say(marker, fill(t.done, {what: moveName(to)}), 'ok'); return; }
                if (r.status === 412) return reload(marker);
                say(marker, problem(r, to), 'error');
            }).catch(function(e) {
                say(marker, fill(t.failed, {status: '?'}), 'error');
                throw e;  // still a page error: a bug to see, not to hide
            });
        }

        // ------------------------------------------------------------------ the dock
        var dock = g.dock(map, {order: ['filters', 'legend', 'layers', 'unplaced']});
        var filters = el('div', null, 'padding:6px 0;line-height:28px');
        filters.className = 'geogrid-filters';
        function field(label, input) {
            var line = el('label', null, 'display:flex;align-items:center;gap:6px;justify-content:space-between');
            line.appendChild(el('span', label, 'white-space:nowrap'));
            input.style.maxWidth = '190px'; input.style.fontSize = '13px';
            line.appendChild(input);
            filters.appendChild(line);
            return input;
        }
        function select(id, label, options) {
            var s = el('select');
            s.id = 'geogrid-filter-' + id;
            s.appendChild(new Option(t.all, ''));
            options.forEach(function(x) { s.appendChild(new Option(x[1], x[0])); });
            s.onchange = apply;
            return field(label, s);
        }
        function check(id, label) {
            var line = el('label', null, 'display:flex;align-items:center;gap:6px'), box = el('input');
            box.type = 'checkbox'; box.id = 'geogrid-filter-' + id; box.onchange = apply;
            line.appendChild(box); line.appendChild(el('span', label));
            filters.appendChild(line);
            return box;
        }
        var fState = select('state', t.state, o.legendStates.map(function(s) { return [s, stateName(s)]; }));
        var fCategory = select('category', t.category, o.categories);
        var fDepartment = select('department', t.department, o.departments.map(function(d) { return [d, d]; }));
        var fOverdue = check('overdue', t.overdue_only);
        var fMine = o.mine ? check('mine', t.mine) : null;
        var dates = el('div', null, 'display:flex;align-items:center;gap:4px;flex-wrap:wrap');
        var fFrom = el('input'), fTo = el('input');
        [fFrom, fTo].forEach(function(i) { i.type = 'date'; i.onchange = apply; i.style.fontSize = '13px'; });
        fFrom.id = 'geogrid-filter-from'; fTo.id = 'geogrid-filter-to';
        fFrom.setAttribute('aria-label', t.reported + ' ' + t.from); fTo.setAttribute('aria-label', t.reported + ' ' + t.to);
        dates.appendChild(el('span', t.reported)); dates.appendChild(fFrom); dates.appendChild(el('span', t.to));
        dates.appendChild(fTo);
        filters.appendChild(dates);
        var foot = el('div', null, 'display:flex;justify-content:space-between;align-items:center;margin-top:4px');
        var shownText = el('span'), reset = el('button', t.reset);
        shownText.id = 'geogrid-filter-shown'; reset.type = 'button'; reset.id = 'geogrid-filter-reset';
        reset.onclick = function() {
            [fState, fCategory, fDepartment, fFrom, fTo].forEach(function(i) { i.value = ''; });
            fOverdue.checked = false; if (fMine) fMine.checked = false;
            apply();
        };
        foot.appendChild(shownText); foot.appendChild(reset);
        filters.appendChild(foot);
        dock.add('filters', t.filters, filters);

        function matches(c) {
            return (!fState.value || c.s === fState.value) && (!fCategory.value || c.c === fCategory.value)
                && (!fDepartment.value || c.d === fDepartment.value) && (!fOverdue.checked || c.o)
                && (!fFrom.value || c.r >= fFrom.value) && (!fTo.value || c.r <= fTo.value)
                && (!fMine || !fMine.checked || c.m);
        }
        function apply() {
            var shown = markers.filter(function(m) { return matches(m.geogridRow[5]); });
            map.closePopup();
            cluster.clearLayers();
            cluster.addLayers(shown);
            if (parts.heat && parts.heat.setLatLngs) parts.heat.setLatLngs(shown.map(function(m) { return m.getLatLng(); }));
            shownCount = shown.length;
            counts();
        }

        // ------------------------------------------------------------------ the legend
        var legend = el('div', null, 'line-height:22px;padding:4px 0');
        legend.className = 'geogrid-legend';
        function row(swatch, label) {
            var line = el('div', null, 'display:flex;align-items:center;gap:6px');
            var box = el('span', null, 'flex:none;display:inline-block;width:22px;height:16px;position:relative;' +
                         'box-sizing:border-box');
            if (swatch) box.appendChild(swatch);
            var text = el('span', label);
            line.appendChild(box); line.appendChild(text);
            legend.appendChild(line);
            return text;
        }
        function dot(css) { return el('span', null, 'position:absolute;left:3px;top:1px;width:14px;height:14px;' +
                                                    'border-radius:50%;box-sizing:border-box;' + css); }
        function heading(text) { legend.appendChild(el('div', text, 'font-weight:bold;margin-top:4px')); }
        heading(t.state);
        var byColour = {}, stateRows = [];
        o.legendStates.forEach(function(s) {
            var colour = o.colours[s];
            if (!byColour[colour]) { byColour[colour] = {states: [], colour: colour}; stateRows.push(byColour[colour]); }
            byColour[colour].states.push(s);
        });
        stateRows.forEach(function(r) {
            r.label = r.states.map(stateName).join('/');
            r.text = row(dot('background:' + r.colour + ';border:1px solid #333'), r.label);
        });
        var overdueText = row(dot('background:#ccc;border:3px solid #d7191c'), t.overdue_ring);
        var bubble = el('span', null, 'position:absolute;left:0;top:0;width:16px;height:16px;border-radius:50%;' +
                        'background:rgba(110,204,57,.8);font:bold 9px/16px sans-serif;text-align:center');
        bubble.textContent = '9';
        var badge = el('span', '2', 'position:absolute;left:11px;top:-3px;min-width:11px;height:11px;border-radius:6px;' +
                       'background:#d7191c;color:#fff;font:bold 8px/11px sans-serif;text-align:center');
        var clusterSwatch = el('span'); clusterSwatch.appendChild(bubble); clusterSwatch.appendChild(badge);
        row(clusterSwatch, t.cluster);
        function pin(colour) { return el('span', null, 'position:absolute;left:4px;top:0;width:12px;height:12px;' +
            'border-radius:50% 50% 50% 0;transform:rotate(-45deg);background:' + colour + ';border:1px solid #333'); }
        row(pin('#d63e2a'), t.sources_key);
        row(pin('#0067a3'), t.sources_other);
        var spread = el('span'); spread.appendChild(pin('#0067a3'));
        spread.appendChild(el('span', null, 'position:absolute;left:12px;top:4px;width:10px;height:0;' +
                              'border-top:1px solid #222;transform:rotate(-30deg)'));
        row(spread, t.sources_cluster);
        function outline(style) {
            return el('span', null, 'position:absolute;left:1px;top:2px;width:20px;height:12px;box-sizing:border-box;' +
                      'border:3px ' + (style.dash ? 'dashed' : 'solid') + ' ' + style.colour);
        }
        row(outline(o.patrol.ok), t.patrol_ok);
        row(outline(o.patrol.behind), t.patrol_behind);
        var stops = Object.keys(o.heatGradient).sort().map(function(k) { return o.heatGradient[k]; });
        row(el('span', null, 'position:absolute;left:0;top:3px;width:22px;height:10px;background:linear-gradient(to right,' +
                             stops.join(',') + ')'), t.heat);
        // The choropleth: its net and colour scale, shown only while its layer is on.
        var choro = el('div', null, 'display:none;margin-top:4px');
        choro.id = 'geogrid-choropleth-legend';
        var netSelect = el('select');
        netSelect.id = 'geogrid-choropleth-net';
        o.nets.forEach(function(n) { netSelect.appendChild(new Option(n.name, n.key)); });
        var scaleBar = el('div', null, 'height:10px;margin:2px 0;background:linear-gradient(to right,' + o.choropleth.join(',') + ')');
        var scaleEnds = el('div', null, 'display:flex;justify-content:space-between;font-size:11px');
        var low = el('span', '0'), high = el('span');
        high.id = 'geogrid-choropleth-max';
        scaleEnds.appendChild(low); scaleEnds.appendChild(high);
        var netLine = el('label', null, 'display:flex;gap:6px;align-items:center');
        netLine.appendChild(el('b', t.choropleth)); netLine.appendChild(el('span', t.net)); netLine.appendChild(netSelect);
        choro.appendChild(netLine); choro.appendChild(scaleBar); choro.appendChild(scaleEnds);
        legend.appendChild(choro);
        dock.add('legend', t.legend, legend);
        g.dockLayers(dock, 'layers', t.layers, parts.control);

        function showNet(key) {
            Object.keys(parts.nets).forEach(function(k) {
                if (k === key) parts.choropleth.addLayer(parts.nets[k]);
                else parts.choropleth.removeLayer(parts.nets[k]);
            });
            o.nets.forEach(function(n) { if (n.key === key) high.textContent = String(n.max); });
        }
        if (parts.choropleth && o.nets.length) {
            netSelect.onchange = function() { showNet(netSelect.value); };
            showNet(o.nets[0].key);
            var sync = function() { choro.style.display = map.hasLayer(parts.choropleth) ? '' : 'none'; dock.fit(); };
            map.on('overlayadd overlayremove', sync);
            sync();
        }

        // Cases without a point: listed, since the map cannot show them.
        if (o.unplaced.length) {
            var list = el('ol', null, 'margin:4px 0;padding-left:20px;line-height:18px');
            list.id = 'geogrid-unplaced';
            o.unplaced.forEach(function(u) { list.appendChild(el('li', u[0] + ' · ' + u[1])); });
            dock.add('unplaced', t.unplaced + ' (' + o.unplaced.length + ')', list);
        }

        // ------------------------------------------------------------------ counts
        var entry = null;
        (parts.control._layers || []).forEach(function(l) { if (l.name === o.groupName) entry = l; });
        function counts() {
            var perState = {}, late = 0;
            cluster.getLayers().forEach(function(m) {
                var c = m.geogridRow[5];
                perState[c.s] = (perState[c.s] || 0) + 1;
                if (c.o) late += 1;
            });
            stateRows.forEach(function(r) {
                var n = r.states.reduce(function(a, s) { return a + (perState[s] || 0); }, 0);
                r.text.textContent = r.label + ' (' + n + ')';
            });
            overdueText.textContent = t.overdue_ring + ' (' + late + ')';
            shownText.textContent = fill(t.shown, {n: shownCount, total: total});
            if (entry) {
                // The control writes names as HTML: ours are escaped.
                entry.name = g.esc(o.incidentsLabel + ' (' + shownCount + ')');
                parts.control._update();
            }
        }
        counts();
        dock.startOpen('filters');
    };
})(window.geogrid = window.geogrid || {});
