/*! Track AI tracking script v1 (ES2017, no dependencies). Keeps a first-party session id, the
 * _fbc/_fbp cookies as Meta's pixel does, sends hits by sendBeacon, puts the session id on checkout
 * links and computes the shared event_id. Documentation: docs/tracking-script.md */
(function () {
  "use strict";
  var w = window;
  var d = document;
  if (w.trackai && w.trackai.version) return; // loaded twice: the first copy stays in charge
  var script = d.currentScript;
  if (!script) return;
  var cfg = script.dataset;
  var tenant = (cfg.tenant || "").trim();
  if (!tenant) return;

  var SESSION_COOKIE = "_tai_sid";
  var SESSION_KEY = "_tai_session";
  var SESSION_MS = 30 * 60 * 1000;
  var FB_MAX_AGE_S = 90 * 24 * 3600;
  var VISITOR_COOKIE = "_tai_vid";
  var VISITOR_KEY = "_tai_visitor";
  var VISITOR_MAX_AGE_S = 400 * 24 * 3600; // browsers cap cookies at 400 days
  var VISITOR_RE = /^[0-9a-f]{64}$/;
  var UTM_KEYS = ["utm_source", "utm_medium", "utm_campaign", "utm_content", "utm_term"];
  var TOKEN_RE = /^[A-Za-z0-9_.:-]{8,128}$/;
  var SESSION_RE = /^ta[A-Za-z0-9]{20}$/;
  var FBCLID_RE = /^[A-Za-z0-9_-]{1,500}$/;
  var FBC_RE = /^fb\.\d{1,2}\.\d{1,16}\.[A-Za-z0-9_-]{1,500}(\.[^.\s]{1,200})?$/;
  var FBP_RE = /^fb\.\d{1,2}\.\d{1,16}\.\d{1,20}(\.[^.\s]{1,200})?$/;
  var ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

  var base = (cfg.endpoint || new URL(script.src, location.href).origin).replace(/\/+$/, "");
  var collectUrl = base + "/api/v1/collect/" + encodeURIComponent(tenant);
  var funnel = (cfg.funnel || "").trim();
  var checkoutDomains = (cfg.checkoutDomains || "")
    .split(",")
    .map(function (s) { return s.trim().toLowerCase().replace(/\.$/, ""); })
    .filter(Boolean);

  function token(length) {
    var out = "";
    while (out.length < length) {
      var bytes = crypto.getRandomValues(new Uint8Array(length));
      for (var i = 0; i < bytes.length && out.length < length; i++) {
        // 62 * 4 = 248: rejecting bytes >= 248 keeps every character equally likely.
        if (bytes[i] < 248) out += ALPHABET[bytes[i] % 62];
      }
    }
    return out;
  }

  function readCookie(name) {
    var match = d.cookie.match(new RegExp("(?:^|;\\s*)" + name + "=([^;]*)"));
    return match ? match[1] : null;
  }

  // The widest domain that accepts a cookie (example.com for www.example.com, never a public
  // suffix), found by probing as Meta's pixel does, so every subdomain shares the values.
  var cookieDomain = (function () {
    var host = location.hostname;
    if (/^[\d.]+$/.test(host) || host.indexOf(":") >= 0 || host.indexOf(".") < 0) return "";
    var labels = host.split(".");
    for (var i = labels.length - 2; i >= 0; i--) {
      var candidate = labels.slice(i).join(".");
      d.cookie = "_tai_probe=1; domain=" + candidate + "; path=/; max-age=10; SameSite=Lax";
      if (readCookie("_tai_probe") === "1") {
        d.cookie = "_tai_probe=; domain=" + candidate + "; path=/; max-age=0";
        return candidate;
      }
    }
    return "";
  })();
  // Meta's subdomainIndex: 1 for example.com, 2 for www.example.com (labels minus one).
  var subdomainIndex = cookieDomain ? cookieDomain.split(".").length - 1 : 1;

  function writeCookie(name, value, maxAgeS) {
    var cookie = name + "=" + value + "; path=/; max-age=" + maxAgeS + "; SameSite=Lax";
    if (cookieDomain) cookie += "; domain=" + cookieDomain;
    if (location.protocol === "https:") cookie += "; Secure";
    d.cookie = cookie;
  }

  function storage(key, value) {
    try {
      if (value === undefined) return JSON.parse(localStorage.getItem(key) || "null");
      localStorage.setItem(key, JSON.stringify(value));
    } catch (e) {
      // Storage disabled (private mode, policy): the cookie alone carries the session.
    }
    return null;
  }

  function fnv1a(text) {
    var hash = 0x811c9dc5;
    for (var i = 0; i < text.length; i++) {
      hash ^= text.charCodeAt(i);
      hash = Math.imul(hash, 0x01000193) >>> 0;
    }
    return ("0000000" + hash.toString(16)).slice(-8);
  }

  var params = new URLSearchParams(location.search);
  var fbclid = params.get("fbclid");
  if (fbclid && !FBCLID_RE.test(fbclid)) fbclid = null;

  // _fbc: kept unless a different fbclid arrives; then fb.<index>.<ms>.<fbclid>, case preserved.
  var fbc = readCookie("_fbc");
  if (fbc && !FBC_RE.test(fbc)) fbc = null;
  if (fbclid && (!fbc || fbc.split(".")[3] !== fbclid)) {
    fbc = "fb." + subdomainIndex + "." + Date.now() + "." + fbclid;
  }
  if (fbc) writeCookie("_fbc", fbc, FB_MAX_AGE_S);
  // _fbp: fb.<index>.<ms>.<random 31-bit integer>, created when absent, refreshed on each visit.
  var fbp = readCookie("_fbp");
  if (!fbp || !FBP_RE.test(fbp)) {
    var random = crypto.getRandomValues(new Uint32Array(1))[0] % 2147483647;
    fbp = "fb." + subdomainIndex + "." + Date.now() + "." + random;
  }
  writeCookie("_fbp", fbp, FB_MAX_AGE_S);

  // Visitor: a stable first-party id (64 random hex characters, the shape of a SHA-256 digest, so
  // Meta and the server take it as already hashed) given to the pixel as external_id and sent with
  // every hit, so the server sends the same external_id. Kept 400 days, renewed on each visit.
  var visitorId = (function () {
    var id = readCookie(VISITOR_COOKIE);
    if (!id || !VISITOR_RE.test(id)) id = storage(VISITOR_KEY);
    if (typeof id !== "string" || !VISITOR_RE.test(id)) {
      id = Array.from(crypto.getRandomValues(new Uint8Array(32)), function (b) {
        return b.toString(16).padStart(2, "0");
      }).join("");
    }
    writeCookie(VISITOR_COOKIE, id, VISITOR_MAX_AGE_S);
    storage(VISITOR_KEY, id);
    return id;
  })();

  // Session: the cookie `<id>.<campaign hash>` lives 30 minutes from the last hit; a landing with
  // a different campaign (UTM or fbclid) starts a new session, as analytics tools do.
  var campaignText = UTM_KEYS.concat(["fbclid"])
    .map(function (k) { return params.get(k) || ""; })
    .join("|");
  var campaign = /[^|]/.test(campaignText) ? fnv1a(campaignText) : "";
  var session = (function () {
    var now = Date.now();
    var parts = (readCookie(SESSION_COOKIE) || "").split(".");
    var stored = storage(SESSION_KEY);
    var id = null;
    var sessionCampaign = "";
    if (SESSION_RE.test(parts[0])) {
      id = parts[0];
      sessionCampaign = parts[1] || "";
    } else if (stored && SESSION_RE.test(stored.id) && now - stored.t < SESSION_MS) {
      id = stored.id;
      sessionCampaign = stored.c || "";
    }
    var utm = stored && stored.id === id && stored.utm ? stored.utm : {};
    if (!id || (campaign && campaign !== sessionCampaign)) {
      id = "ta" + token(20);
      utm = {};
    }
    if (campaign) {
      utm = {};
      UTM_KEYS.forEach(function (k) { if (params.get(k)) utm[k] = params.get(k).slice(0, 500); });
    }
    return { id: id, campaign: campaign || sessionCampaign, utm: utm };
  })();

  function touchSession() {
    writeCookie(SESSION_COOKIE, session.id + "." + session.campaign, SESSION_MS / 1000);
    storage(SESSION_KEY, { id: session.id, t: Date.now(), c: session.campaign, utm: session.utm });
  }

  function send(type, extra) {
    var eventId = token(24);
    var body = {
      type: type,
      session_id: session.id,
      visitor_id: visitorId,
      event_id: eventId,
      event_time: Date.now(),
      page_url: location.href.slice(0, 4096),
    };
    if (d.referrer) body.referrer = d.referrer.slice(0, 4096);
    if (fbclid) body.fbclid = fbclid;
    if (fbc) body.fbc = fbc;
    if (fbp) body.fbp = fbp;
    if (funnel) body.funnel = funnel;
    ["src", "sck"].forEach(function (k) { if (params.get(k)) body[k] = params.get(k).slice(0, 500); });
    Object.assign(body, session.utm, extra || {});
    var json = JSON.stringify(body);
    var queued = false;
    try {
      // A string body goes out as text/plain: no CORS preflight, and it survives navigation.
      queued = navigator.sendBeacon ? navigator.sendBeacon(collectUrl, json) : false;
    } catch (e) {
      queued = false;
    }
    if (!queued && w.fetch) {
      fetch(collectUrl, {
        method: "POST",
        body: json,
        keepalive: true,
        mode: "cors",
        credentials: "omit",
        headers: { "Content-Type": "text/plain;charset=UTF-8" },
      }).catch(function () {});
    }
    touchSession();
    return eventId;
  }

  function isCheckout(url) {
    var host = url.hostname.toLowerCase();
    return checkoutDomains.some(function (dm) {
      return host === dm || host.slice(-dm.length - 1) === "." + dm;
    });
  }

  // sck always carries our session id; src only when empty or already ours (a tenant may use it);
  // the session's UTM tags are added where the link has none, so the gateway's webhook has them.
  function decorate(href) {
    var url;
    try {
      url = new URL(href, location.href);
    } catch (e) {
      return null;
    }
    if (!/^https?:$/.test(url.protocol) || !isCheckout(url)) return null;
    var q = url.searchParams;
    q.set("sck", session.id);
    if (!q.get("src") || SESSION_RE.test(q.get("src"))) q.set("src", session.id);
    UTM_KEYS.forEach(function (k) { if (session.utm[k] && !q.get(k)) q.set(k, session.utm[k]); });
    return url.toString();
  }

  function decorateLink(a) {
    var next = decorate(a.href);
    if (next && next !== a.href) a.href = next;
    return next !== null;
  }

  function decorateAll(root) {
    if (!checkoutDomains.length || !root.querySelectorAll) return;
    if (root.matches && root.matches("a[href]")) decorateLink(root);
    Array.prototype.forEach.call(root.querySelectorAll("a[href]"), decorateLink);
  }

  function fieldValue(form, selector) {
    var input = form.querySelector(selector);
    return input && input.value ? input.value : "";
  }

  function lead(fields) {
    var extra = {};
    if (fields && fields.email) extra.email = String(fields.email).slice(0, 320);
    if (fields && fields.phone) extra.phone = String(fields.phone).slice(0, 64);
    return send("lead", extra);
  }

  // event_id, version 1 (docs/schema/event_id.md): SHA-256 hex of
  // "trackai:v1|<tenant>|<gateway>|<order_id>|<event_name>"; the server computes the same value.
  var STANDARD_EVENTS = [
    "AddPaymentInfo", "AddToCart", "AddToWishlist", "CompleteRegistration", "Contact",
    "CustomizeProduct", "Donate", "FindLocation", "InitiateCheckout", "Lead", "PageView",
    "Purchase", "Schedule", "Search", "StartTrial", "SubmitApplication", "Subscribe", "ViewContent",
  ];

  function trim(value) {
    return String(value).replace(/^[ \t\n\r\v\f]+|[ \t\n\r\v\f]+$/g, "");
  }

  async function eventId(orderId, eventName, gateway) {
    var tenantId = trim(tenant).toLowerCase();
    if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(tenantId)) {
      throw new Error("trackai: data-tenant must be the tenant's UUID to compute event ids");
    }
    var gw = trim(gateway || cfg.gateway || "").toLowerCase();
    if (!/^[a-z0-9][a-z0-9_.-]{0,31}$/.test(gw)) {
      throw new Error("trackai: set data-gateway on the script tag or pass the gateway");
    }
    var order = trim(orderId == null ? "" : orderId);
    if (order === "") throw new Error("trackai: order_id must not be empty");
    var name = trim(eventName);
    var standard = STANDARD_EVENTS.find(function (n) {
      return n.toLowerCase() === name.toLowerCase();
    });
    if (standard) name = standard;
    else if (!/^[A-Za-z0-9_-]{1,50}$/.test(name)) throw new Error("trackai: invalid event_name");
    var key = ["trackai:v1", tenantId, gw, order, name].join("|");
    var digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(key));
    return Array.from(new Uint8Array(digest), function (b) {
      return b.toString(16).padStart(2, "0");
    }).join("");
  }

  touchSession();
  var pageViewEventId = send("page_view");

  d.addEventListener("click", function (event) {
    var a = event.target && event.target.closest ? event.target.closest("a[href]") : null;
    if (a && checkoutDomains.length && decorateLink(a)) send("checkout_start");
  }, true);

  var leadForms = (cfg.leadForms || "auto").trim();
  if (leadForms !== "off") {
    d.addEventListener("submit", function (event) {
      var form = event.target;
      if (!(form instanceof HTMLFormElement)) return;
      if (leadForms !== "auto" && !form.matches(leadForms)) return;
      var email = fieldValue(form, 'input[type="email"], input[autocomplete="email"], input[name*="mail" i]');
      var phone = fieldValue(form, 'input[type="tel"], input[autocomplete="tel"], input[name*="phone" i], '
        + 'input[name*="fone" i], input[name*="celular" i], input[name*="whats" i]');
      if (email || phone) lead({ email: email, phone: phone });
    }, true);
  }

  function start() {
    decorateAll(d);
    if (checkoutDomains.length && w.MutationObserver) {
      new MutationObserver(function (records) {
        records.forEach(function (r) { Array.prototype.forEach.call(r.addedNodes, decorateAll); });
      }).observe(d.documentElement, { childList: true, subtree: true });
    }
  }
  if (d.readyState === "loading") d.addEventListener("DOMContentLoaded", start);
  else start();

  w.trackai = {
    version: "1",
    sessionId: session.id,
    visitorId: visitorId,
    pageViewEventId: pageViewEventId,
    eventId: eventId,
    lead: lead,
    track: function (type) { return send(type); },
    decorate: function (href) { return decorate(href) || href; },
  };
})();
