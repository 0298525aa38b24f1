/* markers.js: the maps' markers, built from rows of plain data.
 * geogrid.points: Font Awesome markers with popup cards, [lat, lon, colour, icon, card];
 * geogrid.sourcePoints: the same in a marker cluster of their own (pollution sources:
 *   several at one spot are spread out on a click instead of lying on top of each other);
 * geogrid.labels: text markers (grid codes), [lat, lon, text];
 * geogrid.caseMarker, geogrid.publicCaseMarker: FastMarkerCluster callbacks for the
 * inspector's incidents ([lat, lon, colour, overdue, card, case]) and the public ones ([lat, lon, card]);
 * geogrid.caseClusterIcon: the inspector's cluster bubbles, with a red badge counting the
 * overdue cases in the bubble (at every zoom: the red ring of a single case shows only
 * once the cluster has come apart).
 * Needs geogrid.js (geogrid.popup); the inspector's page adds inspector.js (geogrid.caseCard). */
(function(g) {
    function awesome(r) {
        var icon = L.AwesomeMarkers.icon({markerColor: r[2], icon: r[3], prefix: 'fa'});
        return L.marker([r[0], r[1]], {icon: icon}).bindPopup(g.popup(r[4]), {maxWidth: 300});
    }
    g.points = function(group, rows) {
        rows.forEach(function(r) { group.addLayer(awesome(r)); });
    };
    g.sourcePoints = function(group, rows) {
        // Not a global: the page's incident counts (its MarkerClusterGroups) stay the incidents'.
        var cluster = L.markerClusterGroup({maxClusterRadius: 40, spiderfyOnMaxZoom: true, showCoverageOnHover: false});
        cluster.addLayers(rows.map(awesome));
        group.addLayer(cluster);
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
    // A case's circle: its state's colour, a thick red ring when overdue.
    g.caseStyle = function(colour, overdue) {
        return {radius: overdue ? 8 : 6, color: overdue ? '#d7191c' : '#333', weight: overdue ? 3 : 1,
                fillColor: colour, fillOpacity: 0.9};
    };
    g.caseMarker = function(row) {
        var marker = L.circleMarker(new L.LatLng(row[0], row[1]), g.caseStyle(row[2], row[3]));
        marker.geogridRow = row;
        marker.bindPopup(function() { return g.caseCard && row[5] ? g.caseCard(marker) : g.card(row[4]); },
                         {maxWidth: 320, minWidth: 220,
                          // Clear of the zoom buttons (top left) and the scale (bottom left).
                          autoPanPaddingTopLeft: [10, 110], autoPanPaddingBottomRight: [10, 40]});
        marker.on('popupclose', function() { marker.geogridMsg = null; });  // a message is for the popup it answered
        return marker;
    };
    var BADGE = 'position:absolute;top:-6px;right:-8px;min-width:18px;height:18px;padding:0 3px;box-sizing:border-box;' +
                'border-radius:9px;background:#d7191c;color:#fff;border:2px solid #fff;font:bold 11px/14px sans-serif;' +
                'text-align:center';
    g.caseClusterIcon = function(cluster) {
        var n = cluster.getChildCount(), late = 0;
        cluster.getAllChildMarkers().forEach(function(m) { if (m.geogridRow && m.geogridRow[3]) late += 1; });
        var size = n < 10 ? 'small' : n < 100 ? 'medium' : 'large';
        // Numbers only: nothing a user wrote goes into this HTML.
        var html = '<div><span>' + n + '</span></div>' + (late ? '<b class="geogrid-overdue-badge" style="' + BADGE + '">' + late + '</b>' : '');
        return L.divIcon({html: html, className: 'marker-cluster marker-cluster-' + size + ' geogrid-case-cluster',
                          iconSize: new L.Point(40, 40)});
    };
    g.publicCaseMarker = function(row) {
        return L.circleMarker(new L.LatLng(row[0], row[1]), {radius: 5, color: '#555'}).bindPopup(g.popup(row[2]));
    };
})(window.geogrid = window.geogrid || {});
