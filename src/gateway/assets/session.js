// sessiongate's session expiry notice, for pages the gateway cannot change. It reads the
// session's deadlines from {PREFIX}/session (which does not slide the session), shows a
// small notice {WARN_BEFORE} seconds before the idle deadline, and offers to stay signed in
// (one request that slides the session) or to sign out. Everything lives in one closure and
// uses names prefixed "sessiongate-": it neither reads nor sets the page's globals.
(function () {
  "use strict";
  if (document.documentElement.hasAttribute("data-sessiongate-notice")) return;
  document.documentElement.setAttribute("data-sessiongate-notice", "");
  var prefix = "{PREFIX}";
  var warnBefore = {WARN_BEFORE};
  var timer = null;
  var notice = null;

  function clear() {
    if (timer) clearTimeout(timer);
    timer = null;
  }

  function hide() {
    if (notice && notice.parentNode) notice.parentNode.removeChild(notice);
    notice = null;
  }

  function button(text, action) {
    var b = document.createElement("button");
    b.type = "button";
    b.textContent = text;
    b.style.marginLeft = "0.75em";
    b.addEventListener("click", action);
    return b;
  }

  function show(secondsLeft) {
    if (notice) return;
    notice = document.createElement("div");
    notice.id = "sessiongate-notice";
    notice.setAttribute("role", "alert");
    var s = notice.style;
    s.position = "fixed"; s.right = "1em"; s.bottom = "1em"; s.zIndex = "2147483647";
    s.background = "#fff8e1"; s.color = "#222"; s.border = "1px solid #e0c060";
    s.padding = "0.75em 1em"; s.font = "14px sans-serif"; s.boxShadow = "0 2px 8px rgba(0,0,0,.2)";
    var minutes = Math.max(1, Math.round(secondsLeft / 60));
    notice.appendChild(document.createTextNode(
      "Your session ends in about " + minutes + " minute" + (minutes === 1 ? "" : "s") + "."));
    notice.appendChild(button("Stay signed in", function () {
      fetch(prefix + "/session/touch", { method: "POST", credentials: "same-origin" })
        .then(function () { hide(); check(); });
    }));
    notice.appendChild(button("Sign out", function () {
      window.location.href = prefix + "/sign_out";
    }));
    document.body.appendChild(notice);
  }

  function schedule(seconds) {
    clear();
    timer = setTimeout(check, Math.max(5, seconds) * 1000);
  }

  function check() {
    fetch(prefix + "/session", { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { return r.json(); })
      .then(function (status) {
        if (!status.authenticated) { hide(); return; }
        var left = status.expires_in;
        if (left <= warnBefore) { show(left); schedule(Math.min(left, 30)); }
        else { hide(); schedule(left - warnBefore); }
      })
      .catch(function () { schedule(60); });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", check);
  else check();
})();
