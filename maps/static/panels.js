/* panels.js: the planner map's panels as one Leaflet control (top right): a row of buttons,
 * one panel open at a time under them. Being a control, it takes its place in Leaflet's
 * corner stack and never lies over the other controls; its size is fitted to the room
 * left between the left-hand controls and the bottom ones, on a phone as on a desktop.
 * geogrid.dock(map, options) -> {add(id, title, node), open(id), close(), fit(), body(id)};
 * options.open: the panel open at first (none on a narrow screen). */
(function(g) {
    var NARROW = 700;  // px: below this the map is a phone's, every panel starts closed
    g.dock = function(map, options) {
        var control = L.control({position: 'topright'});
        var root = L.DomUtil.create('div', 'geogrid-dock');
        var bar = L.DomUtil.create('div', 'geogrid-dock-bar', root);
        var holder = L.DomUtil.create('div', 'geogrid-dock-panel', root);
        var panels = {}, current = null;
        root.style.cssText = 'background:#fff;font-size:12px;max-width:340px;border-radius:4px;' +
                             'box-shadow:0 1px 5px rgba(0,0,0,.4)';
        var order = options.order || [];
        bar.style.display = 'flex'; bar.style.flexWrap = 'wrap'; bar.style.gap = '2px'; bar.style.padding = '2px';
        holder.style.overflow = 'auto'; holder.style.padding = '0 8px'; holder.style.display = 'none';
        L.DomEvent.disableClickPropagation(root);
        L.DomEvent.disableScrollPropagation(root);
        control.onAdd = function() { return root; };
        control.addTo(map);
        function fit() {
            if (!current) return;
            var box = map.getContainer().getBoundingClientRect(), top = holder.getBoundingClientRect().top;
            var bottom = 10;
            document.querySelectorAll('.leaflet-bottom.leaflet-right .leaflet-control').forEach(function(c) {
                if (c.offsetParent !== null) bottom = Math.max(bottom, box.bottom - c.getBoundingClientRect().top + 10);
            });
            var left = 0;
            document.querySelectorAll('.leaflet-top.leaflet-left .leaflet-control').forEach(function(c) {
                if (c.offsetParent !== null) left = Math.max(left, c.getBoundingClientRect().right - box.left);
            });
            holder.style.maxHeight = Math.max(80, box.bottom - top - bottom) + 'px';
            root.style.maxWidth = Math.max(160, Math.min(340, box.width - left - 30)) + 'px';
        }
        function open(id) {
            Object.keys(panels).forEach(function(k) {
                panels[k].node.style.display = k === id ? '' : 'none';
                panels[k].button.setAttribute('aria-pressed', k === id ? 'true' : 'false');
                panels[k].button.style.background = k === id ? '#dde8f7' : '#fff';
            });
            current = id; holder.style.display = id ? '' : 'none';
            fit();
        }
        function add(id, title, node) {
            var button = L.DomUtil.create('button', 'geogrid-dock-button', bar);
            button.type = 'button'; button.textContent = title; button.id = 'geogrid-tab-' + id;
            button.style.cssText = 'border:1px solid #ccc;border-radius:3px;padding:3px 6px;cursor:pointer;font-size:12px;background:#fff';
            button.style.order = order.indexOf(id) < 0 ? order.length : order.indexOf(id);
            button.onclick = function() { open(current === id ? null : id); };
            node.classList.add('geogrid-dock-content');
            node.id = node.id || 'geogrid-panel-' + id;
            node.style.display = 'none';
            holder.appendChild(node);
            panels[id] = {button: button, node: node};
            return node;
        }
        map.on('resize', fit);
        window.addEventListener('resize', fit);
        return {add: add, open: open, close: function() { open(null); }, fit: fit,
                body: function(id) { return panels[id] && panels[id].node; },
                isOpen: function(id) { return current === id; },
                startOpen: function(id) { if (map.getContainer().clientWidth >= NARROW) open(id); }};
    };
    // The legend: (CSS style of a swatch, label) rows; the styles are the page's own.
    g.dockLegend = function(dock, id, title, items) {
        var node = document.createElement('div');
        node.className = 'geogrid-legend';
        node.style.lineHeight = '20px';
        items.forEach(function(item) {
            var row = document.createElement('div'), swatch = document.createElement('span');
            swatch.style.cssText = 'display:inline-block;width:14px;height:14px;margin-right:6px;vertical-align:middle;' +
                                   'box-sizing:border-box;' + item[0];
            row.appendChild(swatch); row.appendChild(document.createTextNode(item[1]));
            node.appendChild(row);
        });
        dock.add(id, title, node);
    };
    // Leaflet's layer control (built expanded by folium) as the content of a dock panel.
    g.dockLayers = function(dock, id, title, layerControl) {
        var node = document.createElement('div');
        var box = layerControl.getContainer();
        box.style.boxShadow = 'none'; box.style.border = '0'; box.style.margin = '0';
        node.appendChild(box);
        dock.add(id, title, node);
    };
})(window.geogrid = window.geogrid || {});
