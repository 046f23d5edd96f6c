// Log in with your own worker credential; the server answers with a session cookie for the
// credential's owner (the name comes from the credential, not from this page), then the app loads.
const form = document.getElementById('login-form');
const err = document.getElementById('login-error');
form.addEventListener('submit', async (ev) => {
  ev.preventDefault();
  err.textContent = '';
  const token = document.getElementById('token').value.trim();
  const res = await fetch('/api/login', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ token }),
  });
  if (!res.ok) {
    const body = await res.json().catch(() => ({}));
    err.textContent = body.error || `login failed (${res.status})`;
    return;
  }
  location.href = '/';
});
