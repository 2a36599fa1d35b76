// What a user types on a page, kept in this browser's localStorage (per user and patient) until the
// server confirms the save; and saves tapped while the connection is down, queued in the same entry.
//
// A form is an element with data-draft-form="name"; its fields carry data-draft-field="field" (and
// data-draft-text when they hold free text). Entries are written here, on the device, as the user
// types, so nothing depends on the server being reachable. The server reads them once the page is
// connected (OTDrafts.load), puts them back into the fields, then calls OTDrafts.ready(); until then
// what is typed is added to the draft but a field not typed in never wipes it. Each entry carries the
// idempotency key its save is sent with: a save repeated after a lost answer is stored once.
// Nothing here goes to a URL, a log or a cookie.
(function () {
  "use strict";
  var PREFIX = "ot-draft:";
  var scope = null;
  var ready = false;

  function storageKey(form, at) { return PREFIX + (at || scope) + ":" + form; }
  function read(form, at) {
    try { return JSON.parse(window.localStorage.getItem(storageKey(form, at)) || "null"); } catch (e) { return null; }
  }
  function write(form, entry, at) {
    try { window.localStorage.setItem(storageKey(form, at), JSON.stringify(entry)); } catch (e) { /* storage full */ }
  }
  function drop(form, at) { window.localStorage.removeItem(storageKey(form, at)); }
  function newKey() {
    var bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes);  // randomUUID needs a secure context; a ward LAN may not be one
    return Array.prototype.map.call(bytes, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
  }
  function online() { return !!(window.socket && window.socket.connected); }

  function valueOf(field) {
    if (field.matches(".q-checkbox, .q-toggle")) return field.getAttribute("aria-checked") === "true";
    if (field.matches(".q-select")) {
      var shown = field.querySelector(".q-field__native span");
      return shown ? shown.textContent.trim() : "";
    }
    var box = field.matches("input, textarea") ? field : field.querySelector("textarea, input:not([type=hidden])");
    return box ? box.value : "";
  }

  function formElement(form) {
    var all = document.querySelectorAll("[data-draft-form]");
    for (var i = 0; i < all.length; i++) if (all[i].getAttribute("data-draft-form") === form) return all[i];
    return null;
  }

  function serialize(el) {
    var at = el.getAttribute("data-draft-scope") || scope;
    if (!at) return null;
    var form = el.getAttribute("data-draft-form");
    var entry = read(form, at);
    var kept = (!ready && entry && entry.values) || {};
    var values = {};
    var typed = false;
    el.querySelectorAll("[data-draft-field]").forEach(function (field) {
      var name = field.getAttribute("data-draft-field");
      var value = valueOf(field);
      var text = field.hasAttribute("data-draft-text");
      // Until the server has put the drafts back, a field not typed in yet keeps its draft.
      if (name in kept && (!text || value === "")) value = kept[name];
      values[name] = value;
      if (text && typeof value === "string" && value.trim()) typed = true;
    });
    if (!typed) {
      if (ready && entry && !entry.queued) drop(form, at);
      return entry && entry.queued ? entry : null;
    }
    entry = entry || { key: newKey() };
    entry.values = values;
    entry.at = Date.now();
    write(form, entry, at);
    return entry;
  }

  function serializeAll() {
    document.querySelectorAll("[data-draft-form]").forEach(serialize);
  }

  function markQueued(form, queued) {
    document.querySelectorAll("[data-draft-save]").forEach(function (button) {
      if (button.getAttribute("data-draft-save") !== form) return;
      if (queued) button.setAttribute("data-queued", "1"); else button.removeAttribute("data-queued");
    });
    var waiting = 0;
    for (var i = 0; i < window.localStorage.length; i++) {
      var key = window.localStorage.key(i);
      if (key && scope && key.indexOf(PREFIX + scope + ":") === 0) {
        try { if (JSON.parse(window.localStorage.getItem(key)).queued) waiting++; } catch (e) { /* skip */ }
      }
    }
    document.body.setAttribute("data-queued-saves", String(waiting));
  }

  // Typing writes at once; a pick from a list or a tick is read a moment after the tap or key.
  document.addEventListener("input", function (event) {
    var el = event.target && event.target.closest && event.target.closest("[data-draft-form]");
    if (el) serialize(el);
  }, true);
  var later = null;
  function soon() { clearTimeout(later); later = setTimeout(serializeAll, 60); }
  document.addEventListener("click", soon, true);
  document.addEventListener("keyup", soon, true);

  window.OTDrafts = {
    // Every entry of this user and patient, for the server to put back; writing stops until ready().
    load: function (newScope) {
      scope = newScope;
      ready = false;
      var out = {};
      var prefix = PREFIX + scope + ":";
      for (var i = 0; i < window.localStorage.length; i++) {
        var key = window.localStorage.key(i);
        if (key && key.indexOf(prefix) === 0) {
          try { out[key.slice(prefix.length)] = JSON.parse(window.localStorage.getItem(key)); } catch (e) { /* skip */ }
        }
      }
      return out;
    },
    ready: function () {
      // After the restored values have reached the fields (Vue renders them on its next tick).
      setTimeout(function () { ready = true; }, 50);
    },
    // Called as a save is tapped: the entry's key goes with the save; offline, the entry is queued.
    submit: function (form) {
      var el = formElement(form);
      var at = (el && el.getAttribute("data-draft-scope")) || scope;
      var entry = el ? serialize(el) : read(form, at);
      if (!entry) return null;
      if (!online()) {
        entry.queued = true;
        write(form, entry, at);
        markQueued(form, true);
      }
      return entry.key;
    },
    // The server confirmed the save sent with `key`: the draft is done.
    done: function (form, key) {
      // A read scheduled by the Save tap must not write the saved text back before the cleared
      // field has rendered (it would become a new draft, with a new key).
      clearTimeout(later);
      var entry = read(form);
      if (entry && (!key || entry.key === key)) drop(form);
      markQueued(form, false);
    },
    // After a save: focus the form's first field unless the user is typing in another form now.
    focusBack: function (form, id) {
      var active = document.activeElement;
      var el = formElement(form);
      var elsewhere = active && active !== document.body && !(el && el.contains(active)) &&
        active.matches("input, textarea, [contenteditable], [tabindex]");
      if (elsewhere) return;
      var target = document.getElementById(id);
      if (!target) return;
      var box = target.matches("input, textarea") ? target : target.querySelector("input, textarea, [tabindex]");
      (box || target).focus();
    },
    unqueue: function (form) {
      var entry = read(form);
      if (entry) { entry.queued = false; write(form, entry); }
      markQueued(form, false);
    },
    discard: function (form) { clearTimeout(later); drop(form); markQueued(form, false); },
    // Signing out: every draft of that user on this device goes.
    forget: function (userId) {
      ready = false;  // the page is leaving: nothing may write a draft back after this
      clearTimeout(later);
      var prefix = PREFIX + userId + ":";
      for (var i = window.localStorage.length - 1; i >= 0; i--) {
        var key = window.localStorage.key(i);
        if (key && key.indexOf(prefix) === 0) window.localStorage.removeItem(key);
      }
    },
  };

  // The sign-out form carries the user's id: clear that user's drafts as it is sent.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var user = form && form.getAttribute && form.getAttribute("data-forget-drafts");
    if (user) window.OTDrafts.forget(user);
  }, true);
})();
