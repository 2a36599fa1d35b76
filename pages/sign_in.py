"""Sign in and sign up: native form posts to pages.auth, which sets the HttpOnly cookie.

Without a script they are plain posts. With one (FORM_JS), the same form is posted with fetch and
answered with JSON: on an error nothing reloads, every field keeps what was typed, and each message
shows under the field it names (a lock or the rate limit in the banner); on success the browser
goes on to `next`. Nothing typed ever goes into a URL.
"""
from __future__ import annotations

from urllib.parse import quote

from fastapi import Request
from fastapi.responses import RedirectResponse
from nicegui import APIRouter, ui

from pages import auth
from pages.frame import Heading

router = APIRouter()

FORM_CSS = """
.ot-form-banner { display: flex; gap: 8px; align-items: flex-start; padding: 12px; border-radius: 8px;
  background: #fdecea; color: #8a1c1c; }
.ot-form-banner:has(> .ot-error:empty) { display: none; }
.ot-field-error { color: #b3261e; font-size: .85rem; margin: 4px 12px 0; white-space: pre-line; }
.ot-field-error:empty { display: none; }
[data-invalid] .q-field--outlined .q-field__control:after { border: 2px solid #b3261e; }
[data-invalid] .q-field__label { color: #b3261e; }
"""

# Posts the sign-in and sign-up forms with fetch and shows the JSON answer in place (see above).
# A response that is not JSON (a proxy's page, a refusal) falls back to the native post.
FORM_JS = """
<script>
(function () {
  if (window.otAuthForms) return;
  window.otAuthForms = true;
  var UNREACHABLE = 'The server could not be reached. Check your connection and try again.';
  function mark(form, name, text) {
    var holder = form.querySelector('[data-error-for="' + name + '"]');
    if (!holder) return;
    holder.textContent = text;
    var input = form.querySelector('input[name="' + name + '"]');
    if (input) {
      if (text) input.setAttribute('aria-invalid', 'true'); else input.removeAttribute('aria-invalid');
    }
    var field = holder.closest('[data-field]');
    if (field) field.toggleAttribute('data-invalid', !!text);
  }
  function show(form, answer) {
    var fields = answer.fields || {};
    form.querySelectorAll('[data-error-for]').forEach(function (holder) {
      var name = holder.getAttribute('data-error-for');
      mark(form, name, name === 'form' ? (answer.form || '') : (fields[name] || []).join('\\n'));
    });
    var wrong = form.querySelector('input[aria-invalid="true"]');
    if (wrong) { wrong.focus(); wrong.select(); }
  }
  document.addEventListener('input', function (e) {
    var form = e.target.form;
    if (form && form.hasAttribute('data-auth-form') && e.target.name) mark(form, e.target.name, '');
  });
  document.addEventListener('submit', function (e) {
    var form = e.target;
    if (!(form instanceof HTMLFormElement) || !form.hasAttribute('data-auth-form')) return;
    e.preventDefault();
    if (form.getAttribute('aria-busy') === 'true') return;
    form.setAttribute('aria-busy', 'true');
    var leaving = false;
    fetch(form.getAttribute('action'), {
      method: 'POST', body: new URLSearchParams(new FormData(form)), credentials: 'same-origin',
      cache: 'no-store', headers: {'Accept': 'application/json'}
    }).then(function (response) {
      if ((response.headers.get('content-type') || '').indexOf('application/json') < 0) {
        leaving = true;
        form.submit();
        return null;
      }
      return response.json();
    }).then(function (answer) {
      if (!answer) return;
      if (answer.next) { leaving = true; window.location.assign(answer.next); return; }
      show(form, answer);
    }).catch(function () {
      show(form, {form: UNREACHABLE});
    }).finally(function () {
      if (!leaving) form.removeAttribute('aria-busy');
    });
  });
})();
</script>
"""


def _shell(title: str, subtitle: str) -> ui.column:
    ui.colors(primary="#0b5563", secondary="#127b8c")
    with ui.column().classes("w-full min-h-screen items-center justify-center p-4").style(
            "background: radial-gradient(circle at 20% 10%, #e0f2f1 0, #f4f6f9 45%, #eef2f7 100%)"):
        with ui.row().classes("items-center gap-2 mb-2"):
            ui.icon("accessibility_new", size="34px").classes("text-primary")
            ui.label("OT Tracker").classes("text-2xl font-bold text-primary")
        card = ui.column().classes("ot-card gap-4").style("max-width: 420px; padding: 28px")
        with card:
            Heading(title, 1).classes("text-xl font-semibold")
            ui.label(subtitle).classes("ot-muted -mt-3")
    return card


def _form(action: str, target: str, banner: str = "") -> ui.element:
    """The form both pages post (the `with` body holds its fields), with the banner on top."""
    ui.add_css(FORM_CSS)
    ui.add_head_html(FORM_JS)
    form = ui.element("form").props(f'method="post" action="{action}" novalidate data-auth-form') \
        .classes("w-full flex flex-col gap-3")
    with form:
        with ui.element("div").classes("ot-form-banner w-full").props('role="alert"'):
            ui.icon("error_outline", size="20px")
            ui.label(banner).classes("ot-error").props('data-error-for="form"')
        ui.element("input").props(f'type="hidden" name="next" value="{target}"')
    return form


def _field(label: str, name: str, *, kind: str = "text", autocomplete: str = "", error: str = "") -> ui.input:
    """An input and, under it, the place for its error (its accessible description)."""
    with ui.element("div").classes("w-full").props(f'data-field="{name}"'):
        field = ui.input(label).props(f'outlined name="{name}" type="{kind}" autocomplete="{autocomplete}"') \
            .classes("w-full")
        message = ui.label(error).classes("ot-field-error").props(f'data-error-for="{name}" aria-live="polite"')
    field.props(f'aria-describedby="c{message.id}"' + (' aria-invalid="true"' if error else ""))
    return field


@router.page("/login", title="Sign in · OT Tracker")
async def login_page(request: Request, next: str = "/", error: str = "", minutes: int = 0,
                     seconds: int = 0, signed_out: int = 0, expired: int = 0,
                     locked: int = 0) -> RedirectResponse | None:
    target = auth.safe_next(next)
    session = await auth.session_of(request)
    if session is not None:  # signed in already: on to the page, or a viewer's to its board
        return RedirectResponse(auth.landing(session.permissions(), target), status_code=303)
    if auth.must_change_password(request):
        return RedirectResponse(auth.PASSWORD_PAGE, status_code=303)
    if locked and not error:  # pages.live after the idle timeout: the lock screen
        card = _shell("Screen locked", "Patient information is hidden while nobody is using this screen.")
    else:
        card = _shell("Sign in", "Your team's live caseload, scores and equipment.")
    # A native post's error (no script): a wrong password under its field, the others in the banner.
    message = auth.sign_in_message(error, minutes=minutes, seconds=seconds) if error else ""
    under_password = message if error == "invalid" else ""
    with card:
        if signed_out and not error:
            ui.label("You are signed out.").classes("ot-muted")
        elif locked and not error:
            idle = int(auth.settings().session_idle_timeout.total_seconds() // 60)
            with ui.row().classes("w-full items-start gap-2 no-wrap").props('role="status"').mark("lock-screen"):
                ui.icon("lock", size="22px").classes("text-primary")
                ui.label(f"Locked after {idle} minute{'s' if idle != 1 else ''} without activity. Sign in again "
                         "to continue: anything you were typing is kept on this device.")
        elif expired and not error:
            ui.label("Your session ended (inactivity, its time limit, or a sign-out elsewhere). "
                     "Sign in again to continue.").classes("ot-muted").props('role="status"')
        with _form("/login", target, "" if under_password else message):
            _field("Username", "username", autocomplete="username").props("autofocus")
            _field("Password", "password", kind="password", autocomplete="current-password",
                   error=under_password)
            ui.button("Sign in", icon="login").props('type="submit" unelevated color="primary" size="lg"') \
                .classes("w-full")
        with ui.row().classes("w-full justify-center gap-1"):
            ui.label("New to the team?").classes("ot-muted")
            ui.link("Create an account", f"/signup?next={quote(target, safe='')}").classes("text-primary font-semibold")
    return None


@router.page("/signup", title="Sign up · OT Tracker")
async def signup_page(request: Request, next: str = "/", error: str = "", rule: str = "",
                      seconds: int = 0) -> RedirectResponse | None:
    target = auth.safe_next(next)
    session = await auth.session_of(request)
    if session is not None:  # signed in already: on to the page, or a viewer's to its board
        return RedirectResponse(auth.landing(session.permissions(), target), status_code=303)
    minimum = auth.settings().min_password_length
    card = _shell("Create an account",
                  "New accounts see no patients until a lead or a therapist adds them to a care team.")
    with card:
        with _form("/signup", target, auth.signup_message(error, rule, seconds) or ""):
            _field("Username", "username", autocomplete="username")
            _field("Email", "email", kind="email", autocomplete="email")
            _field(f"Password (at least {minimum} characters)", "password", kind="password",
                   autocomplete="new-password")
            ui.button("Create account", icon="person_add").props(
                'type="submit" unelevated color="primary" size="lg"').classes("w-full")
        with ui.row().classes("w-full justify-center gap-1"):
            ui.label("Already have an account?").classes("ot-muted")
            ui.link("Sign in", f"/login?next={quote(target, safe='')}").classes("text-primary font-semibold")
    return None
