/* dashboard.js: the assessment dashboard's charts and map (maps/dashboard.py).
 * Reads the page's JSON block (#geogrid-dashboard-data) and draws: the twelve-month trend
 * (received and closed as bars, 按期结案率 as a line) and 按期结案率 by unit with ECharts,
 * the units' choropleth with Leaflet. Names are user text: they reach the page only as
 * JSON and are shown as text (canvas labels, DOM nodes built with textContent, never HTML
 * strings). Report downloads go through the service with the map session
 * (X-Requested-With: geogrid-map), since a plain link would carry no credential for /api/. */
(function(g) {
    function node(tag, text, cls) {
        var el = document.createElement(tag);
        if (cls) el.className = cls;
        if (text != null) el.textContent = String(text);
        return el;
    }
    // ECharts tooltips are HTML by default: these are DOM nodes whose texts are textContent.
    function tip(title, lines) {
        var box = node('div', null, 'geogrid-card');
        box.appendChild(node('b', title));
        lines.forEach(function(line) {
            var row = node('div');
            if (line[2]) { var dot = node('span'); dot.style.cssText = 'display:inline-block;width:9px;height:9px;' +
                'border-radius:50%;margin-right:5px;background:' + line[2]; row.appendChild(dot); }
            row.appendChild(node('span', line[0] + ': '));
            row.appendChild(node('b', line[1]));
            box.appendChild(row);
        });
        return box;
    }
    function shown(v, suffix) { return v == null ? '—' : v + (suffix || ''); }

    function trendChart(el, data, t) {
        var chart = echarts.init(el, null, {renderer: 'canvas', locale: data.lang === 'en' ? 'EN' : 'ZH'});
        var tr = data.trend, names = t.indicators;
        chart.setOption({
            animation: false,
            color: ['#5b8ff9', '#5ad8a6', '#e8684a'],
            tooltip: {trigger: 'axis', confine: true, formatter: function(items) {
                return tip(items[0].axisValue, items.map(function(p) {
                    return [p.seriesName, shown(p.value, p.seriesIndex === 2 ? '%' : ''), p.color];
                }));
            }},
            legend: {top: 0, data: [names.received, names.closed, names.on_time_rate]},
            grid: {left: 8, right: 8, top: 44, bottom: 8, containLabel: true},
            xAxis: {type: 'category', data: tr.months, axisLabel: {hideOverlap: true}},
            yAxis: [{type: 'value', name: t.cases, minInterval: 1},
                    {type: 'value', name: '%', min: 0, max: 100, splitLine: {show: false}}],
            series: [
                {name: names.received, type: 'bar', data: tr.received, barMaxWidth: 24},
                {name: names.closed, type: 'bar', data: tr.closed, barMaxWidth: 24},
                {name: names.on_time_rate, type: 'line', yAxisIndex: 1, data: tr.on_time_rate, connectNulls: false,
                 symbolSize: 7}
            ]
        });
        return chart;
    }

    function unitChart(el, data, t) {
        var chart = echarts.init(el, null, {renderer: 'canvas', locale: data.lang === 'en' ? 'EN' : 'ZH'});
        var b = data.bars, many = b.names.length > 12;
        // Best at the top: a category axis lists from the bottom up.
        var order = b.names.map(function(_, i) { return i; }).reverse();
        chart.setOption({
            animation: false,
            tooltip: {trigger: 'item', confine: true, formatter: function(p) {
                var i = order[p.dataIndex];
                return tip(b.names[i], [[t.code, b.codes[i]], [t.indicators.on_time_rate, shown(b.rates[i], '%')]]);
            }},
            grid: {left: 8, right: many ? 40 : 24, top: 8, bottom: 8, containLabel: true},
            xAxis: {type: 'value', min: 0, max: 100, axisLabel: {formatter: '{value}%'}},
            yAxis: {type: 'category', data: order.map(function(i) { return b.names[i]; }),
                    axisLabel: {width: 110, overflow: 'truncate'}},
            dataZoom: many ? [{type: 'slider', yAxisIndex: 0, right: 4, width: 18, startValue: b.names.length - 12,
                               endValue: b.names.length - 1}, {type: 'inside', yAxisIndex: 0}] : [],
            series: [{name: t.indicators.on_time_rate, type: 'bar', barMaxWidth: 28,
                      data: order.map(function(i) { return {value: b.rates[i], itemStyle: {color: b.colours[i]}}; }),
                      label: {show: true, position: 'right', formatter: '{c}%'}}]
        });
        return chart;
    }

    function unitMap(el, data, t) {
        // The wheel scrolls the page, not the map (the buttons zoom): the map is one panel of many.
        var map = L.map(el, {preferCanvas: true, zoomSnap: 0.25, scrollWheelZoom: false});
        if (data.tiles) {
            L.tileLayer(data.tiles.url, {attribution: data.tiles.attribution, maxZoom: data.tiles.maxZoom,
                                         subdomains: data.tiles.subdomains}).addTo(map);
        }
        L.control.scale({imperial: false}).addTo(map);
        var layer = L.geoJSON(data.map, {
            style: function(f) {
                return {fillColor: f.properties.colour, fillOpacity: 0.75, color: '#555', weight: 1};
            },
            onEachFeature: function(f, l) {
                var p = f.properties;
                l.bindTooltip(function() {
                    return g.card([p.name, [t.code, p.code], [t.indicators.on_time_rate, p.rate_text],
                                   [t.indicators.received, String(p.received)]]);
                }, {sticky: true});
                l.on('mouseover', function() { l.setStyle({weight: 3, color: '#000'}); });
                l.on('mouseout', function() { layer.resetStyle(l); });
            }
        }).addTo(map);
        var bounds = layer.getBounds();
        if (bounds.isValid()) map.fitBounds(bounds, {padding: [8, 8]}); else map.setView([30, 120], 5);
        var legend = L.control({position: 'bottomright'});
        legend.onAdd = function() {
            var box = node('div', null, 'geogrid-dashboard-legend');
            box.appendChild(node('b', t.legend));
            data.legend.forEach(function(item) {
                var row = node('div'), swatch = node('i');
                swatch.style.background = item[0];
                row.appendChild(swatch);
                row.appendChild(node('span', item[1]));
                box.appendChild(row);
            });
            return box;
        };
        legend.addTo(map);
        return {map: map, layer: layer};
    }

    function download(a, t) {
        var status = document.getElementById('geogrid-download-status');
        status.textContent = t.downloading;
        fetch(a.getAttribute('href'), {credentials: 'same-origin', headers: {'X-Requested-With': 'geogrid-map'}})
            .then(function(r) {
                if (!r.ok) {
                    status.textContent = t['download_' + r.status] || (t.download_failed + ' (' + r.status + ')');
                    return null;
                }
                return r.blob().then(function(blob) {
                    var url = URL.createObjectURL(blob), link = node('a');
                    link.href = url; link.download = a.getAttribute('data-file');
                    document.body.appendChild(link); link.click(); link.remove();
                    setTimeout(function() { URL.revokeObjectURL(url); }, 60000);
                    status.textContent = '';
                });
            }, function() { status.textContent = t.offline; });
    }

    g.dashboard = function() {
        var data = JSON.parse(document.getElementById('geogrid-dashboard-data').textContent), t = data.t;
        var out = {data: data};
        out.trend = trendChart(document.getElementById('geogrid-chart-trend'), data, t);
        out.units = unitChart(document.getElementById('geogrid-chart-units'), data, t);
        var m = unitMap(document.getElementById('geogrid-dashboard-map'), data, t);
        out.map = m.map; out.layer = m.layer;
        window.addEventListener('resize', function() {
            out.trend.resize(); out.units.resize(); out.map.invalidateSize();
        });
        Array.prototype.forEach.call(document.querySelectorAll('a.download'), function(a) {
            a.addEventListener('click', function(e) { e.preventDefault(); download(a, t); });
        });
        return out;
    };
    // The script is the page's last: the elements above it are there.
    g.dashboardPage = g.dashboard();
})(window.geogrid = window.geogrid || {});
