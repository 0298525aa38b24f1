/* api.js: how a planner map talks to the service. geogrid.api(options) -> {call, loggedIn}.
 * A served page is already logged in: its session cookie is sent (credentials
 * 'same-origin') with the header X-Requested-With: geogrid-map, the only way the API takes
 * that cookie. An exported file has no session: it logs in with a form (options.loginBox,
 * a DOM node to fill) and keeps the token in this tab only (sessionStorage), sent as a
 * bearer token to the service named in <meta name="geogrid-api">.
 * call(method, path, body, headers) -> Promise of {status, ok, body, headers}; a network
 * failure answers status 0 with the browser's reason as detail. geogrid.localTime: below. */
(function(g) {
    g.api = function(options) {
        var base = (document.querySelector('meta[name="geogrid-api"]') || {}).content || '';
        var standalone = !!options.standalone, t = options.t;
        function token() { return sessionStorage.getItem('geogrid-token'); }
        function call(method, path, body, headers) {
            var h = Object.assign({}, headers || {});
            var init = {method: method, headers: h};
            if (body !== undefined) { h['Content-Type'] = 'application/json'; init.body = JSON.stringify(body); }
            if (standalone) { if (token()) h.Authorization = 'Bearer ' + token(); }
            else { h['X-Requested-With'] = 'geogrid-map'; init.credentials = 'same-origin'; }
            return fetch(base + path, init).then(function(r) {
                return r.text().then(function(text) {
                    var parsed = {};
                    try { parsed = text ? JSON.parse(text) : {}; } catch (e) { parsed = {detail: text.slice(0, 300)}; }
                    return {status: r.status, ok: r.ok, body: parsed, headers: r.headers};
                });
            }, function(err) { return {status: 0, ok: false, body: {detail: String(err)}, headers: new Headers()}; });
        }
        // The exported file's login form: user, password, button and a line for the answer.
        function loginForm(box) {
            var user = document.createElement('input'), pass = document.createElement('input');
            var button = document.createElement('button'), answer = document.createElement('span');
            user.id = 'geogrid-user'; user.placeholder = t.username; user.autocomplete = 'username';
            pass.id = 'geogrid-pass'; pass.type = 'password'; pass.placeholder = t.password;
            button.id = 'geogrid-login-btn'; button.type = 'button'; button.textContent = t.login;
            answer.id = 'geogrid-login-status';
            [user, pass].forEach(function(i) { i.style.width = '90px'; });
            [user, pass, button, answer].forEach(function(el) { box.appendChild(el); });
            if (token()) answer.textContent = t.logged_in;
            button.onclick = function() {
                var form = new URLSearchParams({username: user.value, password: pass.value});
                fetch(base + '/api/token', {method: 'POST', body: form}).then(function(r) {
                    return r.json().then(function(j) {
                        if (r.ok) { sessionStorage.setItem('geogrid-token', j.access_token); answer.textContent = t.logged_in; }
                        else { answer.textContent = (r.status === 401 ? t.bad_login : r.status) + ' ' + (j.detail || ''); }
                    });
                }).catch(function(e) { answer.textContent = String(e); });
            };
        }
        return {call: call, standalone: standalone, loginForm: loginForm};
    };
    /* An instant the service sent (ISO 8601), as the planner's pages show it: in the
     * jurisdiction's time zone tz (not the browser's), in the page's language; '—' for none. */
    g.localTime = function(value, lang, tz) {
        var stamp = value ? new Date(value) : null;
        return stamp && !isNaN(stamp)
            ? stamp.toLocaleString(lang === 'en' ? 'en-GB' : 'zh-CN', {hour12: false, timeZone: tz}) : '—';
    };
})(window.geogrid = window.geogrid || {});
