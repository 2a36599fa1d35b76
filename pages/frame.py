"""The frame every signed-in page shares: app name, navigation, live indicator, who is signed in."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from nicegui import ui
from nicegui.elements.mixins.text_element import TextElement

from dashboard.access import Role

from pages import live, socket_guard
from pages.auth import PageSession

# Under load (hundreds of open pages) a page may take longer than NiceGUI's 3 s default to build;
# a clinician should get it late rather than get an error page.
PAGE_BUILD_TIMEOUT = 20.0

ROLE_LABELS = {Role.LEAD: "Lead", Role.THERAPIST: "Therapist", Role.CONTRIBUTOR: "Contributor",
               Role.VIEWER: "Ward screen"}

NAV = [
    ("caseload", "Caseload", "/", "groups"),
    ("equipment", "Equipment", "/equipment", "medical_services"),
    ("ward", "Ward screen", "/ward", "tv"),
]
ACCOUNT = ("account", "Account", "/account", "account_circle")  # every signed-in user's own

THEME_CSS = """
:root { --ot-ink: #102a43; --ot-muted: #486581; --ot-line: #e3e8ef; --ot-bg: #f4f6f9;
        --ot-brand: #0b5563; --ot-brand-2: #127b8c; --ot-card: #ffffff; }
html, body { background: var(--ot-bg); color: var(--ot-ink);
  font-family: "Inter", "Segoe UI", system-ui, -apple-system, Roboto, "Helvetica Neue", Arial, sans-serif; }
#popup { display: none !important; }  /* the header's live indicator replaces NiceGUI's popup */
.nicegui-content { padding: 0; }
.ot-header { background: linear-gradient(90deg, var(--ot-brand), var(--ot-brand-2)); min-height: 60px;
  box-shadow: 0 1px 6px rgba(16,42,67,.25); }
.ot-brand { font-weight: 700; font-size: 1.15rem; letter-spacing: .01em; color: #fff; text-decoration: none; }
.ot-nav a { color: rgba(255,255,255,.82); text-decoration: none; border-radius: 10px; padding: 0 14px;
  min-height: 44px; display: inline-flex; align-items: center; gap: 8px; font-weight: 500; }
.ot-nav a:hover { background: rgba(255,255,255,.12); color: #fff; }
.ot-nav a.active { background: rgba(255,255,255,.2); color: #fff; }
.ot-main { width: 100%; max-width: 1440px; margin: 0 auto; padding: 20px 24px 40px; gap: 18px; }
.ot-card { background: var(--ot-card); border: 1px solid var(--ot-line); border-radius: 14px;
  box-shadow: 0 1px 2px rgba(16,42,67,.05); padding: 18px 20px; width: 100%; }
.ot-card-title { font-size: 1.02rem; font-weight: 650; color: var(--ot-ink); }
.ot-muted { color: var(--ot-muted); }
/* Text at 4.5:1 or more (WCAG 1.4.3): NiceGUI's link blue is 3.7:1 on white, Quasar's timeline
   subtitle is dimmed by opacity to 4.1:1. */
.ot-main a.nicegui-link, .q-dialog a.nicegui-link { color: var(--ot-brand); }
/* A link that looks like an outlined button (downloads, the report): 44 px high like the buttons. */
a.ot-link-button { display: inline-flex; align-items: center; gap: 6px; min-height: 44px; padding: 0 14px;
  border: 1px solid currentColor; border-radius: 10px; text-decoration: none; font-weight: 600; }
a.ot-link-button:hover { background: rgba(11,85,99,.06); }
.q-timeline__subtitle { opacity: 1; color: var(--ot-muted); }
/* A real h1/h2 (Heading) looks like the label it replaced: Quasar's h1-h6 sizes and margins are
   undone inside Quasar's own layer, so Tailwind's utilities on a heading still apply. */
@layer quasar { .ot-heading { margin: 0; font-size: inherit; font-weight: inherit; line-height: inherit;
  letter-spacing: inherit; } }
.ot-page-title { font-size: 1.5rem; font-weight: 700; letter-spacing: -.01em; }
.q-btn { min-height: 44px; border-radius: 10px; text-transform: none; font-weight: 600; }
.q-btn.ot-small { min-height: 44px; min-width: 44px; }
.q-field--outlined .q-field__control { border-radius: 10px; }
.q-checkbox__inner, .q-toggle__inner { min-width: 44px; min-height: 44px; }
.q-item { min-height: 48px; }
.live-indicator { display: inline-flex; align-items: center; gap: 8px; color: #fff; font-size: .85rem;
  padding: 6px 12px; border-radius: 999px; background: rgba(255,255,255,.14); white-space: nowrap; }
.live-indicator .dot { width: 9px; height: 9px; border-radius: 50%; background: #f0b429; }
.live-indicator .txt-live, .live-indicator .txt-off { display: none; }
.live-indicator .txt-wait { display: inline; }
body[data-live="live"] .live-indicator .dot { background: #3ee07a; box-shadow: 0 0 0 3px rgba(62,224,122,.25); }
body[data-live="live"] .live-indicator .txt-live { display: inline; }
body[data-live="live"] .live-indicator .txt-wait { display: none; }
body[data-live="reconnecting"] .live-indicator .dot { background: #ff6b6b; animation: ot-pulse 1s infinite; }
body[data-live="reconnecting"] .live-indicator .txt-off { display: inline; }
body[data-live="reconnecting"] .live-indicator .txt-wait { display: none; }
.ot-offline-banner { display: none; }
body[data-live="reconnecting"] .ot-offline-banner { display: flex; }
.ot-offline-banner { position: sticky; top: 60px; z-index: 20; width: 100%; gap: 12px; align-items: flex-start;
  background: #fdecea; color: #7a1010; border: 2px solid #c62828; border-radius: 12px; padding: 12px 16px;
  font-weight: 600; }
.ot-offline-banner .sub { font-weight: 400; }
/* Offline, a save is kept on the device and sent when the connection is back: the button says so. */
body[data-live="reconnecting"] .ot-save .q-btn__content::after { content: "· sends when back online";
  font-weight: 500; margin-left: 6px; font-size: .85em; }
.ot-save[data-queued] .q-btn__content::after { content: "· queued, sends when back online" !important;
  font-weight: 500; margin-left: 6px; font-size: .85em; }
@keyframes ot-pulse { 50% { opacity: .35; } }
/* Skip link (WCAG 2.4.1): the first Tab stop of every framed page, shown only while focused. */
.ot-skip:not(:focus) { position: absolute; width: 1px; height: 1px; overflow: hidden; clip-path: inset(50%);
  white-space: nowrap; }
.ot-skip:focus { position: absolute; left: 12px; top: 8px; z-index: 10; background: #fff; color: var(--ot-brand);
  padding: 10px 16px; border-radius: 10px; font-weight: 700; text-decoration: underline;
  box-shadow: 0 2px 10px rgba(16,42,67,.35); }
/* The skip link's target and an opened dialog's frame take focus as regions, not controls. */
#main:focus, .q-dialog__inner:focus { outline: none; }
/* Visible focus on every control (WCAG 2.4.7): Quasar takes outlines away (outline: 0, inside its
   cascade layer, which this unlayered rule outranks) and shows keyboard focus as a faint tint. A 3 px
   ring in the ink colour instead, 2 px off the control: about 13:1 on the page and on cards. On the
   teal header it is white (4.9:1 or more on both ends of the gradient). */
:focus-visible { outline: 3px solid var(--ot-ink); outline-offset: 2px; }
.ot-header :focus-visible { outline-color: #fff; }
.ot-header .ot-skip:focus-visible { outline-color: var(--ot-ink); }
/* Quasar's buttons, chips and items carry `no-outline` (outline: 0 !important, in a later layer); an
   important rule wins only from an earlier layer, so the ring for them is set in the first one. */
@layer theme {
  .no-outline:focus-visible, .q-focusable:focus-visible { outline: 3px solid var(--ot-ink) !important;
    outline-offset: 2px !important; }
  .ot-header .no-outline:focus-visible, .ot-header .q-focusable:focus-visible { outline-color: #fff !important; }
}
/* Select options move with the arrow keys while focus stays in the field: the active one is ringed. */
.q-menu .q-item.q-manual-focusable--focused { outline: 3px solid var(--ot-ink); outline-offset: -3px; }
/* A field shows focus by its 2 px border in the brand colour (7.6:1 on white). */
.ot-user { color: #fff; line-height: 1.1; text-align: right; }
.ot-user .name { font-weight: 600; } .ot-user .role { font-size: .75rem; opacity: .8; }
.ot-empty { padding: 28px; text-align: center; color: var(--ot-muted); }
.ot-flash { animation: ot-flash 1.6s ease-out; }
@keyframes ot-flash { 0% { background: #fff5c2; } 100% { background: transparent; } }
@media (max-width: 1023px) { .ot-main { padding: 14px 14px 32px; } .ot-nav .lbl { display: none; } }
/* Print: the record only, no navigation, forms or buttons; every section of a tabbed page. */
@media print {
  .q-header, .ot-header, .ot-nav, .ot-offline-banner, .pt-tabs, .ot-no-print, form, [data-draft-form], .q-field,
  .q-btn, .q-pagination, .q-notifications, .q-dialog, .q-tooltip, .ot-card:has(> .q-field) { display: none !important; }
  .q-page-container { padding-top: 0 !important; }
  html, body { background: #fff !important; }
  .ot-main { max-width: none; padding: 0; }
  .ot-card { box-shadow: none; }
  html body .ot-main .pt-section { display: flex !important; }
  .pt-long .pt-note-text { max-height: none; }
}
"""

LIVE_JS = """
<script>
(function () {
  // Listeners beside NiceGUI's own, never instead of them: NiceGUI still decides when a page reloads
  // (a refused handshake after a server restart, a connection timeout after its polling retry).
  function mark(state) { document.body && document.body.setAttribute('data-live', state); }
  function attach() {
    if (!window.socket) { setTimeout(attach, 50); return; }
    var s = window.socket;
    s.on('connect', function () { mark('live'); });
    s.on('disconnect', function () { mark('reconnecting'); });
    s.on('connect_error', function () { mark('reconnecting'); });
    s.io.on('reconnect_attempt', function () { mark('reconnecting'); });
    if (s.connected) mark('live');
  }
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', attach); else attach();
})();
</script>
"""


# Focus back where it was (WCAG 2.4.3). pages/dialogs.py deletes a dialog as it closes, so Quasar's
# own refocus never runs; otRefocus (called after the deletion) does it: the newest control focused
# in the scope that is left (the dialog still open under a closed one, else the page) gets it back,
# if it still exists; never while the focus is already on something. And when a push redraws the
# control a keyboard user was on (a Return button leaves with its row, an Add addendum button is
# drawn anew), the focus would drop to the page's start: it goes to the first control of the same
# card instead. Only for the keyboard: after a tap, focusing a field would open a tablet's keyboard.
# And a field someone is typing in keeps the focus until they move it (a key that is not text, a
# tap): Quasar queues a select's focus until its list has finished closing, and run then it took the
# focus from the reason typed after it, and the rest of the words went into the select.
REFOCUS_JS = """
<script>
(function () {
  var seen = [], card = null, keyboard = false, typingIn = null;
  document.addEventListener('keydown', function (e) {
    keyboard = true;
    var t = e.target, text = (e.key.length === 1 || e.key === 'Backspace' || e.key === 'Delete')
      && !e.ctrlKey && !e.metaKey && !e.altKey;
    if (text && t instanceof Element && t.matches('input, textarea, [contenteditable=true]')) typingIn = t;
    else if (t !== typingIn || e.key === 'Tab' || e.key === 'Enter' || e.key === 'Escape') typingIn = null;
  }, true);
  document.addEventListener('pointerdown', function () { keyboard = false; typingIn = null; }, true);
  var focus = HTMLElement.prototype.focus;
  HTMLElement.prototype.focus = function () {
    var t = typingIn;
    if (t && t !== this && t.isConnected && document.activeElement === t) return;
    return focus.apply(this, arguments);
  };
  document.addEventListener('focusin', function (e) {
    var t = e.target;
    if (!(t instanceof Element) || t.matches('.q-dialog__inner')) return;
    seen.push(t);
    if (seen.length > 40) seen.shift();
    if (!t.closest('[role=dialog]')) card = t.closest('.ot-card');
  }, true);
  window.otRefocus = function () {
    var active = document.activeElement;
    if (active && active !== document.body && active.isConnected) return;
    var open = document.querySelectorAll('.q-dialog [role=dialog]');
    var scope = open.length ? open[open.length - 1] : null;
    for (var i = seen.length - 1; i >= 0; i--) {
      var el = seen[i], inDialog = el.closest('[role=dialog]');
      if (scope ? inDialog === scope : !inDialog) {
        if (el.isConnected) el.focus();
        return;  // else the control it was opened from is gone
      }
    }
  };
  function recover() {
    var active = document.activeElement, last = seen[seen.length - 1];
    if (!keyboard || (active && active !== document.body) || !last || last.isConnected) return;
    if (last.closest('[role=dialog]')) return;  // a closed dialog: otRefocus's turn
    if (!card || !card.isConnected || document.querySelector('.q-dialog [role=dialog]')) return;
    var target = card.querySelector('input:not([type=hidden]), textarea, button, a[href], [tabindex="0"]');
    if (target) target.focus();
  }
  function watch() { new MutationObserver(recover).observe(document.body, {childList: true, subtree: true}); }
  if (document.body) watch(); else document.addEventListener('DOMContentLoaded', watch);
})();
</script>
"""


def install_theme() -> None:
    """Shared CSS and the connection and focus scripts, once for every page."""
    ui.add_css(THEME_CSS, shared=True)
    ui.add_head_html(LIVE_JS, shared=True)
    ui.add_head_html(REFOCUS_JS, shared=True)
    ui.add_head_html('<meta name="theme-color" content="#0b5563">', shared=True)


def offline_banner() -> None:
    """Shown while the page's connection is down (body[data-live=reconnecting])."""
    with ui.element("div").classes("ot-offline-banner").props('role="status" aria-live="assertive" data-testid=offline-banner') \
            .mark("offline-banner"):
        ui.icon("wifi_off", size="24px")
        with ui.column().classes("gap-0"):
            ui.label("You are offline. Nothing you type is lost.")
            ui.label("What you type stays on this device. Saves you tap are sent once the connection is "
                     "back, and each is stored once.").classes("sub")


def live_indicator() -> None:
    with ui.element("div").classes("live-indicator").props('aria-live="polite"'):
        ui.element("span").classes("dot")
        ui.label("Live").classes("txt-live")
        ui.label("Reconnecting…").classes("txt-off")
        ui.label("Connecting…").classes("txt-wait")


@contextmanager
def frame(session: PageSession, active: str, *, main_classes: str = "", kiosk: bool = False) -> Iterator[ui.column]:
    """Header and main column; the page body goes inside the `with`. A kiosk (the ward board on a
    shared TV) gets no header: no navigation and no sign-out on a screen nobody should touch."""
    ui.colors(primary="#0b5563", secondary="#127b8c", accent="#f0b429")
    ui.query("body").classes("ot-body")
    # The page's socket must carry this session's cookie; when the session ends, so does the page.
    socket_guard.bind(ui.context.client, session.principal)
    live.end_with_session(session)
    if not kiosk:
        header(session, active)
    # The skip link's target; Quasar's page is the <main> landmark around it.
    with ui.column().classes(f"ot-main {main_classes}").props('id="main" tabindex="-1"') as main:
        if active != "ward":  # the ward screen, where nobody types, says it in its own words
            offline_banner()
        yield main


def header(session: PageSession, active: str) -> None:
    """App name, navigation, live indicator, who is signed in, sign-out."""
    with ui.header().classes("ot-header items-center px-4 gap-3 no-wrap"):
        ui.link("Skip to main content", "#main").classes("ot-skip").mark("skip-link")
        with ui.link(target="/").classes("ot-brand flex items-center gap-2 no-wrap"):
            ui.icon("accessibility_new", size="26px")
            ui.label("OT Tracker")
        with ui.row().classes("ot-nav gap-1 no-wrap items-center"):
            items = list(NAV) + ([("admin", "Admin", "/admin", "admin_panel_settings"),
                                  ("audit", "Audit", "/audit", "fact_check")] if session.is_lead else []) + [ACCOUNT]
            for key, label, path, icon in items:
                with ui.link(target=path).classes("active" if key == active else "").props(
                        f'aria-label="{label}"'):
                    ui.icon(icon, size="22px")
                    ui.label(label).classes("lbl")
        ui.space()
        live_indicator()
        with ui.column().classes("ot-user gap-0"):
            ui.label(session.username).classes("name")
            ui.label(ROLE_LABELS.get(session.role, session.role)).classes("role")
        # Signing out clears this user's drafts on this device (pages/assets/drafts.js).
        with ui.element("form").props(f'method="post" action="/logout" data-forget-drafts="{session.principal.user_id}"') \
                .classes("m-0"):
            ui.button(icon="logout").props('type="submit" flat round color="white" aria-label="Sign out"') \
                .tooltip("Sign out")


class Heading(TextElement):
    """A real <h1>/<h2> whose text can change like ui.label's; it keeps the look its classes give."""

    def __init__(self, text: str = "", level: int = 1) -> None:
        super().__init__(tag=f"h{level}", text=text)
        self.classes("ot-heading")


def page_title(text: str = "") -> Heading:
    """The page's one h1."""
    return Heading(text, 1).classes("ot-page-title")


def card_title(text: str = "") -> Heading:
    """A card's h2."""
    return Heading(text, 2).classes("ot-card-title")


def section(title: str, icon: str | None = None) -> ui.column:
    """A titled card; returns the card column for the caller's `with`."""
    card = ui.column().classes("ot-card gap-3")
    with card:
        with ui.row().classes("items-center gap-2"):
            if icon:
                ui.icon(icon, size="20px").classes("text-primary")
            card_title(title)
    return card


def status_badge(store_catalogue, status: str, *, size: str = "") -> ui.badge:
    term = store_catalogue.vocabulary["mobilityStatus"].get(status)
    label = term.label if term else status
    colour = term.colour if term else "grey"
    return ui.badge(label, color=colour).classes(f"ot-status {size}").props("rounded")
