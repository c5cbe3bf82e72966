// Who the browser acts as. `trusted-header` servers: an org id, sent as X-Org-Id (kept in
// localStorage; the gateway in front is what really vouches for it). `api-key` and `jwt`
// servers: a bearer credential (an API key, or a JWT from the identity provider), sent as
// Authorization: Bearer — kept for this tab only (sessionStorage) unless the user asks to
// remember it on this device. The credential is never written into the page.
import { h, replace } from './dom.js';

const ORG = 'upshift.org';
const KEY = 'upshift.apiKey';
const ORG_RE = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/;
// For the pattern attribute, which browsers compile with the `v` flag (where a bare - in a class is an error).
const ORG_PATTERN = '[A-Za-z0-9][A-Za-z0-9._:\\-]{0,63}';

let mode = 'trusted-header';

export function setAuthMode(m) {
  mode = m;
}

export const authMode = () => mode;

function read(name) {
  return sessionStorage.getItem(name) ?? localStorage.getItem(name);
}

export function currentOrg() {
  return mode === 'trusted-header' ? localStorage.getItem(ORG) : null;
}

export function hasCredentials() {
  return mode === 'trusted-header' ? localStorage.getItem(ORG) !== null : read(KEY) !== null;
}

/** Headers that carry the tenant / credentials on every API call. */
export function authHeaders() {
  if (mode === 'trusted-header') {
    const org = localStorage.getItem(ORG);
    return org === null ? {} : { 'x-org-id': org };
  }
  const key = read(KEY);
  return key === null ? {} : { authorization: `Bearer ${key}` };
}

function forget() {
  localStorage.removeItem(ORG);
  localStorage.removeItem(KEY);
  sessionStorage.removeItem(KEY);
}

/**
 * Who is signed in, in the header, with a way out; empty while nobody is (the page itself
 * then shows the sign-in form). `onChange` runs after the credentials changed.
 */
export function renderAuthBar(el, onChange) {
  if (hasCredentials()) {
    const who = mode === 'trusted-header' ? h('span', null, 'Org ', h('strong', { id: 'current-org' }, currentOrg())) : h('span', null, `Signed in with ${mode === 'jwt' ? 'a token' : 'an API key'}`);
    replace(
      el,
      who,
      h('button', { type: 'button', class: 'link', id: 'sign-out', onclick: () => { forget(); onChange(); } }, mode === 'trusted-header' ? 'Change' : 'Sign out'),
    );
    return;
  }
  replace(el);
}

/** The form asking for an org id or an API key. */
export function signInForm(onChange) {
  const error = h('span', { class: 'form-error', role: 'alert' });
  if (mode === 'trusted-header') {
    const input = h('input', { name: 'org', id: 'org-input', placeholder: 'org id, e.g. acme', autocomplete: 'organization', required: true, pattern: ORG_PATTERN, maxlength: 64, 'aria-label': 'Org id' });
    return h(
      'form',
      {
        class: 'signin',
        id: 'signin',
        onsubmit: (ev) => {
          ev.preventDefault();
          const org = input.value.trim();
          if (!ORG_RE.test(org)) {
            error.textContent = 'An org id is 1–64 of A-Z a-z 0-9 . _ : - and starts with a letter or digit.';
            return;
          }
          localStorage.setItem(ORG, org);
          onChange();
        },
      },
      h('label', { for: 'org-input' }, 'Org'),
      input,
      h('button', { type: 'submit' }, 'Use'),
      error,
    );
  }
  const label = mode === 'jwt' ? 'Token (JWT)' : 'API key';
  const input = h('input', { name: 'key', id: 'key-input', type: 'password', placeholder: mode === 'jwt' ? 'eyJ…' : 'upk_…', autocomplete: 'off', required: true, 'aria-label': label });
  const remember = h('input', { type: 'checkbox', id: 'remember-key' });
  return h(
    'form',
    {
      class: 'signin',
      id: 'signin',
      onsubmit: (ev) => {
        ev.preventDefault();
        const key = input.value.trim();
        if (key === '') return;
        forget();
        (remember.checked ? localStorage : sessionStorage).setItem(KEY, key);
        input.value = '';
        onChange();
      },
    },
    h('label', { for: 'key-input' }, label),
    input,
    h('label', { class: 'check' }, remember, 'remember on this device'),
    h('button', { type: 'submit' }, 'Sign in'),
    error,
  );
}
