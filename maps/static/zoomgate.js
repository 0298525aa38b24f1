/* zoomgate.js: geogrid.zoomGate(map, layer, minZoom) shows ``layer`` only from ``minZoom``
 * on (the planner's grid codes would be noise further out). */
(function(g) {
    g.zoomGate = function(map, layer, minZoom) {
        function gate() {
            if (map.getZoom() >= minZoom) { if (!map.hasLayer(layer)) map.addLayer(layer); }
            else if (map.hasLayer(layer)) map.removeLayer(layer);
        }
        map.on('zoomend', gate); map.whenReady(function() { setTimeout(gate, 0); });
    };
})(window.geogrid = window.geogrid || {});
