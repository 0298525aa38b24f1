/* board.js: the public map's grid boards (网格公示) and "find my grid".
 * geogrid.board(map, grids, strings, labels, hotline) gives each grid of ``grids`` its board,
 * built from compact properties {code, name, p: [[post, name, phone, photo, duties], ...]}
 * where post and duties index ``strings`` (repeated texts travel once), and finds the grid
 * at the browser's location (point in polygon on the page: no request leaves it);
 * window.geogridFindGrid(lat, lng) opens the board there and returns the grid's code.
 * Needs geogrid.js (geogrid.esc: every text below, labels included, goes through it). */
(function(g) {
    function inRing(x, y, ring) {
        var inside = false;
        for (var i = 0, j = ring.length - 1; i < ring.length; j = i++) {
            var xi = ring[i][0], yi = ring[i][1], xj = ring[j][0], yj = ring[j][1];
            if (((yi > y) !== (yj > y)) && (x < (xj - xi) * (y - yi) / (yj - yi) + xi)) inside = !inside;
        }
        return inside;
    }
    function covers(geom, x, y) {
        var polys = geom.type === 'Polygon' ? [geom.coordinates] : geom.coordinates;
        return polys.some(function(rings) {
            return inRing(x, y, rings[0]) && !rings.slice(1).some(function(h) { return inRing(x, y, h); });
        });
    }
    g.board = function(map, grids, S, T, hotline) {
        var esc = g.esc;
        function board(p) {
            var h = '<div class="geogrid-board"><b>' + esc(p.name) + '</b><br>' + esc(T.code) + ': ' + esc(p.code);
            if (!p.p.length) h += '<br><i>' + esc(T.no_persons) + '</i>';
            p.p.forEach(function(q) {
                h += '<div style="margin-top:6px;border-top:1px solid #eee;padding-top:4px">';
                if (q[3]) h += '<img src="' + esc(q[3]) + '" alt="" style="width:48px;height:60px;float:left;'
                             + 'object-fit:cover;margin-right:6px">';
                h += '<b>' + esc(S[q[0]]) + '</b> ' + esc(q[1]);
                if (q[2]) h += '<br>' + esc(T.phone) + ': <a href="tel:' + esc(q[2]) + '">' + esc(q[2]) + '</a>';
                if (S[q[4]]) h += '<br><small>' + esc(T.duties) + ': ' + esc(S[q[4]]) + '</small>';
                h += '<div style="clear:both"></div></div>';
            });
            return h + '<div style="margin-top:6px">' + esc(T.hotline) + ': <b>' + esc(hotline) + '</b></div></div>';
        }
        grids.eachLayer(function(l) { l.bindPopup(board(l.feature.properties), {maxWidth: 320}); });
        window.geogridFindGrid = function(lat, lng) {
            var found = null;
            grids.eachLayer(function(l) { if (!found && covers(l.feature.geometry, lng, lat)) found = l; });
            if (found) { found.openPopup(L.latLng(lat, lng)); }
            return found ? found.feature.properties.code : null;
        };
        map.on('locationfound', function(e) { window.geogridFindGrid(e.latlng.lat, e.latlng.lng); });
    };
})(window.geogrid = window.geogrid || {});
