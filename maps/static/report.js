/* report.js: "report a problem" (我要反映) and "track a report" (查询办理进度) on the public map.
 * geogrid.reportForm(map, grids, config) adds a button (bottom left) that opens a form in
 * geogrid.sheet (board.js) when the page has one, else in a panel of its own that lies over
 * the map's controls. While the form is open window.geogridPicking is true: a tap on the
 * map pins the place (a draggable marker) instead of opening a board. The report goes to the
 * service's public intake (POST /api/public/reports) with one idempotency key per form, so a
 * double click or a retry never files it twice; a receipt is looked up with
 * GET /api/public/reports/{receipt}. config: {served, lang, t (texts), categories [{key, name}],
 * maxDescription, maxUrl, maxName, timezone, boundary (GeoJSON geometry of the jurisdiction)}.
 * Every text reaches the page with textContent. A standalone file (no service) sends nothing:
 * its button tells the user to open the served page. */
(function(g) {
    var NARROW = 700;  // px: below this the fallback panel is a bottom sheet
    var PHONE = /^[0-9+\-() ]{3,32}$/;  // api/schemas/incidents.py Reporter.phone

    function node(tag, props, text) {
        var el = document.createElement(tag);
        Object.keys(props || {}).forEach(function(k) {
            if (k === 'style') el.style.cssText = props.style;
            else if (k === 'className') el.className = props.className;
            else el.setAttribute(k, props[k]);
        });
        if (text != null) el.textContent = String(text);
        return el;
    }
    function format(template, values) {
        return String(template).replace(/\{(\w+)\}/g, function(m, k) { return k in values ? values[k] : m; });
    }
    // The element that scrolls ``el`` (the sheet, the panel, or the page).
    function scroller(el) {
        for (var p = el.parentElement; p; p = p.parentElement) {
            var y = getComputedStyle(p).overflowY;
            if ((y === 'auto' || y === 'scroll') && p.scrollHeight > p.clientHeight) return p;
        }
        return document.scrollingElement || document.documentElement;
    }
    function round6(v) { return Math.round(v * 1e6) / 1e6; }
    // An idempotency key: random, made once per form.
    function newKey() {
        if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
        var a = new Uint8Array(16);
        crypto.getRandomValues(a);
        return Array.prototype.map.call(a, function(b) { return (b + 256).toString(16).slice(1); }).join('');
    }
    var FIELD = 'display:block;width:100%;box-sizing:border-box;font-size:16px;padding:6px 8px;margin:2px 0 8px;' +
                'border:1px solid #bbb;border-radius:4px;font-family:inherit';
    var BUTTON = 'font-size:15px;padding:8px 14px;border-radius:4px;border:1px solid #2b83ba;cursor:pointer;' +
                 'min-height:40px';
    var PRIMARY = BUTTON + ';background:#2b83ba;color:#fff;font-weight:bold';
    var SECONDARY = BUTTON + ';background:#fff;color:#2b83ba';

    g.reportForm = function(map, grids, C) {
        var T = C.t, served = !!C.served && /^https?:$/.test(location.protocol);
        var state = {point: null, key: newKey(), sending: false, picking: false, showing: null};
        var marker = null, fallback = null;

        // ---------------------------------------------------------------- where it is shown
        // geogrid.sheet (board.js) when the page has one; checked at call time, since
        // board.js may load after this file.
        function sheet() { return g.sheet && typeof g.sheet.show === 'function' ? g.sheet : null; }
        function ownPanel() {
            if (fallback) return fallback;
            var root = node('div', {id: 'geogrid-report-panel', role: 'dialog', 'aria-modal': 'false',
                                    className: 'geogrid-report-panel'});
            var head = root.appendChild(node('div', {style: 'display:flex;align-items:center;gap:8px;' +
                'padding:8px 10px;border-bottom:1px solid #ddd;position:sticky;top:0;background:#fff;z-index:1'}));
            var title = head.appendChild(node('b', {id: 'geogrid-report-panel-title', style: 'flex:1;font-size:16px'}));
            var close = head.appendChild(node('button', {type: 'button', 'aria-label': T.close, title: T.close,
                id: 'geogrid-report-panel-close',
                style: 'font-size:22px;line-height:1;background:none;border:0;cursor:pointer;padding:4px 10px'}, '×'));
            var body = root.appendChild(node('div', {style: 'padding:8px 12px 0'}));
            root.setAttribute('aria-labelledby', title.id);
            map.getContainer().appendChild(root);
            L.DomEvent.disableClickPropagation(root);
            L.DomEvent.disableScrollPropagation(root);
            function place() {
                var narrow = map.getContainer().clientWidth < NARROW;
                // Over the map's controls (their corners are z-index 1000): nothing covers it.
                root.style.cssText = 'position:absolute;z-index:1100;background:#fff;overflow:auto;' +
                    'box-shadow:0 2px 10px rgba(0,0,0,.35);font-size:14px;display:' +
                    (root.hidden ? 'none' : 'block') + ';' + (narrow
                        ? 'left:0;right:0;bottom:0;max-height:62%;border-radius:12px 12px 0 0'
                        : 'top:10px;right:10px;width:370px;max-height:calc(100% - 20px);border-radius:6px');
            }
            root.hidden = true;
            place();
            map.on('resize', place);
            close.addEventListener('click', function() { fallback.hide(); });
            root.addEventListener('keydown', function(e) { if (e.key === 'Escape') fallback.hide(); });
            fallback = {
                show: function(text, content) {
                    title.textContent = text;
                    body.textContent = '';
                    body.appendChild(content);
                    root.hidden = false;
                    place();
                },
                hide: function() {
                    if (root.hidden) return;
                    root.hidden = true;
                    place();
                    closed();
                }
            };
            return fallback;
        }
        function show(what) {
            var content = what === 'report' ? report.root : lookup.root;
            var title = what === 'report' ? T.title : T.lookup_title;
            state.showing = what;
            if (sheet()) sheet().show(title, content); else ownPanel().show(title, content);
            if (what === 'report') startPicking(); else stopPicking();
        }
        function hide() {
            if (sheet() && (report.root.isConnected || lookup.root.isConnected)) sheet().hide();
            if (fallback) fallback.hide();
            closed();
        }
        // The form left the screen (closed, or the sheet shows something else now).
        function closed() {
            state.showing = null;
            stopPicking();
        }
        function visible(el) { return el.isConnected && el.getClientRects().length > 0; }
        document.addEventListener('geogrid-sheet', function() {
            // After the sheet has put its new content in place.
            setTimeout(function() {
                if (state.showing === 'report' && !visible(report.root)) closed();
                else if (state.showing === 'lookup' && !visible(lookup.root)) closed();
            }, 0);
        });

        // ---------------------------------------------------------------- pinning a point
        function pinIcon() {
            var pin = node('div', {style: 'width:26px;height:26px;border-radius:50% 50% 50% 0;background:#d7191c;' +
                'transform:rotate(-45deg);border:3px solid #fff;box-shadow:0 1px 4px rgba(0,0,0,.6);box-sizing:border-box'});
            return L.divIcon({html: pin, className: 'geogrid-report-pin', iconSize: [26, 26], iconAnchor: [13, 30]});
        }
        function startPicking() {
            state.picking = true;
            window.geogridPicking = true;
            map.getContainer().style.cursor = 'crosshair';
            if (state.point && !marker) addMarker(state.point);
        }
        function stopPicking() {
            state.picking = false;
            window.geogridPicking = false;
            map.getContainer().style.cursor = '';
            if (marker) { map.removeLayer(marker); marker = null; }
        }
        function addMarker(latlng) {
            marker = L.marker(latlng, {draggable: true, icon: pinIcon(), keyboard: true, title: T.step1,
                                       alt: T.step1, zIndexOffset: 1000}).addTo(map);
            marker.on('dragend', function() { pin(marker.getLatLng()); });
        }
        function gridAt(lat, lng) {
            var found = null;
            grids.eachLayer(function(l) {
                if (!found && l.feature && g.covers(l.feature.geometry, lng, lat)) found = l.feature.properties;
            });
            return found;
        }
        // The place of the report: rounded to 1e-6 degree (about 0.1 m), the precision sent.
        function pin(latlng) {
            var lat = round6(latlng.lat), lng = round6(latlng.lng);
            var grid = gridAt(lat, lng);
            var inside = !!grid || g.covers(C.boundary, lng, lat);
            var point = state.point = {lat: lat, lng: lng, grid: grid, inside: inside};
            if (marker) marker.setLatLng([lat, lng]); else if (state.picking) addMarker([lat, lng]);
            report.where(state.point);
            // Grids drawn from vector tiles (tiles.js): the page holds none; the service says
            // which grid holds the point (the answer for a point since moved is dropped).
            if (grids.geogridTiles) grids.geogridTiles.at(lat, lng).then(function(found) {
                if (state.point !== point || found.failed) return;
                point.grid = found.entry ? found.entry.feature.properties : null;
                point.inside = !!point.grid || found.inside;
                report.where(point);
            });
        }
        // 'preclick': the map hears it even when a grid's own click handler then stops the
        // click (a bound popup does); a drag of the map is no tap (Leaflet sends neither).
        map.on('preclick', function(e) {
            if (!state.picking) return;
            pin(e.latlng);
            // A board that a grid's click handler opens regardless of geogridPicking is closed.
            var close = function(p) { map.closePopup(p.popup); };
            map.once('popupopen', close);
            setTimeout(function() { map.off('popupopen', close); }, 0);
        });
        function locate() {
            function done(latlng) {
                pin(latlng);
                map.setView(latlng, Math.max(map.getZoom(), 17));
            }
            if (typeof g.locateMe === 'function') { g.locateMe(map, done); return; }
            if (!navigator.geolocation) { report.error(T.no_position); return; }
            navigator.geolocation.getCurrentPosition(function(p) {
                done(L.latLng(p.coords.latitude, p.coords.longitude));
            }, function(err) {
                report.error(err && err.code === 1 ? T.denied : T.no_position);
            }, {enableHighAccuracy: true, timeout: 10000, maximumAge: 60000});
        }

        // ---------------------------------------------------------------- talking to the service
        function call(method, path, body) {
            var init = {method: method, headers: {Accept: 'application/json'}, credentials: 'omit'};
            if (body !== undefined) { init.headers['Content-Type'] = 'application/json'; init.body = JSON.stringify(body); }
            return fetch(path, init).then(function(r) {
                return r.text().then(function(text) {
                    var parsed = {};
                    try { parsed = text ? JSON.parse(text) : {}; } catch (e) { parsed = {}; }
                    return {status: r.status, body: parsed, retry: r.headers.get('Retry-After')};
                });
            }, function() { return {status: 0, body: {}, retry: null}; });
        }
        function when(iso) {
            if (!iso) return '';
            var d = new Date(iso);
            if (isNaN(d)) return String(iso);
            try {
                return new Intl.DateTimeFormat(C.lang === 'en' ? 'en-GB' : 'zh-CN', {timeZone: C.timezone,
                    year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit',
                    hour12: false}).format(d);
            } catch (e) { return d.toISOString().slice(0, 16).replace('T', ' '); }
        }
        // A refusal in the reader's words, never the service's raw answer.
        function refusal(answer) {
            var s = answer.status, problems = (answer.body && answer.body.problems) || [];
            if (s === 0) return T.offline;
            if (s === 429) return format(T.rate, {s: answer.retry || answer.body.retry_after || 60});
            if (s === 409) return T.duplicate;
            if (s >= 500) return T.server;
            var fields = problems.map(function(p) { return String(p.field || ''); });
            function has(name) { return fields.some(function(f) { return f.indexOf(name) >= 0; }); }
            if (has('location') || has('lon') || has('lat')) return T.outside;
            if (has('category')) return T.need_category;
            if (has('description')) return format(T.too_long, {max: C.maxDescription});
            if (has('media_urls')) return T.bad_photo;
            if (has('phone')) return T.bad_phone;
            if (has('name')) return T.bad_name;
            return T.invalid;
        }

        // ---------------------------------------------------------------- the report form
        var report = (function() {
            var root = node('div', {id: 'geogrid-report', className: 'geogrid-report', style: 'font-size:14px'});
            var form = root.appendChild(node('form', {id: 'geogrid-report-form', novalidate: '',
                                                      'aria-label': T.title}));
            var done = root.appendChild(node('div', {id: 'geogrid-report-done', role: 'status'}));
            done.hidden = true;
            var uid = 0;
            function labelled(text, control, note) {
                control.id = control.id || ('geogrid-report-f' + (++uid));
                var label = node('label', {'for': control.id, style: 'display:block;font-weight:bold;margin-top:4px'}, text);
                if (note) label.appendChild(node('span', {style: 'font-weight:normal;color:#666'}, note));
                form.appendChild(label);
                form.appendChild(control);
                return control;
            }
            form.appendChild(node('div', {style: 'font-weight:bold;color:#2b83ba;margin:2px 0 4px'}, T.step1));
            form.appendChild(node('div', {style: 'color:#555;margin-bottom:6px'}, T.pin_hint));
            var locateBtn = form.appendChild(node('button', {type: 'button', id: 'geogrid-report-locate',
                                                            style: SECONDARY + ';width:100%'}, T.locate));
            var where = form.appendChild(node('div', {id: 'geogrid-report-where', 'aria-live': 'polite',
                style: 'margin:8px 0;padding:6px 8px;background:#f4f4f4;border-radius:4px'}, T.no_point));
            form.appendChild(node('div', {style: 'font-weight:bold;color:#2b83ba;margin:10px 0 2px'}, T.step2));
            var category = labelled(T.category, node('select', {id: 'geogrid-report-category', required: '',
                                                                'aria-required': 'true', style: FIELD}), T.required);
            category.appendChild(node('option', {value: ''}, T.choose));
            C.categories.forEach(function(c) { category.appendChild(node('option', {value: c.key}, c.name)); });
            var description = labelled(T.description, node('textarea', {id: 'geogrid-report-description', rows: '4',
                maxlength: String(C.maxDescription), required: '', 'aria-required': 'true',
                'aria-describedby': 'geogrid-report-count', placeholder: T.description_hint,
                style: FIELD + ';resize:vertical;margin-bottom:0'}), T.required);
            var count = form.appendChild(node('div', {id: 'geogrid-report-count', style: 'text-align:right;color:#666;' +
                'font-size:12px;margin-bottom:6px'}));
            function counted() { count.textContent = format(T.count, {n: description.value.length, max: C.maxDescription}); }
            description.addEventListener('input', counted);
            counted();
            var photo = labelled(T.photo, node('input', {id: 'geogrid-report-photo', type: 'url', inputmode: 'url',
                maxlength: String(C.maxUrl), placeholder: T.photo_hint, autocomplete: 'off', style: FIELD}));
            var contact = form.appendChild(node('fieldset', {style: 'border:1px solid #ddd;border-radius:4px;' +
                'padding:4px 8px 0;margin:4px 0 8px'}));
            contact.appendChild(node('legend', {style: 'font-weight:bold;padding:0 4px'}, T.contact));
            contact.appendChild(node('div', {id: 'geogrid-report-private', style: 'color:#1a7f37;font-size:13px;' +
                'margin-bottom:4px'}, T['private']));
            function inContact(text, control) {
                control.id = control.id || ('geogrid-report-f' + (++uid));
                contact.appendChild(node('label', {'for': control.id, style: 'display:block'}, text));
                contact.appendChild(control);
                control.setAttribute('aria-describedby', 'geogrid-report-private');
                return control;
            }
            var name = inContact(T.name, node('input', {id: 'geogrid-report-name', type: 'text', autocomplete: 'name',
                                                       maxlength: String(C.maxName), style: FIELD}));
            var phone = inContact(T.phone, node('input', {id: 'geogrid-report-phone', type: 'tel', autocomplete: 'tel',
                                                         inputmode: 'tel', maxlength: '32', style: FIELD}));
            // The buttons, and the answer to the last try, stay in sight at the bottom of a
            // scrolled form (a phone's keyboard).
            var bar = form.appendChild(node('div', {style: 'position:sticky;bottom:0;background:#fff;' +
                'padding:6px 0 10px;border-top:1px solid #eee'}));
            var message = bar.appendChild(node('div', {id: 'geogrid-report-error', role: 'alert',
                style: 'color:#b00020;font-weight:bold;margin:0 0 6px'}));
            var actions = bar.appendChild(node('div', {style: 'display:flex;gap:8px'}));
            var submit = actions.appendChild(node('button', {type: 'submit', id: 'geogrid-report-submit',
                                                            style: PRIMARY + ';flex:1'}, T.submit));
            var cancel = actions.appendChild(node('button', {type: 'button', id: 'geogrid-report-cancel',
                                                            style: SECONDARY}, T.close));
            error('');
            // A field taking the focus (a tap, Tab) is scrolled clear of the buttons' bar,
            // which the browser's own scrolling does not know about.
            form.addEventListener('focusin', function(e) {
                var field = e.target;
                if (!field || bar.contains(field)) return;
                setTimeout(function() {
                    var r = field.getBoundingClientRect(), top = bar.getBoundingClientRect().top;
                    if (r.bottom > top) scroller(form).scrollTop += r.bottom - top + 8;
                }, 0);
            });

            function error(text) {
                message.textContent = text || '';
                message.style.display = text ? '' : 'none';
            }
            function showWhere(p) {
                where.textContent = '';
                if (!p) { where.textContent = T.no_point; return; }
                var line = where.appendChild(node('div', {id: 'geogrid-report-grid'}));
                if (p.grid) {
                    line.appendChild(node('b', {}, T.in_grid));
                    line.appendChild(node('span', {}, (p.grid.name || '') + (p.grid.code ? '（' + p.grid.code + '）' : '')));
                } else {
                    line.textContent = p.inside ? T.no_grid : T.outside;
                    if (!p.inside) line.style.color = '#b00020';
                }
                where.appendChild(node('div', {style: 'color:#666;font-size:12px'},
                                       T.coords + p.lng.toFixed(6) + ', ' + p.lat.toFixed(6)));
                if (p.inside && message.textContent === T.outside) error('');
                if (!p.inside) error(T.outside);
            }
            function checked() {
                var p = state.point, url = photo.value.trim(), tel = phone.value.trim();
                if (!p) return T.need_point;
                if (!p.inside) return T.outside;
                if (!category.value) { category.focus(); return T.need_category; }
                if (!description.value.trim()) { description.focus(); return T.need_description; }
                if (description.value.trim().length > C.maxDescription) return format(T.too_long, {max: C.maxDescription});
                if (url && (!/^https?:\/\/[^\s]+$/i.test(url) || url.length > C.maxUrl)) { photo.focus(); return T.bad_photo; }
                if (name.value.trim().length > C.maxName) { name.focus(); return T.bad_name; }
                if (tel && !PHONE.test(tel)) { phone.focus(); return T.bad_phone; }
                return null;
            }
            function body() {
                var p = state.point, who = {}, url = photo.value.trim();
                if (name.value.trim()) who.name = name.value.trim();
                if (phone.value.trim()) who.phone = phone.value.trim();
                var out = {category: category.value, lon: p.lng, lat: p.lat, crs: 'wgs84',
                           description: description.value.trim(), media_urls: url ? [url] : [],
                           idempotency_key: state.key};
                if (Object.keys(who).length) out.reporter = who;
                return out;
            }
            function receiptView(r) {
                done.textContent = '';
                done.appendChild(node('div', {style: 'font-size:16px;font-weight:bold;color:#1a7f37;margin:4px 0 8px'},
                                      '✓ ' + T.done));
                done.appendChild(node('div', {style: 'color:#555'}, T.receipt));
                var row = done.appendChild(node('div', {style: 'display:flex;gap:8px;align-items:center;margin:2px 0 8px'}));
                row.appendChild(node('output', {id: 'geogrid-report-receipt', 'aria-label': T.receipt,
                    style: 'font-size:20px;font-weight:bold;letter-spacing:.5px;word-break:break-all;user-select:all;' +
                           'flex:1;font-family:monospace'}, r.receipt));
                var copy = row.appendChild(node('button', {type: 'button', id: 'geogrid-report-copy',
                                                           style: SECONDARY}, T.copy));
                var copied = done.appendChild(node('div', {id: 'geogrid-report-copied', 'aria-live': 'polite',
                                                           style: 'color:#1a7f37;min-height:1.2em'}));
                copy.addEventListener('click', function() { copyText(r.receipt, copied); });
                done.appendChild(node('div', {style: 'margin-bottom:8px'}, T.keep));
                facts(done, r);
                var again = done.appendChild(node('button', {type: 'button', id: 'geogrid-report-again',
                                                             style: PRIMARY + ';width:100%;margin:10px 0'}, T.again));
                again.addEventListener('click', function() { reset(); startPicking(); });
                var track = done.appendChild(node('button', {type: 'button', id: 'geogrid-report-track',
                                                             style: SECONDARY + ';width:100%;margin:0 0 10px'},
                                                  T.lookup_title));
                track.addEventListener('click', function() { show('lookup'); });
            }
            function reset() {
                form.reset();
                state.point = null;
                state.key = newKey();  // a new report: a new key
                showWhere(null);
                counted();
                error('');
                done.hidden = true;
                form.hidden = false;
                if (marker) { map.removeLayer(marker); marker = null; }
            }
            form.addEventListener('submit', function(e) {
                e.preventDefault();
                if (state.sending) return;  // a double click sends once
                var wrong = checked();
                if (wrong) { error(wrong); return; }
                error('');
                state.sending = true;
                submit.disabled = true;
                submit.textContent = T.sending;
                call('POST', '/api/public/reports?lang=' + encodeURIComponent(C.lang), body()).then(function(a) {
                    state.sending = false;
                    submit.disabled = false;
                    submit.textContent = T.submit;
                    if (a.status === 201 && a.body && a.body.receipt) {
                        form.hidden = true;
                        done.hidden = false;
                        receiptView(a.body);
                        lookup.remember(a.body.receipt);
                        stopPicking();
                        window.geogridPicking = false;
                        return;
                    }
                    error(refusal(a));  // the form keeps what was typed; the key stays for a retry
                });
            });
            locateBtn.addEventListener('click', locate);
            cancel.addEventListener('click', hide);
            return {root: root, where: showWhere, error: error,
                    fresh: function() { if (!done.hidden) reset(); }};
        })();

        function copyText(text, answer) {
            function fallbackCopy() {
                var area = node('textarea', {style: 'position:fixed;left:-1000px;top:0', readonly: ''});
                area.value = text;
                document.body.appendChild(area);
                area.select();
                var ok = false;
                try { ok = document.execCommand('copy'); } catch (e) { ok = false; }
                area.remove();
                answer.textContent = ok ? T.copied : T.copy_failed;
            }
            if (navigator.clipboard && window.isSecureContext) {
                navigator.clipboard.writeText(text).then(function() { answer.textContent = T.copied; }, fallbackCopy);
            } else fallbackCopy();
        }
        function facts(box, r) {
            var list = box.appendChild(node('dl', {className: 'geogrid-report-facts',
                style: 'display:grid;grid-template-columns:auto 1fr;gap:4px 10px;margin:0'}));
            [[T.category_name, r.category_name], [T.state, r.state_name], [T.reported_at, when(r.reported_at)],
             [T.closed_at, when(r.closed_at)]].forEach(function(row) {
                if (!row[1]) return;
                list.appendChild(node('dt', {style: 'color:#555'}, row[0]));
                list.appendChild(node('dd', {style: 'margin:0;font-weight:bold'}, row[1]));
            });
        }

        // ---------------------------------------------------------------- the receipt lookup
        var lookup = (function() {
            var root = node('div', {id: 'geogrid-lookup', style: 'font-size:14px'});
            var form = root.appendChild(node('form', {id: 'geogrid-lookup-form', novalidate: '',
                                                      'aria-label': T.lookup_title}));
            form.appendChild(node('label', {'for': 'geogrid-lookup-receipt', style: 'display:block;font-weight:bold'},
                                  T.receipt_input));
            var row = form.appendChild(node('div', {style: 'display:flex;gap:8px;align-items:flex-start'}));
            var input = row.appendChild(node('input', {id: 'geogrid-lookup-receipt', type: 'text', autocomplete: 'off',
                autocapitalize: 'characters', spellcheck: 'false', maxlength: '40', placeholder: T.receipt_placeholder,
                style: FIELD + ';flex:1;margin:2px 0'}));
            var go = row.appendChild(node('button', {type: 'submit', id: 'geogrid-lookup-go', style: PRIMARY}, T.lookup));
            var out = root.appendChild(node('div', {id: 'geogrid-lookup-result', 'aria-live': 'polite',
                                                    style: 'margin:10px 0'}));
            form.addEventListener('submit', function(e) {
                e.preventDefault();
                var receipt = input.value.trim().toUpperCase();
                out.textContent = '';
                if (!receipt) { out.appendChild(node('div', {role: 'alert', style: 'color:#b00020'}, T.need_receipt)); return; }
                go.disabled = true;
                out.appendChild(node('div', {style: 'color:#666'}, T.looking));
                call('GET', '/api/public/reports/' + encodeURIComponent(receipt) + '?lang=' +
                     encodeURIComponent(C.lang)).then(function(a) {
                    go.disabled = false;
                    out.textContent = '';
                    if (a.status === 200 && a.body && a.body.receipt) {
                        out.appendChild(node('div', {style: 'font-weight:bold;margin-bottom:4px;font-family:monospace'},
                                             a.body.receipt));
                        facts(out, a.body);
                        return;
                    }
                    var text = a.status === 404 || a.status === 422 ? T.not_found
                        : a.status === 429 ? format(T.rate, {s: a.retry || 60}) : a.status === 0 ? T.offline : T.server;
                    out.appendChild(node('div', {role: 'alert', style: 'color:#b00020;font-weight:bold'}, text));
                });
            });
            return {root: root, remember: function(receipt) { input.value = receipt; out.textContent = ''; }};
        })();

        // ---------------------------------------------------------------- the button
        var box = node('div', {id: 'geogrid-report-control', className: 'geogrid-report-control',
            style: 'display:flex;flex-direction:column;gap:4px;align-items:stretch'});
        var open = box.appendChild(node('button', {type: 'button', id: 'geogrid-report-btn',
            style: 'font-size:17px;font-weight:bold;padding:10px 16px;border:0;border-radius:22px;background:#d7191c;' +
                   'color:#fff;box-shadow:0 2px 6px rgba(0,0,0,.4);cursor:pointer;min-height:44px'}, T.button));
        var track = box.appendChild(node('button', {type: 'button', id: 'geogrid-lookup-btn',
            style: 'font-size:13px;padding:6px 10px;border:1px solid #2b83ba;border-radius:16px;background:#fff;' +
                   'color:#2b83ba;box-shadow:0 1px 4px rgba(0,0,0,.3);cursor:pointer;min-height:32px'}, T.lookup_button));
        var control = L.control({position: 'bottomleft'});
        control.onAdd = function() {
            L.DomEvent.disableClickPropagation(box);
            return box;
        };
        control.addTo(map);
        if (!served) {
            // A saved file has no service to send to: say so, send nothing.
            var note = node('div', {id: 'geogrid-report-standalone', role: 'note', style: 'padding:4px 0 12px'},
                            T.standalone);
            var shown = function(title) {
                if (sheet()) sheet().show(title, note); else ownPanel().show(title, note);
            };
            open.addEventListener('click', function() { shown(T.title); });
            track.addEventListener('click', function() { shown(T.lookup_title); });
            return;
        }
        open.addEventListener('click', function() { report.fresh(); show('report'); });
        track.addEventListener('click', function() { show('lookup'); });
    };
})(window.geogrid = window.geogrid || {});
