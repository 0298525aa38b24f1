/* places.js: the public map's search box ("find my grid" by name, code or address).
 * geogrid.places(map, grids) gives the title bar's box (#geogrid-search-input) its
 * suggestions: on a served page from /api/public/places (villages, grids, and the
 * register's door-plate addresses), in a standalone file (no service) or when the service
 * cannot be reached from the page's own grids and villages. Suggestions are text
 * (textContent). Choosing one fits the map to the village or grid and, for a grid or an
 * address, opens the grid's board (geogrid.openGrid, board.js).
 * Enter takes the highlighted suggestion, else the first. */
(function(g) {
    var KINDS = ['village', 'grid', 'address'];
    var LIMIT = 8;
    var MAX = 50;  // characters: the API refuses longer queries

    g.places = function(map, grids) {
        var page = g.publicPage, W = page.words, C = page.config;
        var input = document.getElementById('geogrid-search-input');
        var tips = document.getElementById('geogrid-search-tips');
        if (!input || !tips) return;
        var results = [], active = -1, timer = null, asked = 0, pending = null;
        var served = !!C.api && /^https?:$/.test(location.protocol);

        function bounds(b) { return L.latLngBounds([b[1], b[0]], [b[3], b[2]]); }
        // The page's own grids and villages, ranked as the API ranks them.
        function local(q) {
            var digits = /^[0-9]+$/.test(q), lower = q.toLowerCase(), out = [];
            function rank(code, name) {
                var n = String(name).toLowerCase();
                if (code === q || n === lower) return 0;
                if ((digits && code.indexOf(q) === 0) || n.indexOf(lower) === 0) return 1;
                return n.indexOf(lower) >= 0 ? 2 : -1;
            }
            function label(code, name, parent) {
                return (digits ? code + ' ' : '') + name + (parent ? ' · ' + parent : '');
            }
            (C.villages || []).forEach(function(v) {
                var r = rank(v[0], v[1]);
                if (r >= 0) out.push({kind: 'village', code: v[0], name: v[1], label: label(v[0], v[1], v[2]),
                                      bbox: v[5], rank: r});
            });
            grids.eachLayer(function(l) {
                var p = l.feature.properties, r = rank(p.code, p.name);
                if (r < 0) return;
                var b = l.getBounds();
                out.push({kind: 'grid', code: p.code, name: p.name, grid_code: p.code,
                          label: label(p.code, p.name, page.villageNames[p.v]),
                          bbox: [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()], rank: r});
            });
            out.sort(function(a, b) {
                return a.rank - b.rank || KINDS.indexOf(a.kind) - KINDS.indexOf(b.kind) ||
                       a.label.length - b.label.length || (a.code < b.code ? -1 : a.code > b.code ? 1 : 0);
            });
            return out.slice(0, LIMIT);
        }
        function remote(q) {
            var url = '/api/public/places?' + new URLSearchParams({q: q, area: C.area, layer: C.layer, limit: String(LIMIT)});
            return fetch(url, {credentials: 'omit', headers: {Accept: 'application/json'}}).then(function(r) {
                return r.ok ? r.json().then(function(j) { return j.results; }) : null;
            }, function() { return null; });
        }
        function query() {
            return input.value.trim().slice(0, MAX);
        }
        function show(list, q) {
            results = list; active = -1;
            tips.textContent = '';
            list.forEach(function(r, i) {
                var li = document.createElement('li');
                li.className = 'search-tip';
                li.setAttribute('role', 'option');
                li.id = 'geogrid-tip-' + i;
                var text = li.appendChild(document.createElement('span'));
                text.className = 'geogrid-tip-text';
                text.textContent = r.label;
                var kind = li.appendChild(document.createElement('span'));
                kind.className = 'geogrid-kind';
                kind.textContent = W.kinds[r.kind] || r.kind;
                // pointerdown keeps the focus in the box (no blur before the choice).
                li.addEventListener('pointerdown', function(e) { e.preventDefault(); });
                li.addEventListener('click', function() { choose(r); });
                tips.appendChild(li);
            });
            if (!list.length && q) {
                tips.appendChild(Object.assign(document.createElement('li'), {
                    className: 'geogrid-search-none', textContent: served ? W.search_none : W.search_offline}));
            }
            tips.hidden = !q;
            tips.setAttribute('data-q', q);  // which query the list shows (see Enter)
        }
        // The answer to the latest query only (an earlier, slower one is dropped).
        function search(q) {
            var mine = ++asked;
            var found = served ? remote(q).then(function(list) { return list || local(q); })
                               : Promise.resolve(local(q));
            pending = found.then(function(list) {
                if (mine === asked) show(list, q);
                return list;
            });
            return pending;
        }
        function choose(r) {
            tips.hidden = true;
            input.value = r.name;
            input.blur();
            if (r.kind === 'village') {
                g.sheet.hide();
                g.fitArea(map, bounds(r.bbox));
                return;
            }
            var code = r.grid_code || r.code;
            if (!g.openGrid(code, true, r.kind === 'address' ? r.name : null)) g.fitArea(map, bounds(r.bbox));
        }
        function highlight(i) {
            var items = tips.querySelectorAll('.search-tip');
            if (!items.length) return;
            active = (i + items.length) % items.length;
            items.forEach(function(li, k) { li.setAttribute('aria-selected', k === active ? 'true' : 'false'); });
            items[active].scrollIntoView({block: 'nearest'});
            input.setAttribute('aria-activedescendant', items[active].id);
        }
        input.addEventListener('input', function() {
            clearTimeout(timer);
            var q = query();
            if (!q) { asked++; show([], ''); return; }
            timer = setTimeout(function() { search(q); }, served ? 200 : 50);
        });
        input.addEventListener('keydown', function(e) {
            if (e.key === 'ArrowDown') { e.preventDefault(); highlight(active + 1); }
            else if (e.key === 'ArrowUp') { e.preventDefault(); highlight(active - 1); }
            else if (e.key === 'Escape') { tips.hidden = true; }
            else if (e.key === 'Enter') {
                e.preventDefault();
                var q = query();
                if (!q) return;
                if (active >= 0 && results[active]) { choose(results[active]); return; }
                clearTimeout(timer);
                // The suggestions shown are those of this query: take the first; else ask now.
                var shownFor = tips.hidden ? null : tips.getAttribute('data-q');
                (shownFor === q && results.length ? Promise.resolve(results) : search(q)).then(function(list) {
                    if (list && list.length) choose(list[0]);
                });
            }
        });
        input.addEventListener('focus', function() { if (results.length && query()) tips.hidden = false; });
        input.addEventListener('blur', function() { setTimeout(function() { tips.hidden = true; }, 150); });
    };
})(window.geogrid = window.geogrid || {});
