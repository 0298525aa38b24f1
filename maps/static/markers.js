/* markers.js: the maps' markers, built from rows of plain data.
 * geogrid.points: Font Awesome markers with popup cards, [lat, lon, colour, icon, card];
 * geogrid.labels: text markers (grid codes), [lat, lon, text];
 * geogrid.caseMarker, geogrid.publicCaseMarker: FastMarkerCluster callbacks for the
 * inspector's incidents ([lat, lon, colour, overdue, card]) and the public ones ([lat, lon, card]).
 * Needs geogrid.js (geogrid.popup). */
(function(g) {
    g.points = function(group, rows) {
        rows.forEach(function(r) {
            var icon = L.AwesomeMarkers.icon({markerColor: r[2], icon: r[3], prefix: 'fa'});
            group.addLayer(L.marker([r[0], r[1]], {icon: icon}).bindPopup(g.popup(r[4]), {maxWidth: 300}));
        });
    };
    g.labels = function(group, points) {
        points.forEach(function(p) {
            var label = document.createElement('div');
            label.className = 'geogrid-label';
            label.style.cssText = 'font-size:10px;color:#222;white-space:nowrap;transform:translate(-50%,-50%);'
                                + 'text-shadow:0 0 2px #fff';
            label.textContent = p[2];
            group.addLayer(L.marker([p[0], p[1]], {interactive: false, keyboard: false,
                icon: L.divIcon({html: label, className: 'empty', iconSize: [0, 0]})}));
        });
    };
    g.caseMarker = function(row) {
        var marker = L.circleMarker(new L.LatLng(row[0], row[1]), {
            radius: row[3] ? 8 : 6, color: row[3] ? '#d7191c' : '#333', weight: row[3] ? 3 : 1,
            fillColor: row[2], fillOpacity: 0.9});
        marker.bindPopup(g.popup(row[4]), {maxWidth: 320});
        return marker;
    };
    g.publicCaseMarker = function(row) {
        return L.circleMarker(new L.LatLng(row[0], row[1]), {radius: 5, color: '#555'}).bindPopup(g.popup(row[2]));
    };
})(window.geogrid = window.geogrid || {});
